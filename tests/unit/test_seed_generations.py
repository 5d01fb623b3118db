"""OUT as a set of seeds published whole: generations, one switch, what is kept and pruned,
what crashed runs leave and the next run removes, OUTs that are not ours, and the lock."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from builder.errors import InputError, StorageError
from builder.inventory.models import Site
from builder.lock import is_held_elsewhere, locked, try_lock
from builder.seed.dhcp import build_dhcp_export
from builder.seed.generations import KEEP_PREVIOUS
from builder.seed.master import build_seeds, publish_seeds
from tests.fixtures.processes import wait_until
from tests.fixtures.seeds import Secrets, dhcp_site, static_site

STATE = ".he-seeds"


def site(name: str) -> Site:
    return dhcp_site(name=name, fqdn=f"engine.{name}.example.com")


def jobs(*names: str, admin: str = "admin-secret-1") -> list[tuple[Site, Secrets]]:
    return [(site(name), Secrets(admin_password=admin)) for name in names]


def visible(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def current_gen(out: Path) -> str:
    return os.readlink(out / STATE / "current")


def generations(out: Path) -> list[str]:
    return sorted(p.name for p in (out / STATE).iterdir() if p.name.startswith("gen-"))


def snapshot(path: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under `path` (links not followed): mode and content or link target."""
    found: dict[str, tuple[int, bytes | str]] = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = Path(root) / name
            info = entry.lstat()
            body: bytes | str = (os.readlink(entry) if entry.is_symlink() else
                                 entry.read_bytes() if entry.is_file() else "")
            found[str(entry.relative_to(path))] = (info.st_mode, body)
    return found


def test_sites_are_links_into_the_current_generation(tmp_path: Path) -> None:
    build_seeds(jobs("dc1", "dc2"), tmp_path, epoch=0)
    assert visible(tmp_path) == ["dc1", "dc2"]
    for name in ("dc1", "dc2"):
        assert os.readlink(tmp_path / name) == f"{STATE}/current/{name}"
        assert (tmp_path / name / "seed.iso").is_file()
    assert current_gen(tmp_path) == "gen-000001"
    index = json.loads((tmp_path / STATE / "current" / "generation.json").read_text())
    assert index["generation"] == 1 and sorted(index["sites"]) == ["dc1", "dc2"]


def test_a_site_run_replaces_that_site_and_links_the_others(tmp_path: Path) -> None:
    build_seeds(jobs("dc1", "dc2"), tmp_path, epoch=0)
    dc2_before = (tmp_path / "dc2" / "seed.iso").stat().st_ino
    dc1_before = (tmp_path / "dc1" / "seed.iso").read_bytes()
    artifacts, published = publish_seeds(jobs("dc1", admin="changed-secret-2"), tmp_path,
                                         epoch=0)
    assert [a.site for a in artifacts] == ["dc1"] and published.sites == ("dc1", "dc2")
    assert current_gen(tmp_path) == "gen-000002"
    assert (tmp_path / "dc1" / "seed.iso").read_bytes() != dc1_before
    # dc2 is the same file, hard-linked into the new generation: no copy.
    assert (tmp_path / "dc2" / "seed.iso").stat().st_ino == dc2_before
    assert (tmp_path / "dc2" / "seed.iso").stat().st_nlink == 2
    assert stat.S_IMODE((tmp_path / "dc2").stat().st_mode) == 0o700
    # The index names each site's manifest by its SHA-256: the rendered site's as its worker
    # hashed it, the carried-over site's as read back.
    index = json.loads((tmp_path / STATE / "current" / "generation.json").read_text())
    assert index["sites"] == {
        name: hashlib.sha256((tmp_path / name / "manifest.json").read_bytes()).hexdigest()
        for name in ("dc1", "dc2")}


def test_an_all_run_makes_the_set_exactly_its_sites(tmp_path: Path) -> None:
    build_seeds(jobs("dc1", "dc2", "dc3"), tmp_path, epoch=0)
    build_seeds(jobs("dc2", "dc4"), tmp_path, epoch=0, whole_set=True)
    assert visible(tmp_path) == ["dc2", "dc4"]
    assert not os.path.lexists(tmp_path / "dc1")  # the link of a dropped site goes too


def test_old_generations_are_pruned_to_the_policy(tmp_path: Path) -> None:
    for _ in range(4):
        build_seeds(jobs("dc1"), tmp_path, epoch=0)
    assert current_gen(tmp_path) == "gen-000004"
    assert generations(tmp_path) == [f"gen-{n:06d}" for n in range(4 - KEEP_PREVIOUS, 5)]


