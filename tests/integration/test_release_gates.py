"""The release gates run the real checkers (rpmlint, rpmkeys, xmllint with DMTF's XSD,
ksvalidator, Debian's cloud-init) and each one is shown to fail on a bad input too."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from builder.disk.kickstart import KickstartInputs, Repo, render_kickstart
from builder.errors import IntegrityError, MissingPrerequisiteError
from builder.gpg import sign_rpm, signing_home
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.inventory.secrets import resolve_secrets
from builder.model import ApplianceMeta
from builder.ova.ovf import DiskFacts, render_ovf
from builder.release.gates import (
    CloudInit,
    check_cloud_config,
    check_kickstart,
    check_ovf_schema,
    check_rpm_signature,
    check_rpmlint,
    cloud_init_version,
    default_cloud_init,
    extract_ovf,
)
from builder.resources import OVF_SCHEMA_DIR
from builder.seed.master import render_seed
from tests.fixtures.appliance import DemoAppliance
from tests.fixtures.release import EPOCH, KeyFiles

pytestmark = pytest.mark.integration

META = ApplianceMeta(name="ovirt-engine-appliance", version="4.5", release="1",
                     memory_mib=4096, vcpus=2, description="engine appliance")
DISK = DiskFacts(href="images/disk.qcow2", file_id="file1", disk_id="disk1", image_id="image1",
                 file_size=1 << 30, virtual_size=50 << 30, actual_size=1 << 30)
# A small OVF 1.1 envelope that follows DMTF's schema (RASD elements in schema order).
VALID_OVF = """\
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
          ovf:version="1.1.0">
  <References>
    <File ovf:href="disk.qcow2" ovf:id="file1"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:capacity="1073741824" ovf:diskId="disk1" ovf:fileRef="file1"
          ovf:format="http://www.gnome.org/~markmc/qcow-image-format.html"/>
  </DiskSection>
  <VirtualSystem ovf:id="appliance">
    <Info>A virtual machine</Info>
    <VirtualHardwareSection>
      <Info>Virtual hardware</Info>
      <Item>
        <rasd:ElementName>1 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""
KICKSTART = KickstartInputs(
    install_tree="http://mirror.example/centos/9-stream/BaseOS/x86_64/os/",
    timezone="UTC",
    root_password_hash="$6$saltsalt$" + "a" * 86,
    repos=(Repo("ovirt-45", "http://mirror.example/ovirt/4.5/el9/"),),
    extra_packages=(),
)


def ovf_schema_dir() -> Path:
    """DMTF's OVF 1.1 schemas with local imports (top-level ovf/xsd/, shipped in the wheel)."""
    assert (OVF_SCHEMA_DIR / "dsp8023_1.1.0.xsd").is_file()
    return OVF_SCHEMA_DIR


# --- RPM ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_demo_rpm(demo_appliance: DemoAppliance, release_key: KeyFiles,
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("signed-demo")
    with signing_home(release_key.signing_key(), release_key.env,
                      signature_time=EPOCH) as signer:
        return sign_rpm(signer, demo_appliance.rpm, out / demo_appliance.rpm.name)


def test_rpmlint_passes_the_signed_appliance_rpm(signed_demo_rpm: Path,
                                                 release_key: KeyFiles) -> None:
    result = check_rpmlint(signed_demo_rpm, public_key=release_key.public)
    assert result.passed, result.detail
    assert result.detail.startswith(f"{signed_demo_rpm.name}: 0 errors")
    assert "signature checked against the release key" in result.detail


def test_rpmlint_fails_an_unsigned_or_foreign_signed_rpm(
        demo_appliance: DemoAppliance, signed_demo_rpm: Path, foreign_key: KeyFiles) -> None:
    unsigned = check_rpmlint(demo_appliance.rpm)
    assert not unsigned.passed
    assert "E: no-signature" in unsigned.detail
    foreign = check_rpmlint(signed_demo_rpm, public_key=foreign_key.public)
    assert not foreign.passed
    assert "SIGNATURES NOT OK" in foreign.detail


def test_rpmlint_reports_the_first_error(small_rpm: Path) -> None:
    result = check_rpmlint(small_rpm, allowed=("no-signature",))
    assert not result.passed
    assert result.detail.startswith("he-hello.noarch: E: no-packager-tag")
    assert result.detail.endswith("more)")


def test_rpm_signature_gate(signed_demo_rpm: Path, demo_appliance: DemoAppliance,
                            release_key: KeyFiles, foreign_key: KeyFiles) -> None:
    good = check_rpm_signature(signed_demo_rpm, release_key.public)
    assert good.passed and good.detail.endswith("digests signatures OK")
    assert not check_rpm_signature(signed_demo_rpm, foreign_key.public).passed
    unsigned = check_rpm_signature(demo_appliance.rpm, release_key.public)
    assert not unsigned.passed and "not signed" in unsigned.detail


# --- OVF ---------------------------------------------------------------------------------


def test_a_valid_ovf_passes(tmp_path: Path) -> None:
    ovf = tmp_path / "appliance.ovf"
    ovf.write_text(VALID_OVF)
    result = check_ovf_schema(ovf, ovf_schema_dir())
    assert result.passed, result.detail
    assert result.detail == "appliance.ovf validates against dsp8023_1.1.0.xsd"


