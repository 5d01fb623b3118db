"""`he-launch --prune-images` on a storage directory laid out as launches leave it.

Real qcow2 files and chains (qemu-img), real libvirt: the test driver, loaded from a node file
whose domains name the disks (it boots nothing, and each connection reads the file afresh, so
the domains are those of the file and nobody else's). Entries are aged with os.utime, as a
month without launches would leave them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from builder.atomic import lock_path
from builder.cli.he_launch import main
from builder.launch.image import file_identity
from builder.launch.prune import prune_storage
from builder.lock import HeldLock, try_lock
from builder.pipeline.store import CacheEntry, StageCache
from builder.virt.hypervisor import Hypervisor
from builder.virt.qemu_img import create_image
from tests.fixtures.storage import unpacked_image

DAY = 86400.0
MONTH_AGO = time.time() - 40 * DAY
KEYS = {name: f"{index:016x}" for index, name in enumerate(
    ("site-overlay", "domain-disk", "snapshot-chain", "unused", "recent", "locked"), start=1)}


def domain_xml(name: str, disk: Path) -> str:
    return (f"<domain type='test'><name>{name}</name><memory>65536</memory>"
            "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
            f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk></devices></domain>")


def image_entry(storage: Path, purpose: str, *, age: float = MONTH_AGO) -> Path:
    """images/KEY/disk.qcow2 as he-launch unpacks it, last used at `age`."""
    return unpacked_image(storage, KEYS[purpose], used_at=age)


def rpm_extract(storage: Path, key: str, *, age: float) -> Path:
    extract = storage / "rpms" / key
    extract.mkdir(parents=True)
    (extract / "appliance.ova").write_bytes(b"ova" * 1000)
    os.utime(extract, (age, age))
    return extract


def record(storage: Path, source: Path | str, identity: str) -> Path:
    verified = storage / "images" / "verified"
    verified.mkdir(parents=True, exist_ok=True)
    path = verified / f"{identity}.json"
    path.write_text(json.dumps({"source": str(source)}))
    return path


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """What launches leave: a site's overlay on one image, a domain's disk (outside the
    storage) on another, a domain's external snapshot over an overlay over a third; an image
    nothing uses since a month, one used yesterday, one a launch holds; RPM extracts, records."""
    storage = tmp_path / "storage"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    entries = {purpose: image_entry(storage, purpose) for purpose in KEYS}
    os.utime(entries["recent"], (time.time() - DAY, time.time() - DAY))
    site = storage / "dc1"
    site.mkdir()
    create_image(site / "engine-overlay.qcow2",
                 backing=entries["site-overlay"] / "disk.qcow2", backing_format="qcow2")
    create_image(outside / "disk.qcow2", backing=entries["domain-disk"] / "disk.qcow2",
                 backing_format="qcow2")
    create_image(outside / "overlay.qcow2", backing=entries["snapshot-chain"] / "disk.qcow2",
                 backing_format="qcow2")
    create_image(outside / "snapshot.qcow2", backing=outside / "overlay.qcow2",
                 backing_format="qcow2")
    node = tmp_path / "node.xml"
    node.write_text("<node>" + domain_xml("he-engine-dc2", outside / "disk.qcow2")
                    + domain_xml("he-engine-dc3", outside / "snapshot.qcow2")
                    + domain_xml("he-engine-gone", outside / "absent.qcow2") + "</node>")
    appliance = tmp_path / "appliance.ova"
    appliance.write_bytes(b"an appliance")
    return {"storage": storage, "node": node, "site_overlay": site / "engine-overlay.qcow2",
            "outside": outside, "appliance": appliance,
            "old_rpm": rpm_extract(storage, "a" * 24, age=MONTH_AGO),
            "new_rpm": rpm_extract(storage, "b" * 24, age=time.time()),
            "live_record": record(storage, appliance, file_identity(appliance)),
            "gone_record": record(storage, tmp_path / "deleted.ova", "c" * 24),
            "changed_record": record(storage, appliance, "d" * 24),
            "relative_record": record(storage, "relative.ova", "e" * 24),
            **entries}


def uri(layout: dict[str, Path]) -> str:
    return f"test://{layout['node']}"


def prune(layout: dict[str, Path], *, dry_run: bool = False, days: float = 30) -> set[str]:
    """Prune under the `locked` entry's held lock; the paths reported removed, by name."""
    held = try_lock(lock_path(layout["locked"]), transient=True)
    assert held is not None
    try:
        report = prune_storage(layout["storage"], uri(layout),
                               unused_since=time.time() - days * DAY, dry_run=dry_run)
    finally:
        held.release()
    in_use = {item.path.name: item.users for item in report.in_use}
    assert in_use == {
        KEYS["site-overlay"]: (str(layout["site_overlay"]),),
        KEYS["domain-disk"]: (f"{layout['outside']}/disk.qcow2 (domain he-engine-dc2)",),
        KEYS["snapshot-chain"]: (f"{layout['outside']}/snapshot.qcow2 (domain he-engine-dc3)",),
    }
    assert report.unreadable == []
    return {item.path.name for item in report.removed}


REMOVED_AFTER_30_DAYS = {KEYS["unused"], "a" * 24, "c" * 24 + ".json", "d" * 24 + ".json"}


def test_removes_only_what_nothing_backs_onto_and_no_launch_used(layout: dict[str, Path]) -> None:
    assert prune(layout) == REMOVED_AFTER_30_DAYS
    for kept in ("site-overlay", "domain-disk", "snapshot-chain", "recent", "locked",
                 "new_rpm", "live_record", "relative_record"):
        assert layout[kept].exists(), kept
    for gone in ("unused", "old_rpm", "gone_record", "changed_record"):
        assert not layout[gone].exists(), gone
    # Nothing half-removed is left beside the entries.
    assert sorted(p.name for p in (layout["storage"] / "images").iterdir()
                  if p.name.startswith(".") and not p.name.endswith(".lock")) == []
    # The domains still boot from what they had.
    assert (layout["site-overlay"] / "disk.qcow2").is_file()