def test_dhcp_records_are_part_of_the_set_and_kept_by_site_runs(tmp_path: Path) -> None:
    sites = [site("dc1"), static_site()]
    build_seeds([(s, Secrets()) for s in sites], tmp_path, epoch=0,
                dhcp=build_dhcp_export(sites))
    zone = (tmp_path / "dhcp" / "records.zone").read_bytes()
    assert os.readlink(tmp_path / "dhcp") == f"{STATE}/current/dhcp"
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    assert (tmp_path / "dhcp" / "records.zone").read_bytes() == zone
    assert current_gen(tmp_path) == "gen-000002"


def test_a_site_named_dhcp_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^site dhcp: name: reserved"):
        build_seeds(jobs("dhcp"), tmp_path, epoch=0)
    assert list(tmp_path.iterdir()) == []


def test_the_next_run_removes_what_killed_runs_left(tmp_path: Path) -> None:
    build_seeds(jobs("dc1", "dc2"), tmp_path, epoch=0)
    state = tmp_path / STATE
    # A staging set holding a secret, a set renamed but never switched to, a temp switch
    # link, and the link of a site whose set was never switched to.
    (state / "stage-4242-abcdefgh" / "dc1").mkdir(parents=True, mode=0o700)
    (state / "stage-4242-abcdefgh" / "dc1" / "heanswers.conf").write_text("secret")
    (state / "gen-000007" / "dc9").mkdir(parents=True)
    (state / "current.4242").symlink_to("gen-000007")
    (tmp_path / "dc9").symlink_to(f"{STATE}/current/dc9")
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    assert sorted(p.name for p in state.iterdir()) == [
        "current", "format", "gen-000001", "gen-000002", "lock"]
    assert visible(tmp_path) == ["dc1", "dc2"]


def test_new_sites_are_linked_while_the_set_is_written_and_lead_nowhere_until_the_switch(
        tmp_path: Path) -> None:
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    names = [f"s{i:02d}" for i in range(20)]  # a pooled batch
    seen: list[dict[str, bool]] = []

    def look(done: int, total: int) -> None:
        if not seen:
            seen.append({name: os.path.exists(tmp_path / name) for name in names})
            assert all(os.readlink(tmp_path / name) == f"{STATE}/current/{name}"
                       for name in names)

    build_seeds(jobs(*names), tmp_path, epoch=0, progress=look)
    assert seen == [dict.fromkeys(names, False)]
    assert all((tmp_path / name / "seed.iso").is_file() for name in names)


@pytest.mark.parametrize("count", [2, 20])  # in this process, and on a pool
def test_a_refused_run_leaves_out_as_it_was_links_included(tmp_path: Path, count: int) -> None:
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    before = snapshot(tmp_path)
    names = [f"s{i:02d}" for i in range(count)]
    batch = [*jobs(*names[:-1]), *jobs(names[-1], admin="bad\n")]
    with pytest.raises(InputError, match="nothing was written"):
        build_seeds(batch, tmp_path, epoch=0, dhcp=build_dhcp_export([s for s, _ in batch]))
    assert snapshot(tmp_path) == before


def test_a_link_that_cannot_be_made_fails_the_run_and_removes_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A filesystem refusing the fifth link (as one without symbolic links refuses the first):
    # injected, since no real filesystem here fails half-way.
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    before = snapshot(tmp_path)
    real_symlink = os.symlink
    calls: list[str] = []

    def symlink(target: str, path: str, *args: object, **kwargs: object) -> None:
        calls.append(str(path))
        if len(calls) == 5:
            raise PermissionError(1, "Operation not permitted")
        real_symlink(target, path)

    monkeypatch.setattr(os, "symlink", symlink)
    with pytest.raises(StorageError, match=r"^cannot create the link .*/s04: Operation not"):
        build_seeds(jobs(*[f"s{i:02d}" for i in range(20)]), tmp_path, epoch=0)
    assert len(calls) == 5
    assert snapshot(tmp_path) == before


def test_a_crashed_first_run_leaves_nothing_the_next_one_keeps(tmp_path: Path) -> None:
    # Killed while creating OUT's state directory: its temp directory, with no live writer.
    (tmp_path / f".{STATE}.partial-4242-abcdefgh").mkdir()
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE, "dc1"]


def test_staging_is_private_from_the_first_byte(tmp_path: Path) -> None:
    seen: list[dict[str, int]] = []

    def look(done: int, total: int) -> None:
        stage = next((tmp_path / STATE).glob("stage-*"))
        seen.append({str(p.relative_to(stage)): stat.S_IMODE(p.stat().st_mode)
                     for p in [stage, *stage.rglob("*")]})

    build_seeds(jobs("dc1"), tmp_path, epoch=0, progress=look)
    modes = seen[0]
    assert modes["."] == 0o700 and modes["dc1"] == 0o700
    assert modes["dc1/heanswers.conf"] == modes["dc1/user-data"] == 0o600
    assert modes["dc1/seed.iso"] == 0o600