def test_an_ovf_breaking_the_schema_fails_with_the_line(tmp_path: Path) -> None:
    ovf = tmp_path / "broken.ovf"
    ovf.write_text(VALID_OVF.replace("<References>", "<Bogus/><References>", 1))
    result = check_ovf_schema(ovf, ovf_schema_dir())
    assert not result.passed
    assert "broken.ovf:" in result.detail and "Bogus" in result.detail


def test_the_ovirt_dialect_is_not_dmtf_ovf(tmp_path: Path) -> None:
    # oVirt's layout uses its own namespace spelling: the gate must not wave it through.
    ovf = tmp_path / "ovirt.ovf"
    ovf.write_bytes(render_ovf(META, "vm1", DISK, "ovirt", "2023-11-14T22:13:20Z"))
    assert not check_ovf_schema(ovf, ovf_schema_dir()).passed


def test_extract_ovf_from_an_ova(tmp_path: Path) -> None:
    ova = tmp_path / "appliance.ova"
    ovf_bytes = VALID_OVF.encode()
    with tarfile.open(ova, "w") as tar:
        for name, data in (("appliance.ovf", ovf_bytes), ("appliance.mf", b"manifest\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    extracted = extract_ovf(ova, tmp_path / "out" / "appliance.ovf")
    assert extracted.read_bytes() == ovf_bytes
    assert check_ovf_schema(extracted, ovf_schema_dir()).passed
    (tmp_path / "junk.ova").write_bytes(b"not a tar")
    with pytest.raises(IntegrityError, match="not a readable OVA"):
        extract_ovf(tmp_path / "junk.ova", tmp_path / "x.ovf")


# --- kickstart ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["RHEL9", "RHEL10"])
def test_ksvalidator_passes_the_rendered_kickstart(tmp_path: Path, version: str) -> None:
    ks = tmp_path / "appliance.ks"
    ks.write_text(render_kickstart(KICKSTART))
    result = check_kickstart(ks, version)
    assert result.passed, result.detail
    assert result.name == f"ksvalidator-{version}"


def test_ksvalidator_leaves_no_copy_of_the_kickstart_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ksvalidator itself leaves its preprocessed copy (rootpw hash included) in TMPDIR.
    ks = tmp_path / "appliance.ks"
    ks.write_text(render_kickstart(KICKSTART))
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    assert check_kickstart(ks, "RHEL9").passed
    assert list(tmpdir.iterdir()) == []


def test_ksvalidator_fails_an_unknown_command(tmp_path: Path) -> None:
    ks = tmp_path / "broken.ks"
    ks.write_text(render_kickstart(KICKSTART) + "\nfrobnicate --now\n")
    result = check_kickstart(ks, "RHEL9")
    number = len(render_kickstart(KICKSTART).splitlines()) + 2
    assert (result.passed, result.detail) == (False, (
        f"line {number}: unknown command (the word is not shown: a file that is not a "
        "kickstart may hold a secret)"))


def test_ksvalidator_names_the_line_and_keeps_a_passwords_words_out(tmp_path: Path) -> None:
    """The gate's detail goes into the release report: a rootpw line ksvalidator refuses
    (a password with a space, unquoted) is named, its words are not."""
    text = render_kickstart(KICKSTART)
    ks = tmp_path / "plain.ks"
    ks.write_text(text + "rootpw --plaintext my s3cret\n")
    result = check_kickstart(ks, "RHEL9")
    number = len(text.splitlines()) + 1
    assert (result.passed, result.detail) == (False, (
        f"line {number}: Unexpected arguments to rootpw command (the arguments are not shown: "
        "the rootpw command can hold a password)"))


def test_ksvalidator_fails_what_rhel10_dropped(tmp_path: Path) -> None:
    ks = tmp_path / "old.ks"
    ks.write_text(render_kickstart(KICKSTART).replace("--exclude-weakdeps", "--excludeWeakdeps"))
    assert not check_kickstart(ks, "RHEL10").passed


# --- cloud-init --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cloud_init() -> CloudInit:
    tool = default_cloud_init()
    assert cloud_init_version(tool).startswith("22.4"), "scripts/setup.sh unpacks cloud-init"
    return tool


@pytest.mark.parametrize("site", ["dc1", "dc2"])
def test_cloud_init_accepts_the_example_seeds(cloud_init: CloudInit, tmp_path: Path,
                                              site: str) -> None:
    inventory = load_inventory(DEFAULT_INVENTORY)
    chosen = inventory.sites[site]
    secrets = resolve_secrets(chosen, base_dir=inventory.path.parent, env={}, prompt=None)
    user_data = tmp_path / "user-data"
    user_data.write_text(render_seed(chosen, secrets).user_data)
    result = check_cloud_config(user_data, cloud_init)
    assert result.passed, result.detail
    assert result.detail.startswith("Valid cloud-config")


def test_cloud_init_rejects_a_broken_config(cloud_init: CloudInit, tmp_path: Path) -> None:
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\nusers: 3\nruncmd:\n  - [echo, hi]\n")
    result = check_cloud_config(user_data, cloud_init)
    assert not result.passed
    assert "users: 3 is not of type" in result.detail


def test_a_missing_cloud_init_is_a_prerequisite_error(tmp_path: Path) -> None:
    (tmp_path / "user-data").write_text("#cloud-config\n")
    with pytest.raises(MissingPrerequisiteError, match="cloud-init is not unpacked") as caught:
        check_cloud_config(tmp_path / "user-data", CloudInit(tmp_path / "nowhere"))
    assert caught.value.hint == "run scripts/setup.sh"
