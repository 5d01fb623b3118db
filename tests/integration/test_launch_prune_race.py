"""A prune running while a launch prepares its disk never leaves that launch an overlay onto
nothing: the launch claims its image once the overlay exists, and unpacks it again if a prune
took it first; an OVA a prune took out of the RPM cache before the launch read it is taken out
of the RPM again.

The prune is the store's own `remove()` (what `he-launch --prune-images --unused-for 0` calls),
run at the exact moment of the race through a wrapper around the real `create_overlay` (or the
real `prepare_disk`); the OVA and RPM are the demo appliance's, the overlays real qemu-img
files."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from builder.errors import StorageError
from builder.launch import image
from builder.launch.image import (
    PreparedDisk,
    create_overlay,
    image_cache,
    prepare_appliance_disk,
    prepare_disk,
)
from builder.launch.storage import StorageModes
from builder.pipeline.store import CacheEntry
from tests.fixtures.appliance import DemoAppliance, demo_appliance

pytestmark = pytest.mark.integration
__all__ = ["demo_appliance"]

Overlay = Callable[[Path, str, Path], None]


def backing_file(overlay: Path) -> Path:
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)],
                                     capture_output=True, text=True, check=True).stdout)
    return Path(info["full-backing-filename"])


def prune_now(entry: Path) -> bool:
    """What a prune with --unused-for 0 that starts now does to `entry`."""
    cache = image_cache(entry.parent)
    found = CacheEntry(entry.parent.name, entry.name, entry, 0, entry.stat().st_mtime)
    return cache.remove(found, unused_since=time.time())


def racing(monkeypatch: pytest.MonkeyPatch, *, before: bool, times: int) -> list[Path]:
    """create_overlay, with a prune taking the image just before (or just after) it, the first
    `times` calls; returns the images it took."""
    taken: list[Path] = []

    def overlay(base: Path, base_format: str, target: Path) -> None:
        if before and len(taken) < times:
            assert prune_now(base.parent)
            taken.append(base.parent)
        create_overlay(base, base_format, target)
        if not before and len(taken) < times:
            assert prune_now(base.parent)
            taken.append(base.parent)

    monkeypatch.setattr(image, "create_overlay", overlay)
    return taken


@pytest.mark.parametrize("before", [True, False], ids=["before-overlay", "after-overlay"])
def test_an_image_pruned_before_its_claim_is_unpacked_again(
    demo_appliance: DemoAppliance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    before: bool,
) -> None:
    images, overlay = tmp_path / "images", tmp_path / "overlay.qcow2"
    taken = racing(monkeypatch, before=before, times=1)
    disk = prepare_disk(demo_appliance.ova, images, overlay)
    assert len(taken) == 1 and not disk.reused
    assert disk.base.is_file() and backing_file(overlay) == disk.base.resolve()


def test_a_prune_after_the_claim_keeps_the_image(
    demo_appliance: DemoAppliance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lookup's stamp is older than the prune's start and the prune looked for disks
    before the overlay existed: only the claim's stamp keeps the image."""
    images, overlay = tmp_path / "images", tmp_path / "overlay.qcow2"
    first = prepare_disk(demo_appliance.ova, images, overlay)

    def overlay_stamped_long_ago(base: Path, base_format: str, target: Path) -> None:
        create_overlay(base, base_format, target)
        month_ago = time.time() - 30 * 86400
        os.utime(base.parent, (month_ago, month_ago))

    monkeypatch.setattr(image, "create_overlay", overlay_stamped_long_ago)
    started = time.time()
    again = prepare_disk(demo_appliance.ova, images, overlay)
    assert again.reused and again.base == first.base
    found = CacheEntry(images.name, again.base.parent.name, again.base.parent, 0, 0)
    assert not image_cache(images).remove(found, unused_since=started)
    assert again.base.is_file()


def test_a_launch_that_loses_every_time_says_so_and_leaves_no_overlay(
    demo_appliance: DemoAppliance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    images, overlay = tmp_path / "images", tmp_path / "overlay.qcow2"
    taken = racing(monkeypatch, before=False, times=image.PREPARE_ATTEMPTS)
    with pytest.raises(StorageError, match="removed before its overlay could hold it") as info:
        prepare_disk(demo_appliance.ova, images, overlay)
    assert len(taken) == image.PREPARE_ATTEMPTS
    assert "--unused-for 0" in (info.value.hint or "")
    assert not overlay.exists()


def rpm_racing(monkeypatch: pytest.MonkeyPatch, *, times: int) -> list[Path]:
    """prepare_disk, with a prune taking the RPM's OVA (its whole rpms/KEY entry) just before
    it reads it, the first `times` calls; returns the OVAs it took."""
    taken: list[Path] = []

    def prepare(appliance: Path, images: Path, overlay: Path,
                modes: StorageModes | None = None) -> PreparedDisk:
        if len(taken) < times:
            assert prune_now(appliance.parent)
            taken.append(appliance)
        return prepare_disk(appliance, images, overlay, modes)

    monkeypatch.setattr(image, "prepare_disk", prepare)
    return taken


def test_an_rpm_ova_pruned_before_it_was_read_is_taken_out_again(
    demo_appliance: DemoAppliance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rpms, images, overlay = tmp_path / "rpms", tmp_path / "images", tmp_path / "overlay.qcow2"
    taken = rpm_racing(monkeypatch, times=1)
    located: list[Path] = []
    locate = image.locate_appliance

    def locate_counted(*args: Any) -> Path:
        located.append(locate(*args))
        return located[-1]

    monkeypatch.setattr(image, "locate_appliance", locate_counted)
    disk = prepare_appliance_disk(demo_appliance.rpm, rpms, images, overlay)
    [pruned] = taken
    # Taken out of the RPM again, to the same place: a second extraction, not the inode number
    # (the filesystem may give the new file the pruned one's).
    assert located == [pruned, pruned] and disk.appliance == pruned and pruned.is_file()
    assert disk.base.is_file() and backing_file(overlay) == disk.base.resolve()


def test_a_launch_whose_rpm_ova_is_pruned_every_time_says_so(
    demo_appliance: DemoAppliance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rpms, images, overlay = tmp_path / "rpms", tmp_path / "images", tmp_path / "overlay.qcow2"
    taken = rpm_racing(monkeypatch, times=image.PREPARE_ATTEMPTS)
    with pytest.raises(StorageError, match=r"removed from .* before it could be read") as info:
        prepare_appliance_disk(demo_appliance.rpm, rpms, images, overlay)
    assert len(taken) == image.PREPARE_ATTEMPTS
    assert "--unused-for 0" in (info.value.hint or "")
    assert not overlay.exists()
