"""Golden OVF documents: both layouts (oVirt's for hosted-engine, DMTF's standard one for
virt-v2v), BIOS and UEFI, rendered from a fixed ApplianceMeta and fixed disk facts (no disk).
tests/integration/test_golden_consumers.py reads the same files as their consumers do."""

from __future__ import annotations

import pytest

from builder.model import Firmware
from builder.ova.ovf import render_ovf
from builder.ova.pack import OvaLayout
from tests.fixtures.golden import GoldenFiles
from tests.fixtures.golden_inputs import FIRMWARES, OVF_CREATED, appliance, ovf_disk

# The file name says which layout: `ovirt` (--format ovirt) or `standard` (--format ovf).
LAYOUT_NAMES: dict[OvaLayout, str] = {"ovirt": "ovirt", "ovf": "standard"}
VARIANTS: list[tuple[OvaLayout, Firmware]] = [
    (layout, firmware) for layout in LAYOUT_NAMES for firmware in FIRMWARES]


def golden_name(layout: OvaLayout, firmware: Firmware) -> str:
    return f"ovf/{LAYOUT_NAMES[layout]}-{firmware}.ovf"


def golden_names() -> set[str]:
    """Every golden file this module checks (tests/unit/test_golden_files.py uses it)."""
    return {golden_name(layout, firmware) for layout, firmware in VARIANTS}


def render(layout: OvaLayout, firmware: Firmware) -> bytes:
    meta = appliance(firmware)
    vm_id, disk = ovf_disk(meta, layout)
    return render_ovf(meta, vm_id, disk, layout, OVF_CREATED)


@pytest.mark.parametrize(("layout", "firmware"), VARIANTS)
def test_ovf_matches_golden(golden: GoldenFiles, layout: OvaLayout, firmware: Firmware) -> None:
    golden.check(golden_name(layout, firmware), render(layout, firmware))
