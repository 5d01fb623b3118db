"""The stage cache's upkeep: entries listed with their disk usage and last use, a hit stamps its
entry, prune removes what has gone unused, never an entry being built, never data already
published, and a prune killed half way leaves what the next sweep removes.

`he-build cache` runs on real entries made by the store's own protocol; the kill is a real
SIGKILL of a real process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.atomic import lock_path
from builder.cli.he_build import main
from builder.lock import try_lock
from builder.pipeline.stages import RECORD, Built, write_record
from builder.pipeline.store import StageCache

DAY_S = 86400
DOCS = Path(__file__).resolve().parents[2] / "docs" / "appliance.md"
TRACEBACK = "Traceback (most recent call last)"


def stored(cache: StageCache, stage: str, key: str, *, size: int = 8192,
           age_days: float = 0) -> Path:
    with cache.store(stage, key) as temp:
        (temp / "artifact").write_bytes(b"x" * size)
    entry = cache.entry(stage, key)
    stamp = time.time() - age_days * DAY_S
    os.utime(entry, (stamp, stamp))
    return entry


def test_entries_lists_complete_entries_with_their_disk_usage(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    stored(cache, "ova", "k1", size=64 * 1024)
    entry = stored(cache, "rpm", "k2", size=8192)
    os.link(entry / "artifact", entry / "same-artifact")  # counted once, as du does
    (tmp_path / "ova" / ".k3.partial-1-x").mkdir()  # a build under way: not an entry yet
    listed = {(e.stage, e.key): e for e in cache.entries()}
    assert sorted(listed) == [("ova", "k1"), ("rpm", "k2")]
    assert listed["ova", "k1"].size >= 64 * 1024
    du = subprocess.run(["du", "-s", "--block-size=1", str(entry)], capture_output=True,
                        text=True, check=True).stdout.split()[0]
    assert listed["rpm", "k2"].size == int(du)


def test_a_hit_stamps_its_entry(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    stored(cache, "disk", "k1", age_days=40)
    before = time.time()
    assert cache.lookup("disk", "k1") is not None
    [entry] = cache.entries()
    assert entry.last_used >= before - 1


def test_remove_takes_an_unused_entry_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    stored(cache, "disk", "old", age_days=40)
    stored(cache, "disk", "new")
    old, new = sorted(cache.entries(), key=lambda e: e.key == "new")
    since = time.time() - 30 * DAY_S
    assert cache.remove(old, unused_since=since)
    assert not cache.remove(new, unused_since=since)
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["new"]


def test_an_entry_whose_lock_is_held_stays(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    path = stored(cache, "ova", "k1", age_days=40)
    held = try_lock(lock_path(path), transient=True)  # a build adopting or storing it
    assert held is not None
    try:
        [entry] = cache.entries()
        assert not cache.remove(entry, unused_since=time.time())
    finally:
        held.release()
    assert path.is_dir()


def test_a_dry_run_names_what_would_go_and_removes_nothing(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    old = stored(cache, "ova", "old", age_days=40)
    busy = stored(cache, "ova", "busy", age_days=40)
    stored(cache, "ova", "new")
    since = time.time() - 30 * DAY_S
    held = try_lock(lock_path(busy), transient=True)  # a build adopting it: it would stay
    assert held is not None
    try:
        going = [e.key for e in cache.entries() if cache.remove(e, unused_since=since,
                                                                dry_run=True)]
    finally:
        held.release()
    assert going == ["old"]
    assert old.is_dir() and sorted(e.key for e in cache.entries()) == ["busy", "new", "old"]


def test_a_claim_stamps_an_entry_still_there_and_refuses_one_pruned(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    path = stored(cache, "images", "k1", age_days=40)
    assert cache.claim(path, path / "artifact")
    [entry] = cache.entries()
    assert entry.last_used > time.time() - 60  # a prune that starts now keeps it
    assert not cache.remove(entry, unused_since=time.time() - 60)
    assert cache.remove(entry, unused_since=time.time() + 1)
    assert not cache.claim(path, path / "artifact")


def test_a_published_file_keeps_its_data(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    path = stored(cache, "rpm", "k1", age_days=40)
    published = tmp_path / "out.rpm"
    os.link(path / "artifact", published)
    [entry] = cache.entries()
    assert cache.remove(entry, unused_since=time.time())
    assert published.read_bytes() == b"x" * 8192


def test_a_prune_killed_half_way_is_swept(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    stored(cache, "disk", "k1", age_days=40)
    script = (
        "import os, time\n"
        "from pathlib import Path\n"
        "import builder.pipeline.store as store\n"
        "store.remove_tree = lambda path: os.kill(os.getpid(), 9)  # killed while deleting\n"
        "print(os.getpid(), flush=True)\n"
        f"cache = store.StageCache(Path({str(tmp_path)!r}))\n"
        "cache.remove(cache.entries()[0], unused_since=time.time())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == -9
    left = sorted(p.name for p in (tmp_path / "disk").iterdir())
    # Out of sight at once: the renamed entry and the lock its killed holder could not unlink.
    assert left == [".k1.lock", f".k1.partial-{done.stdout.strip()}-removed"]
    assert cache.entries() == []
    cache.sweep()
    assert list((tmp_path / "disk").iterdir()) == []


def run_cli(argv: list[str], cache_root: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setenv("HE_BUILDER_CACHE", str(cache_root))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert TRACEBACK not in err
    return code, out, err


def test_list_and_prune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    cache = StageCache(tmp_path)
    stored(cache, "disk", "old", age_days=45)
    stored(cache, "ova", "recent", age_days=2)
    code, out, _ = run_cli(["cache", "list"], tmp_path, monkeypatch, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["STAGE", "KEY", "SIZE", "LAST", "USED"]
    assert [line.split()[:2] for line in lines[1:3]] == [["disk", "old"], ["ova", "recent"]]
    assert lines[3].startswith("2 entries, ")

    code, out, _ = run_cli(["--json", "cache", "prune", "--dry-run"], tmp_path, monkeypatch,
                           capsys)
    assert code == 0
    report = json.loads(out)
    assert [e["key"] for e in report["removed"]] == ["old"] and report["kept"] == 1
    assert report["ok"] is True
    assert len(cache.entries()) == 2  # a dry run removes nothing

    code, out, _ = run_cli(["cache", "prune"], tmp_path, monkeypatch, capsys)
    assert code == 0
    assert out.splitlines()[-1].startswith("removed 1 entry (")
    assert [e.key for e in cache.entries()] == ["recent"]

    code, out, _ = run_cli(["cache", "prune", "--unused-for", "1.5"], tmp_path, monkeypatch,
                           capsys)
    assert out.splitlines()[-1].startswith("removed 1 entry (")
    code, out, _ = run_cli(["--json", "cache", "list"], tmp_path, monkeypatch, capsys)
    assert json.loads(out)["entries"] == [] and json.loads(out)["ok"] is True


def test_the_json_list_gives_each_entry_its_artifacts_and_facts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """What a stage recorded (the key that signed an RPM, a disk's format) is in the listing;
    an entry without a readable record (another step's tree, a damaged one) has null."""
    cache = StageCache(tmp_path)
    with cache.store("rpm", "k1") as work:
        (work / "a.rpm").write_bytes(b"rpm bytes")
        write_record(work, "rpm", "k1", Built(files={"rpm": work / "a.rpm"},
                                              facts={"signed_by": "0123ABCD"}))
    stored(cache, "rootfs", "tree")
    damaged = stored(cache, "disk", "k2")
    (damaged / RECORD).write_text("{not json")
    code, out, _ = run_cli(["--json", "cache", "list"], tmp_path, monkeypatch, capsys)
    assert code == 0
    entries = {entry["stage"]: entry for entry in json.loads(out)["entries"]}
    assert entries["rpm"]["facts"] == {"signed_by": "0123ABCD"}
    assert entries["rpm"]["artifacts"] == [
        {"name": "rpm", "file": "a.rpm", "size": 9,
         "sha256": hashlib.sha256(b"rpm bytes").hexdigest()}]
    for stage in ("rootfs", "disk"):
        assert (entries[stage]["facts"], entries[stage]["artifacts"]) == (None, None)


def test_the_json_prune_gives_each_removed_entry_its_artifacts_and_facts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """What went is described as the listing described it, read before it was removed."""
    cache = StageCache(tmp_path)
    with cache.store("rpm", "k1") as work:
        (work / "a.rpm").write_bytes(b"rpm bytes")
        write_record(work, "rpm", "k1", Built(files={"rpm": work / "a.rpm"},
                                              facts={"signed_by": "0123ABCD"}))
    stamp = time.time() - 2 * DAY_S
    os.utime(cache.entry("rpm", "k1"), (stamp, stamp))
    stored(cache, "rootfs", "tree", age_days=2)
    code, out, _ = run_cli(["--json", "cache", "prune", "--unused-for", "1"], tmp_path,
                           monkeypatch, capsys)
    assert code == 0
    removed = {entry["stage"]: entry for entry in json.loads(out)["removed"]}
    assert cache.entries() == []
    assert removed["rpm"]["facts"] == {"signed_by": "0123ABCD"}
    assert [a["file"] for a in removed["rpm"]["artifacts"]] == ["a.rpm"]
    assert (removed["rootfs"]["facts"], removed["rootfs"]["artifacts"]) == (None, None)


def test_an_absent_cache_lists_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["cache", "list"], tmp_path / "none", monkeypatch, capsys)
    assert (code, out) == (0, f"{tmp_path / 'none'}: empty\n")
    code, out, _ = run_cli(["cache", "prune", "--unused-for", "0"], tmp_path / "none",
                           monkeypatch, capsys)
    assert (code, out) == (0, "removed 0 entries (0 B), kept 0\n")


# docs/appliance.md's "The stage cache" table, row for row: argv, the line, the exit code.
ROWS = [
    (["cache", "prune", "--unused-for", "-1"],
     "he-build: error: argument --unused-for: must be from 0 to 999999 days, "
     "got '-1'", 2),
    (["cache", "prune", "--unused-for", "soon"],
     "he-build: error: argument --unused-for: not a number of days: 'soon'", 2),
    (["cache", "prune", "--unused-for", "nan"],
     "he-build: error: argument --unused-for: must be from 0 to 999999 days, "
     "got 'nan'", 2),
    (["cache", "list"], "he-build: error: the cache CACHE is not a directory", 2),
    (["cache", "list"], "he-build: error: the cache CACHE/sub lies under CACHE, which is not a "
                        "directory", 2),
]


@pytest.mark.parametrize(("argv", "line", "code"), ROWS, ids=[" ".join(r[0]) for r in ROWS])
def test_bad_input_row(argv: list[str], line: str, code: int, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_text("")
    cache = not_a_directory / "sub" if "/sub" in line else not_a_directory
    got, _, err = run_cli(argv, cache, monkeypatch, capsys)
    assert got == code
    lines = [x for x in err.splitlines() if x.startswith("he-build: error: ")]
    assert [x.replace(str(not_a_directory), "CACHE") for x in lines] == [line]


def test_the_documented_table_is_the_tested_one() -> None:
    section = DOCS.read_text().split("## The stage cache", 1)[1].split("\n## ", 1)[0]
    documented = [line.split("|")[2].strip().split("` (")[0].strip("`")
                  for line in section.splitlines()
                  if line.startswith("| `he-build cache") or line.startswith("| `HE_BUILDER")]
    assert documented == [line for _, line, _ in ROWS]


@pytest.mark.parametrize("argv", [["appliance", "--out", "OUT"],
                                  ["release", "--plan", "--publish", "OUT"]],
                         ids=["appliance", "release"])
def test_a_cache_that_cannot_be_a_directory_stops_a_build_before_any_stage(
        argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The same line as `he-build cache list`, exit 2, instead of a lock file that cannot be
    opened (exit 6) once the first stage starts."""
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_text("")
    out = str(tmp_path / "out")
    got, _, err = run_cli([a.replace("OUT", out) for a in argv], not_a_directory, monkeypatch,
                          capsys)
    assert got == 2
    assert err.splitlines()[0] == f"he-build: error: the cache {not_a_directory} is not a directory"
    assert not (tmp_path / "out").exists()
