"""The RPM's small files: the discovery file read back by both of its readers (hosted-engine-
setup's ConfigParser and the role's grep | cut), the metadata JSON, the recipe's `rpm:` and
`firmware` fields with one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from builder.disk.registry import load_recipe
from builder.errors import InputError, IntegrityError
from builder.model import PackageNames
from builder.ova.digests import FileDigests
from builder.rpm.metadata import (
    parse_metadata,
    read_like_hosted_engine,
    read_like_the_role,
    render_discovery,
    render_metadata,
    rpm_layout,
)

SHA1 = "a" * 40
DIGESTS = FileDigests(size=123, sha1=SHA1, sha256="b" * 64)


def test_both_generations_are_named_as_ovirt_names_them() -> None:
    recipe = load_recipe("kickstart-centos9")
    ova = rpm_layout("ova", recipe.meta, recipe.package)
    assert (ova.package, ova.discovery_path) == (
        "ovirt-engine-appliance", "/etc/ovirt-hosted-engine/10-appliance.conf")
    assert ova.image_path == ("/usr/share/ovirt-engine-appliance/"
                              "ovirt-engine-appliance-4.5.6-1.el9.ova")
    assert ova.provides == ("ovirt-engine-appliance-centos9 = 4.5.6-1.el9",)
    qcow2 = rpm_layout("qcow2", recipe.meta, recipe.package)
    assert (qcow2.package, qcow2.discovery_path) == (
        "ovirt-engine-appliance-centos9", "/etc/ovirt-hosted-engine/10-appliance-centos9.conf")
    assert qcow2.image_file == "ovirt-engine-appliance-centos9-4.5.6-1.el9.qcow2"
    assert qcow2.provides == ("ovirt-engine-appliance = 4.5.6",)
    assert recipe.meta.firmware == "uefi" and load_recipe("debian-test").meta.firmware == "bios"


def test_discovery_file_reads_back_through_both_readers() -> None:
    recipe = load_recipe("debian-test")
    names = replace(recipe.package, summary="The 100% oVirt Engine Appliance image")
    layout = rpm_layout("ova", recipe.meta, names)
    text = render_discovery(layout, SHA1).decode()
    assert "description=The 100%% oVirt" in text  # ConfigParser interpolation turns it back
    assert read_like_hosted_engine(text) == {
        "description": "The 100% oVirt Engine Appliance image (OVA)",
        "version": "4.5.0-0.debiantest", "path": layout.image_path, "sha1sum": SHA1}
    assert read_like_the_role(text, "path") == layout.image_path
    assert read_like_the_role(text, "sha1sum") == SHA1


def test_a_line_the_role_would_misread_is_refused() -> None:
    recipe = load_recipe("debian-test")
    meta = replace(recipe.meta, version="4.5path")
    with pytest.raises(InputError, match="would read path wrongly"):
        render_discovery(rpm_layout("ova", meta, recipe.package), SHA1)


def test_metadata_round_trip_and_bad_input() -> None:
    recipe = load_recipe("debian-test")
    layout = rpm_layout("qcow2", recipe.meta, recipe.package)
    data = render_metadata(layout, recipe.meta, DIGESTS, 1_700_000_000)
    parsed = parse_metadata(data, "x.json")
    assert (parsed.format, parsed.image, parsed.firmware) == ("qcow2", layout.image_file, "bios")
    assert (parsed.memory_mib, parsed.vcpus, parsed.sha256) == (1024, 2, "b" * 64)
    assert parsed.build_time == "2023-11-14T22:13:20Z"
    with pytest.raises(IntegrityError, match="not appliance metadata"):
        parse_metadata(b"{}", "x.json")
    bad = json.loads(data) | {"firmware": "coreboot"}
    with pytest.raises(IntegrityError, match="malformed"):
        parse_metadata(json.dumps(bad).encode(), "x.json")


RECIPE = """backend: debian-test
appliance: {{name: x-appliance, version: "1.0", release: "1", memory_mib: 1024, vcpus: 2,
            description: d{firmware}}}
{rpm}options: {{}}
"""


@pytest.mark.parametrize(("firmware", "rpm", "problem"), [
    (", firmware: efi", "", "3: appliance.firmware: must be 'bios' or 'uefi', got 'efi'"),
    ("", "rpm: {summary: The appliance path}\n", "4: rpm.summary: must not contain 'path': "
     "the Ansible role finds the discovery file's lines with `grep path`"),
    ("", "rpm: {summary: Ends with a dot.}\n", "4: rpm.summary: one line that starts with a "
     "capital letter or a digit and does not end with a period or a space: 'Ends with a dot.'"),
    ("", "rpm: {provides: ['Bad Name']}\n", "4: rpm.provides: not RPM package names: Bad Name"),
    ("", "rpm: {distro: CentOS-9}\n", "4: rpm.distro: lowercase letters and digits, starting "
     "with a letter: 'CentOS-9'"),
    ("", "rpm: {license: 'GPL; rm'}\n", "4: rpm.license: letters, digits, spaces and .+() "
     "only: 'GPL; rm'"),
    ("", "rpm: {nmae: x}\n", "4: rpm.nmae: unknown field; did you mean 'name'?"),
])
def test_recipe_rpm_and_firmware_errors(tmp_path: Path, firmware: str, rpm: str,
                                        problem: str) -> None:
    """Each bad field is one line at its own line of the file, in words (not pydantic's)."""
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(firmware=firmware, rpm=rpm))
    with pytest.raises(InputError) as info:
        load_recipe(str(path))
    assert info.value.message == f"recipe {path} has 1 problem"
    assert info.value.problems == (f"{path}:{problem}",)


def test_recipe_rpm_defaults_are_ovirts(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(firmware="", rpm="rpm: {distro: almalinux9}\n"))
    recipe = load_recipe(str(path))
    assert recipe.meta.firmware == "bios"
    assert recipe.package == PackageNames(distro="almalinux9",
                                          provides=("ovirt-engine-appliance-almalinux9",))
