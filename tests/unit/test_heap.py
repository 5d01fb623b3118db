"""builder.heap: the collector paused while the inventory is made, frozen for the seed pool's
forks and at the process's exit, and left as it was everywhere else."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.seeds import write_inventory
from builder.cli.he_build import build_parser
from builder.cli.inventory import load_from_args
from builder.heap import collection_paused, frozen_for_fork
from builder.inventory.load import load_inventory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def collector_enabled() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


@pytest.mark.usefixtures("collector_enabled")
def test_paused_collection_is_enabled_again_after_the_body_and_after_an_error() -> None:
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), collection_paused():
        raise KeyError("x")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_enabled")
def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with collection_paused():
        pass
    assert not gc.isenabled()


@pytest.mark.usefixtures("collector_enabled")
def test_the_inventory_loads_with_the_collector_paused_and_leaves_it_on() -> None:
    seen: list[bool] = []
    args = build_parser().parse_args(["inventory", "check"])
    inventory = load_from_args(args, on_site=lambda _site, _files: seen.append(gc.isenabled()))
    assert list(inventory.sites) == ["dc1", "dc2"]
    assert seen == [False, False]
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_enabled")
def test_loading_makes_no_cyclic_garbage_so_the_pause_holds_no_memory(tmp_path: Path) -> None:
    inventory = write_inventory(60, tmp_path)  # DHCP and static sites, secrets in files
    gc.collect()
    with collection_paused():
        loaded = load_inventory(inventory)
        assert len(loaded.sites) == 60
        assert gc.collect() == 0  # nothing the pause kept from being freed


def test_a_child_forked_in_the_body_inherits_the_objects_frozen_the_parent_not_after() -> None:
    kept = [object() for _ in range(100)]
    with frozen_for_fork():
        child = os.fork()
        if child == 0:  # the child: its exit status says whether it inherited them frozen
            os._exit(0 if gc.get_freeze_count() >= len(kept) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert gc.get_freeze_count() == 0


def test_the_exit_freezes_once_however_often_asked() -> None:
    # Callbacks run last registered first: the probe, registered before, sees the freezes.
    program = ("import atexit, gc\n"
               "from builder.heap import frozen_at_exit\n"
               "calls = []\n"
               "freeze = gc.freeze\n"
               "gc.freeze = lambda: calls.append(freeze())\n"
               "atexit.register(lambda: print(len(calls), gc.get_freeze_count() > 0))\n"
               "frozen_at_exit()\n"
               "frozen_at_exit()\n"
               "print(len(calls), gc.get_freeze_count())\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.split("\n") == ["0 0", "1 True", ""]