@pytest.mark.parametrize("content", ["notes.txt", "dc1-manifest"])
def test_an_out_that_is_not_ours_is_refused_untouched(tmp_path: Path, content: str) -> None:
    out = tmp_path / "out"
    if content == "notes.txt":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        expected = r"not empty and not made by he-build seed \(notes.txt\)"
    else:  # what an earlier he-build wrote: site directories, no generations
        (out / "dc1").mkdir(parents=True)
        (out / "dc1" / "manifest.json").write_text("{}")
        expected = r"site directories written by an earlier he-build \(dc1\)"
    before = snapshot(out)
    with pytest.raises(InputError, match=expected) as info:
        build_seeds(jobs("dc1"), out, epoch=0)
    assert "\n" not in info.value.message
    assert snapshot(out) == before


@pytest.mark.parametrize(("out", "message"), [
    ("out", "--out {tmp}/out is not a directory"),
    ("out/seeds", "--out {tmp}/out/seeds lies under {tmp}/out, which is not a directory"),
])
def test_an_out_that_is_or_lies_under_a_file_is_refused(tmp_path: Path, out: str,
                                                        message: str) -> None:
    (tmp_path / "out").write_text("x")
    with pytest.raises(InputError) as info:
        build_seeds(jobs("dc1"), tmp_path / out, epoch=0)
    assert info.value.message == message.format(tmp=tmp_path)
    assert (tmp_path / "out").read_text() == "x"


def test_an_empty_out_is_adopted_even_a_fresh_filesystem(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    assert visible(tmp_path) == ["dc1", "lost+found"]


def test_a_name_used_by_something_else_is_refused_untouched(tmp_path: Path) -> None:
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    (tmp_path / "dc2").mkdir()
    (tmp_path / "dc2" / "mine").write_text("keep")
    with pytest.raises(InputError, match=r"dc2 exists and was not made by he-build seed"):
        build_seeds(jobs("dc2"), tmp_path, epoch=0)
    assert (tmp_path / "dc2" / "mine").read_text() == "keep"
    assert current_gen(tmp_path) == "gen-000001"


def test_a_foreign_entry_in_our_out_is_left_alone(tmp_path: Path) -> None:
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    (tmp_path / "README").write_text("notes")
    build_seeds(jobs("dc2"), tmp_path, epoch=0, whole_set=True)
    assert visible(tmp_path) == ["README", "dc2"]


def test_a_second_run_waits_for_the_lock_holder(tmp_path: Path) -> None:
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    waiting = threading.Event()
    messages: list[str] = []
    errors: list[BaseException] = []

    def notify(message: str) -> None:
        messages.append(message)
        waiting.set()

    def second() -> None:
        try:
            build_seeds(jobs("dc2"), tmp_path, epoch=0, notify=notify)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    with locked(tmp_path / STATE / "lock"):  # stands for a first run publishing right now
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(timeout=60)
        assert current_gen(tmp_path) == "gen-000001"  # nothing switched while we hold it
    thread.join(timeout=120)
    assert not errors
    assert messages == [f"waiting for process {os.getpid()} to finish publishing seeds in "
                        f"{tmp_path}"]
    assert current_gen(tmp_path) == "gen-000002" and visible(tmp_path) == ["dc1", "dc2"]


def test_the_lock_is_free_after_a_run(tmp_path: Path) -> None:
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    held = try_lock(tmp_path / STATE / "lock")
    assert held is not None
    held.release()


def processes_with(token: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and token.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_run_killed_while_rendering_leaves_no_worker_and_a_free_lock(tmp_path: Path) -> None:
    token = f"he-test-{uuid.uuid4()}"
    # 20 sites: rendered on a process pool; he-build is SIGKILLed when the first is written.
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from builder.seed.master import build_seeds\n"
        "from tests.fixtures.seeds import Secrets, dhcp_site\n"
        "jobs = [(dhcp_site(name=f's{i:02d}', fqdn=f'engine.s{i:02d}.example.com'), Secrets())\n"
        "        for i in range(20)]\n"
        "build_seeds(jobs, Path(sys.argv[1]), epoch=0,\n"
        "            progress=lambda done, total: os.kill(os.getpid(), 9))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), token], check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == -9
    assert list((tmp_path / STATE).glob("stage-*"))  # it died half way through staging
    deadline = time.monotonic() + 10  # for both waits
    assert wait_until(lambda: not processes_with(token), 10)  # the pool workers died with it
    # A dying process drops its memory (its cmdline reads empty) before its files: its lock
    # goes a moment after it looks gone.
    assert wait_until(lambda: not is_held_elsewhere(tmp_path / STATE / "lock"),
                      deadline - time.monotonic())
    build_seeds(jobs("dc1"), tmp_path, epoch=0)
    assert not list((tmp_path / STATE).glob("stage-*"))
    assert visible(tmp_path) == ["dc1"]
