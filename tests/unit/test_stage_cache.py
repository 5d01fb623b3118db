"""The stage cache: entries appear whole and are never replaced, a killed build's partial is
removed by the next store, a live one is not, and a lookup waits for a build in progress.

(Real kills of real builds: tests/integration/test_kill_rerun.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from builder.atomic import lock_path
from builder.lock import try_lock
from builder.pipeline.store import StageCache, link_or_copy


def test_an_entry_appears_complete_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with cache.store("ova", "k1") as temp:
        (temp / "a.ova").write_bytes(b"ova")
        assert cache.lookup("ova", "k1") is None
    assert cache.lookup("ova", "k1") == tmp_path / "ova" / "k1"
    assert sorted(p.name for p in (tmp_path / "ova").iterdir()) == ["k1"]


def test_a_failed_build_leaves_no_entry_no_partial_no_lock(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with pytest.raises(RuntimeError), cache.store("disk", "k1") as temp:
        (temp / "disk.raw").write_bytes(b"half")
        raise RuntimeError("build failed")
    assert list((tmp_path / "disk").iterdir()) == []


def test_an_existing_entry_is_never_replaced(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with cache.store("rpm", "k1") as temp:
        (temp / "first.rpm").write_bytes(b"1")
    inode = (tmp_path / "rpm" / "k1").stat().st_ino
    with cache.store("rpm", "k1") as temp:  # a concurrent build that finished second
        (temp / "second.rpm").write_bytes(b"2")
    assert [p.name for p in (tmp_path / "rpm" / "k1").iterdir()] == ["first.rpm"]
    assert (tmp_path / "rpm" / "k1").stat().st_ino == inode


def killed_build(cache_root: Path, stage: str, key: str) -> Path:
    """A real process that starts storing an entry and is SIGKILLed half way: what it left."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from builder.pipeline.store import StageCache\n"
        f"with StageCache(Path({str(cache_root)!r})).store({stage!r}, {key!r}) as temp:\n"
        "    (temp / 'disk.raw').write_bytes(b'half written')\n"
        "    print(temp, flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == -9
    partial = Path(done.stdout.strip())
    assert partial.is_dir() and partial.name.startswith(f".{key}.partial-")
    return partial


def test_the_next_store_removes_a_killed_builds_partial_in_any_stage(tmp_path: Path) -> None:
    partial = killed_build(tmp_path, "disk", "k1")
    cache = StageCache(tmp_path)
    with cache.store("rpm", "k2") as temp:
        (temp / "x.rpm").write_bytes(b"rpm")
    assert not partial.exists()
    assert list((tmp_path / "disk").iterdir()) == []  # its lock file went too


