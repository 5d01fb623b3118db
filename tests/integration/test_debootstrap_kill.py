"""he-build killed alone (kill -9, the OOM killer) while debootstrap configures the kernel
package: nothing debootstrap started runs on into the dead build's partial root.

The moment is `mkinitramfs` under the kernel's postinst under `dpkg --configure`, where a plain
debootstrap left 9 processes running (bench.kill_debootstrap, which this samples). The build
is the real debian-test recipe from an empty stage cache, from a copy of the .deb files the
default cache has downloaded (as tests/integration/test_appliance_repro.py). About a minute;
deselect with `-m "not slow"`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.kill_debootstrap import kill_at
from builder.pipeline.store import default_cache_root

pytestmark = [
    pytest.mark.integration, pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root"),
]


def test_nothing_debootstrap_started_outlives_a_killed_build(tmp_path: Path) -> None:
    shared = default_cache_root(os.environ) / "debs"
    debs = tmp_path / "debs"
    # Its own copy: a debootstrap holds its download directory's lock to the end.
    if shared.is_dir():
        shutil.copytree(shared, debs, ignore=shutil.ignore_patterns(".lock"))
    else:
        debs.mkdir()
    outcome = kill_at("configure", tmp_path / "work", debs)
    assert outcome.seen >= 5  # debootstrap, dpkg, the postinst, run-parts, mkinitramfs
    assert outcome.surviving == ()
