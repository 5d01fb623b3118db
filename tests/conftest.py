"""Fixtures shared by every tier, the `--regen-golden` switch (tests/fixtures/golden.py), and
the lanes of a parallel run (tests/lanes.py: scripts/test.sh runs two pytest-xdist workers)."""

from typing import Any

import pytest

from tests.fixtures.appliance import debian_test_disk, demo_appliance, demo_qcow2_rpm
from tests.fixtures.customize import customized_build, guest_facts, second_pass_disk
from tests.fixtures.golden import add_regen_option, golden
from tests.fixtures.libvirt import isolated_network, launch_storage, libvirt_uri
from tests.fixtures.release import foreign_key, release_key, small_rpm
from tests.lanes import LaneScheduling, misplaced_libvirt_modules

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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LaneScheduling:
    return LaneScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A module on the host's libvirtd outside the libvirt lane would race the lane's
    modules (with xdist): refuse the run rather than let it be flaky."""
    misplaced = misplaced_libvirt_modules(items)
    if misplaced:
        raise pytest.UsageError(
            f"{', '.join(misplaced)}: on the host's libvirtd but not in tests/lanes.py's "
            "LIBVIRT_MODULES; add it there")
