"""Two clean builds of the debian-test appliance with the same SOURCE_DATE_EPOCH give the same
disk, OVA and RPM bytes.

Each build runs in its own interpreter (its own hash seed) with its own empty stage cache, a
different umask, time zone and locale, through the project's build_appliance API. Each starts
from a copy of the .deb files the default cache has downloaded (HE_BUILDER_DEB_CACHE): they are
inputs, the same bytes whoever fetches them, and debootstrap checks each against the archive's
checksums. Everything made from them (the debootstrapped root, the disk, the OVA, the RPM) is
built twice, both builds at the same time. About 3 minutes here; deselect with `-m "not slow"`.
When it fails, compare the two disks with `diffoscope` (docs/appliance-backends.md).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from builder.console import Console
from builder.disk.debian_standin import ENV_DEB_CACHE
from builder.disk.registry import load_recipe
from builder.pipeline.appliance import BuildOptions, build_appliance
from builder.pipeline.store import default_cache_root

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCH = "1700000000"
# What differs between the two builds besides time, place and process.
VARIATIONS = (
    {"umask": 0o022, "TZ": "UTC", "LANG": "C.UTF-8"},
    {"umask": 0o027, "TZ": "Pacific/Chatham", "LANG": "fr_FR.UTF-8"},
)


def build_once(root: str, variation: dict[str, object], debs: str) -> dict[str, tuple[str, int]]:
    """One build from an empty cache under `root`; returns each artifact's (sha256, size)."""
    os.umask(int(str(variation["umask"])))
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, ENV_DEB_CACHE: debs,
           "TZ": str(variation["TZ"]), "LANG": str(variation["LANG"])}
    build = build_appliance(load_recipe("debian-test"), out_dir=Path(root) / "out",
                            options=BuildOptions(), cache_root=Path(root) / "cache",
                            console=Console(), env=env)
    assert not any(artifact.reused for artifact in build.artifacts)
    return {a.stage: (a.sha256, a.size) for a in build.artifacts}


def test_two_clean_builds_give_the_same_disk_ova_and_rpm(tmp_path: Path) -> None:
    shared = default_cache_root(os.environ) / "debs"
    spawn = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        futures = []
        for index, variation in enumerate(VARIATIONS):
            root = tmp_path / f"build{index}"
            debs = root / "debs"
            # Its own copy: a debootstrap holds its download directory's lock to the end.
            if shared.is_dir():
                shutil.copytree(shared, debs, ignore=shutil.ignore_patterns(".lock"))
            else:
                debs.mkdir(parents=True)
            # One new interpreter per build, both at once.
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=1, mp_context=spawn))
            futures.append(pool.submit(build_once, str(root), variation, str(debs)))
        first, second = (future.result() for future in futures)
    assert set(first) == {"disk", "ova", "rpm"}
    for stage in ("disk", "ova", "rpm"):
        assert first[stage] == second[stage], f"{stage}: {first[stage]} != {second[stage]}"
    # Both caches really built every stage (nothing came from a shared place but the .debs).
    for index in range(2):
        cache = tmp_path / f"build{index}" / "cache"
        assert len(list((cache / "rootfs").iterdir())) == 1
        assert len(list((cache / "disk").iterdir())) == 1
