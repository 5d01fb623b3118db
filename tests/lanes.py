"""The lanes of a parallel test run: scripts/test.sh runs two pytest-xdist workers, and each
lane's modules run one after the other on one worker.

- "libvirt": every module that uses the host's libvirtd, which they share: the daemons the
  session's fixture starts, the isolated networks defined and removed by name, the domains'
  fixed names, the VM boots. Never two such modules at once.
- "fleet": the fleet's modules check what the whole machine holds before and after (network
  namespaces with the fleet's prefix, Ansible's payloads in /tmp).
- every other module is a lane of its own (its module fixtures are made once).

The scheduler sees only node ids, so the libvirt lane is a list of paths; collection checks
the list against what the modules really use (`misplaced_libvirt_modules`).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

LIBVIRT_LANE = "libvirt"
FLEET_LANE = "fleet"
VM_DIR = "tests/vm/"
FLEET_DIR = "tests/fleet/"
LIBVIRT_MODULES = frozenset({
    "tests/integration/test_domain_hypervisor.py",
    "tests/integration/test_domain_launch.py",
    "tests/integration/test_launch_bad_input.py",
    "tests/integration/test_libvirt_service.py",
    "tests/integration/test_release_agent_pipeline.py",
    "tests/integration/test_release_pipeline.py",
})
# The fixtures that reach the host's libvirtd; a module that asks for them by name while it
# runs (request.getfixturevalue) says so with a module constant USES_LIBVIRTD = True.
LIBVIRT_FIXTURES = frozenset({"libvirt_uri", "isolated_network", "launch_storage"})


def module_of(nodeid: str) -> str:
    """The module path of a node id (`tests/dir/test_x.py::test_name[param]`)."""
    return nodeid.split("::", 1)[0]


def lane(nodeid: str) -> str:
    """The lane of a test, from its node id."""
    module = module_of(nodeid)
    if module.startswith(VM_DIR) or module in LIBVIRT_MODULES:
        return LIBVIRT_LANE
    if module.startswith(FLEET_DIR):
        return FLEET_LANE
    return module


class LaneScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's scope scheduling with the lanes above as the scopes (largest first)."""

    def _split_scope(self, nodeid: str) -> str:
        return lane(nodeid)


def uses_libvirt(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    declared = bool(getattr(getattr(item, "module", None), "USES_LIBVIRTD", False))
    return (declared or item.get_closest_marker("vm") is not None
            or bool(names & LIBVIRT_FIXTURES))


def misplaced_libvirt_modules(items: Iterable[pytest.Item]) -> list[str]:
    """The modules of `items` that use the host's libvirtd outside the libvirt lane."""
    return sorted({module_of(item.nodeid) for item in items
                   if uses_libvirt(item) and lane(item.nodeid) != LIBVIRT_LANE})
