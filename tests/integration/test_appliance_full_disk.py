"""`he-build appliance` on a full output filesystem: one line, exit 6, no partial artifact.

The full disk is real: a 64 MiB tmpfs mounted for the test (needs root; skipped otherwise)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.errors import ExitCode
from tests.fixtures.appliance import DemoAppliance
from tests.integration.test_appliance_cli import seeded_cache

pytestmark = pytest.mark.integration


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_output_disk_is_one_line_exit_6_and_leaves_nothing(
        demo_appliance: DemoAppliance, small_filesystem: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HE_BUILDER_CACHE", str(seeded_cache(tmp_path, "cache", ("disk",))))
    out = small_filesystem / "out"
    code = main(["appliance", "--recipe", "debian-test", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == ExitCode.STORAGE, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert str(out) in errors[0] and "No space left on device" in errors[0], errors[0]
    left = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    assert left == [], left
