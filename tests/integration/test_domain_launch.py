"""he-launch's domain lifecycle on libvirt's test driver: refuse, replace, clean up on timeout.

The test driver runs no guest, so its channel never opens: every launch here ends in the boot
timeout, which is what exercises the failure cleanup. Booting for real is the vm tier's job.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from builder.launch.cli import main
from builder.virt.domain import DomainSpec, render_domain_xml
from builder.virt.hypervisor import Hypervisor
from tests.fixtures.appliance import DemoAppliance, demo_appliance

pytestmark = pytest.mark.integration
__all__ = ["demo_appliance"]

TEST_URI = "test:///default"
NAME = "he-engine-drv"


def launch(ova: Path, storage: Path, *extra: str) -> int:
    return main(["--appliance", str(ova), "--no-seed", "--site", "drv", "--no-network",
                 "--uri", TEST_URI, "--storage", str(storage), "--boot-timeout", "1", *extra])


def test_an_existing_domain_is_refused_then_replaced_and_cleaned_up(
    demo_appliance: DemoAppliance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    with Hypervisor(TEST_URI) as hv:
        old = hv.define(render_domain_xml(DomainSpec(
            name=NAME, uuid=uuid.uuid4(), virt_type="qemu", memory_mib=64, vcpus=1)))
        try:
            assert launch(demo_appliance.ova, tmp_path) == 2
            assert "already exists" in capsys.readouterr().err
            assert hv.lookup(NAME) is not None

            assert launch(demo_appliance.ova, tmp_path, "--replace", "--json") == 21
            captured = capsys.readouterr()
            assert "replacing the existing domain" in captured.err
            assert f"removed the domain {NAME}" in captured.err
            assert json.loads(captured.out)["exit_code"] == 21
            assert hv.lookup(NAME) is None
            assert (tmp_path / "images").is_dir()  # the unpacked image stays for the rerun
        finally:
            old.remove()


def test_keep_leaves_the_failed_domain_for_inspection(
    demo_appliance: DemoAppliance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    with Hypervisor(TEST_URI) as hv:
        try:
            assert launch(demo_appliance.ova, tmp_path, "--keep") == 21
            assert "kept the domain" in capsys.readouterr().err
            kept = hv.lookup(NAME)
            assert kept is not None and kept.is_persistent()
        finally:
            handle = hv.lookup(NAME)
            if handle is not None:
                handle.remove()
