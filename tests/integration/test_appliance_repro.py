"""Two clean builds of the debian-test appliance with the same SOURCE_DATE_EPOCH give the same
disk, OVA and RPM bytes.

Each build runs in its own interpreter (its own hash seed) with its own empty stage cache, a
different umask, time zone and locale, through the project's build_appliance API. The
downloaded .deb files are shared between the two (HE_BUILDER_DEB_CACHE, here the default
cache's `debs/`): they are inputs, the same bytes whoever fetches them, and debootstrap checks
each against the archive's checksums. Everything made from them (the debootstrapped root, the
disk, the OVA, the RPM) is built twice. About 6 minutes here; deselect with `-m "not slow"`.
When it fails, compare the two disks with `diffoscope` (docs/appliance-backends.md).
"""

from __future__ import annotations

import multiprocessing
import os
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
    debs = default_cache_root(os.environ) / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    spawn = multiprocessing.get_context("spawn")
    results = []
    for index, variation in enumerate(VARIATIONS):
        root = tmp_path / f"build{index}"
        root.mkdir()
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            results.append(pool.submit(build_once, str(root), variation, str(debs)).result())
    first, second = results
    assert set(first) == {"disk", "ova", "rpm"}
    for stage in ("disk", "ova", "rpm"):
        assert first[stage] == second[stage], f"{stage}: {first[stage]} != {second[stage]}"
    # Both caches really built every stage (nothing came from a shared place but the .debs).
    for index in range(2):
        cache = tmp_path / f"build{index}" / "cache"
        assert len(list((cache / "rootfs").iterdir())) == 1
        assert len(list((cache / "disk").iterdir())) == 1
