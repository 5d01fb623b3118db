"""Fixtures shared by every tier, and the `--regen-golden` switch (tests/fixtures/golden.py)."""

import pytest

from tests.fixtures.appliance import debian_test_disk, demo_appliance, demo_qcow2_rpm
from tests.fixtures.customize import customized_build, guest_facts, second_pass_disk
from tests.fixtures.golden import add_regen_option, golden
from tests.fixtures.libvirt import isolated_network, launch_storage, libvirt_uri
from tests.fixtures.release import foreign_key, release_key, small_rpm

__all__ = [
    "customized_build",
    "debian_test_disk",
    "demo_appliance",
    "demo_qcow2_rpm",
    "foreign_key",
    "golden",
    "guest_facts",
    "isolated_network",
    "launch_storage",
    "libvirt_uri",
    "release_key",
    "second_pass_disk",
    "small_rpm",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_regen_option(parser)
