"""Fixtures shared by every tier."""

from tests.fixtures.appliance import debian_test_disk, demo_appliance, demo_qcow2_rpm
from tests.fixtures.customize import customized_build, guest_facts, second_pass_disk
from tests.fixtures.libvirt import isolated_network, launch_storage, libvirt_uri

__all__ = [
    "customized_build",
    "debian_test_disk",
    "demo_appliance",
    "demo_qcow2_rpm",
    "guest_facts",
    "isolated_network",
    "launch_storage",
    "libvirt_uri",
    "second_pass_disk",
]
