"""The test setup really brings up libvirtd and an isolated network."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.integration


def test_isolated_network_has_no_forward_and_no_ip(libvirt_uri: str, isolated_network: str) -> None:
    xml = subprocess.run(
        ["virsh", "-c", libvirt_uri, "net-dumpxml", isolated_network],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "<forward" not in xml and "<ip" not in xml
    active = subprocess.run(
        ["virsh", "-c", libvirt_uri, "net-info", isolated_network],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "Active:         yes" in active
