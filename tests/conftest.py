"""Fixtures shared by every tier, the `--regen-golden` switch (tests/fixtures/golden.py), and
the lanes of a parallel run (scripts/test.sh runs pytest-xdist with `--dist loadgroup`)."""

from pathlib import Path

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


# What one libvirtd and its host share: the daemons the session's fixture starts, the isolated
# network it defines and removes, the domains' fixed names. A module that uses any of them, or
# boots a VM, or says so (USES_LIBVIRTD = True: it asks for the fixtures by name while it runs),
# runs in the one "libvirt" lane: never two such modules at once.
LIBVIRT_FIXTURES = frozenset({"libvirt_uri", "isolated_network", "launch_storage"})
LIBVIRT_LANE = "libvirt"
# The fleet's tests check what the whole machine holds (network namespaces with the fleet's
# prefix, Ansible's payloads in /tmp) before and after: one lane too.
FLEET_LANE = "fleet"
FLEET_DIR = Path(__file__).parent / "fleet"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test its lane (xdist group): its module's own (a module's fixtures are then
    made once), or the shared lane of the libvirt or fleet modules. Without xdist the groups
    change nothing."""
    on_libvirt = {item.path for item in items if uses_libvirt(item)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(lane_of(item.path, on_libvirt)))


def uses_libvirt(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    declared = bool(getattr(getattr(item, "module", None), "USES_LIBVIRTD", False))
    return (declared or item.get_closest_marker("vm") is not None
            or bool(names & LIBVIRT_FIXTURES))


def lane_of(path: Path, on_libvirt: set[Path]) -> str:
    if path in on_libvirt:
        return LIBVIRT_LANE
    if path.is_relative_to(FLEET_DIR):
        return FLEET_LANE
    return str(path.relative_to(Path(__file__).parent))
