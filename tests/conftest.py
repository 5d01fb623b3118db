"""Fixtures shared by every tier."""

from tests.fixtures.appliance import debian_test_disk, demo_appliance
from tests.fixtures.libvirt import isolated_network, launch_storage, libvirt_uri

__all__ = [
    "debian_test_disk",
    "demo_appliance",
    "isolated_network",
    "launch_storage",
    "libvirt_uri",
]