def test_a_dry_run_names_the_same_and_removes_nothing(layout: dict[str, Path]) -> None:
    before = sorted(str(p) for p in layout["storage"].rglob("*"))
    assert prune(layout, dry_run=True) == REMOVED_AFTER_30_DAYS
    assert sorted(str(p) for p in layout["storage"].rglob("*")) == before


def test_zero_days_takes_every_unused_entry_but_the_one_being_written(
        layout: dict[str, Path]) -> None:
    assert prune(layout, days=0) == REMOVED_AFTER_30_DAYS | {KEYS["recent"], "b" * 24}
    assert layout["locked"].is_dir()


def test_an_entry_another_prune_is_removing_is_neither_kept_nor_removed_by_this_one(
        layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two prunes of one storage at once (two sites of a fleet sharing it): the one reaching
    an entry while the other removes it (lock held, entry renamed away) does not count it as
    kept, nor as its own removal."""
    real_remove = StageCache.remove
    other: list[HeldLock] = []

    def remove(cache: StageCache, entry: CacheEntry, *, unused_since: float,
               dry_run: bool = False) -> bool:
        if entry.path == layout["unused"] and not other:  # the other prune got there first
            held = try_lock(lock_path(entry.path), transient=True)
            assert held is not None
            other.append(held)
            entry.path.rename(entry.path.with_name(".removing-by-the-other-prune"))
        return real_remove(cache, entry, unused_since=unused_since, dry_run=dry_run)

    monkeypatch.setattr(StageCache, "remove", remove)
    held = try_lock(lock_path(layout["locked"]), transient=True)
    assert held is not None
    try:
        report = prune_storage(layout["storage"], uri(layout),
                               unused_since=time.time() - 30 * DAY, dry_run=False)
    finally:
        held.release()
        for lock in other:
            lock.release()
    assert other, "the other prune never ran"
    assert {item.path.name for item in report.removed} == REMOVED_AFTER_30_DAYS - {KEYS["unused"]}
    # Kept: the image used yesterday, the one being written, the RPM extract of today.
    assert report.recent == 3


def test_a_disk_whose_chain_cannot_be_read_keeps_every_image(layout: dict[str, Path]) -> None:
    """An overlay whose base is gone: what else it backed onto cannot be known."""
    broken = layout["storage"] / "dc4" / "engine-overlay.qcow2"
    broken.parent.mkdir()
    base = layout["outside"] / "base.qcow2"
    create_image(base, size_bytes=1 << 20)
    create_image(broken, backing=base, backing_format="qcow2")
    base.unlink()
    report = prune_storage(layout["storage"], uri(layout), unused_since=time.time(),
                           dry_run=False)
    assert report.unreadable == [str(broken)]
    assert all(layout[p].is_dir() for p in KEYS)
    assert (len(report.in_use), report.unsure, report.recent) == (3, 3, 0)
    assert {item.kind for item in report.removed} == {"rpm", "record"}


def test_a_storage_directory_that_does_not_exist_holds_nothing(tmp_path: Path) -> None:
    report = prune_storage(tmp_path / "absent", "bogus:///x", unused_since=time.time(),
                           dry_run=False)
    assert (report.removed, report.in_use, report.recent) == ([], [], 0)


def test_the_command_prints_what_went_and_why_the_rest_stays(
        layout: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    storage = layout["storage"]
    argv = ["--prune-images", "--storage", str(storage), "--uri", uri(layout)]
    assert main([*argv, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"would remove {storage}/images/{KEYS['unused']} (" in text
    assert (f"kept {storage}/images/{KEYS['site-overlay']}: {layout['site_overlay']} backs onto "
            "it") in text
    # The held entry is not locked here: only the month-old ones without users go.
    assert text.splitlines()[-1].startswith(
        "would remove 2 images, 1 RPM extract, 2 records (")
    assert text.splitlines()[-1].endswith("; kept 3 in use, 2 used in the last 30 days")
    assert main([*argv, "--dry-run", "--unused-for", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(" used in the last 1 day")
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["dry_run"] is False
    assert sorted(Path(item["path"]).name for item in data["removed"]) == sorted(
        {KEYS["unused"], KEYS["locked"], "a" * 24, "c" * 24 + ".json", "d" * 24 + ".json"})
    assert data["freed"] == sum(item["size"] for item in data["removed"]) > 0
    assert not layout["unused"].exists() and layout["site-overlay"].exists()


def test_libvirt_that_cannot_be_reached_stops_the_prune_before_anything_goes(
        layout: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(str(p) for p in layout["storage"].rglob("*"))
    code = main(["--prune-images", "--storage", str(layout["storage"]), "--uri", "bogus:///x"])
    err = capsys.readouterr().err
    assert code == 4 and "Traceback" not in err
    assert err.splitlines()[0].startswith("he-launch: error: cannot connect to libvirt at "
                                          "bogus:///x: ")
    assert sorted(str(p) for p in layout["storage"].rglob("*")) == before


def test_a_domain_that_goes_away_while_it_is_read_names_no_file(tmp_path: Path) -> None:
    node = tmp_path / "node.xml"
    node.write_text(f"<node>{domain_xml('he-engine-x', tmp_path / 'disk.qcow2')}</node>")
    with Hypervisor(f"test://{node}") as hv:
        [handle] = hv.domains()
        assert handle.files() == [str(tmp_path / "disk.qcow2")]
        handle.destroy()
        handle.undefine()
        assert handle.files() == []