def test_a_killed_sidecar_write_inside_an_entry_is_removed(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with cache.store("ova", "k1") as temp:
        (temp / "a.ova").write_bytes(b"ova")
    stale = tmp_path / "ova" / "k1" / ".a.ova.sha256.partial-4242-abcdefgh"
    stale.write_text("half a digest")
    assert cache.sweep() == [stale]
    assert [p.name for p in (tmp_path / "ova" / "k1").iterdir()] == ["a.ova"]


def test_a_partial_whose_builder_is_alive_is_kept(tmp_path: Path) -> None:
    live = tmp_path / "disk" / ".k1.partial-1-abcdefgh"
    live.mkdir(parents=True)
    held = try_lock(lock_path(tmp_path / "disk" / "k1"), transient=True)
    assert held is not None  # the live builder (e.g. waiting on qemu-img) holds its lock
    try:
        assert StageCache(tmp_path).sweep() == []
        assert live.exists()
    finally:
        held.release()
    assert StageCache(tmp_path).sweep() == [live]


def test_a_lookup_waits_for_the_same_entry_being_built(tmp_path: Path) -> None:
    entry = tmp_path / "ova" / "k1"
    entry.parent.mkdir(parents=True)
    # Another process building the entry: it holds the lock until we close its stdin.
    script = ("import sys\nfrom pathlib import Path\nfrom builder.lock import acquire_lock\n"
              f"held = acquire_lock(Path({str(lock_path(entry))!r}), transient=True)\n"
              "print('building', flush=True)\nsys.stdin.read()\n"
              f"Path({str(entry)!r}).mkdir()\nheld.release()\n")
    builder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert builder.stdout is not None and builder.stdin is not None
    assert builder.stdout.readline() == "building\n"
    told = threading.Event()
    found: list[Path | None] = []
    cache = StageCache(tmp_path, notify=lambda message: told.set())
    thread = threading.Thread(target=lambda: found.append(cache.lookup("ova", "k1")))
    thread.start()
    assert told.wait(timeout=30)
    assert found == []  # still waiting
    builder.stdin.close()
    assert builder.wait(timeout=30) == 0
    thread.join(timeout=30)
    assert found == [entry]


def test_a_lookup_inside_its_own_store_does_not_wait_for_itself(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with cache.store("ova", "k1"):
        assert cache.lookup("ova", "k1") is None


def test_a_lookup_of_an_entry_nobody_builds_does_not_wait(tmp_path: Path) -> None:
    assert StageCache(tmp_path).lookup("ova", "k1") is None
    assert not (tmp_path / "ova").exists()  # and creates nothing


def test_publishing_removes_temp_files_of_a_killed_publication(tmp_path: Path) -> None:
    source = tmp_path / "cache.ova"
    source.write_bytes(b"ova")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".app.raw.partial-{4242}-abcdefgh"
    stale.write_bytes(b"half a disk")
    link_or_copy(source, out / "app.ova")
    assert sorted(p.name for p in out.iterdir()) == ["app.ova"]
    assert os.path.samefile(source, out / "app.ova")


def test_publishing_the_same_cached_file_again_leaves_no_temp_name(tmp_path: Path) -> None:
    source = tmp_path / "cache.rpm"
    source.write_bytes(b"rpm")
    out = tmp_path / "out"
    for _ in range(2):  # the second time, `out/app.rpm` already is a link to the same file
        link_or_copy(source, out / "app.rpm")
        assert sorted(p.name for p in out.iterdir()) == ["app.rpm"]


def test_a_hit_removes_the_lock_file_of_a_build_killed_after_its_rename(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with cache.store("rpm", "k1") as temp:
        (temp / "x.rpm").write_bytes(b"rpm")
    (tmp_path / "rpm" / ".k1.lock").write_text("4242\n")  # killed before unlinking it
    assert cache.lookup("rpm", "k1") == tmp_path / "rpm" / "k1"
    assert [p.name for p in (tmp_path / "rpm").iterdir()] == ["k1"]


# scratch() and adopt(): a build whose key is known only at its end (he-launch's unpacked image).

def test_an_adopted_scratch_becomes_the_entry_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with cache.scratch("images") as scratch:
        (scratch / "disk.qcow2").write_bytes(b"disk")
        assert cache.lookup("images", "abc") is None
        entry = cache.adopt("images", "abc", scratch)
    assert entry == tmp_path / "images" / "abc"
    assert (entry / "disk.qcow2").read_bytes() == b"disk"
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["abc"]


def test_a_failed_scratch_build_leaves_nothing(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with pytest.raises(RuntimeError), cache.scratch("images") as scratch:
        (scratch / "disk.qcow2").write_bytes(b"half")
        raise RuntimeError("verification failed")
    assert list((tmp_path / "images").iterdir()) == []


@pytest.mark.parametrize("replace", [False, True])
def test_adopting_onto_an_existing_entry_keeps_or_replaces_it(tmp_path: Path,
                                                              replace: bool) -> None:
    cache = StageCache(tmp_path)
    for content in (b"first", b"second"):
        with cache.scratch("images") as scratch:
            (scratch / "disk.qcow2").write_bytes(content)
            entry = cache.adopt("images", "abc", scratch, replace=replace)
    assert (entry / "disk.qcow2").read_bytes() == (b"second" if replace else b"first")
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["abc"]


def test_a_killed_scratch_build_is_swept(tmp_path: Path) -> None:
    script = (f"import os, signal\nfrom pathlib import Path\n"
              f"from builder.pipeline.store import StageCache\n"
              f"with StageCache(Path({str(tmp_path)!r})).scratch('images') as s:\n"
              f"    print(s, flush=True)\n"
              f"    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == -9
    partial = Path(done.stdout.strip())
    assert partial.is_dir() and ".partial-" in partial.name
    assert StageCache(tmp_path).sweep() == [partial]
    assert list((tmp_path / "images").iterdir()) == []  # its lock file went too
