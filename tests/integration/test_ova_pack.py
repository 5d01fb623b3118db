"""The appliance OVAs read the way their real consumers read them.

oVirt layout: hosted-engine-setup's boot_disk.py (tarfile 'r:gz', the master*.ovf found by name,
memory from the FIRST rasd:VirtualQuantity, vCPUs from num_of_sockets x cpu_per_socket, the disk
at images/ + fileRef), then the Ansible role (`zcat | wc --bytes`, GNU tar --sparse, the disk
found under images/, `qemu-img convert -n -f qcow2 -O raw`). Standard layout: DMTF's OVF 1.1 XSD
with xmllint, and virt-v2v's own OVA reader. Plus verification of good and tampered files,
reproducible bytes and bad input."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.console import Console
from builder.disk.registry import load_recipe
from builder.errors import ExitCode, InputError, IntegrityError
from builder.model import ApplianceMeta, BuiltDisk, Firmware
from builder.ova import pack_ova, unpack_ova, verify_ova
from builder.ova.pack import OvaLayout, render_manifest, write_ova
from builder.repro import sha256_file
from builder.resources import OVF_SCHEMA_DIR
from builder.sparse import sha256_sparse
from tests.fixtures.appliance import DemoAppliance

pytestmark = pytest.mark.integration
MTIME = 1_700_000_000
XSD = OVF_SCHEMA_DIR / "dsp8023_1.1.0.xsd"
OVF = "{http://schemas.dmtf.org/ovf/envelope/1/}"
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"
GIB = 1 << 30
FIRMWARES: tuple[Firmware, ...] = ("bios", "uefi")


def meta() -> ApplianceMeta:
    return load_recipe("debian-test").meta


@pytest.fixture(scope="module")
def qcow2(demo_appliance: DemoAppliance, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zlib qcow2 inside the demo OVA (converting the raw disk again takes ~13 s)."""
    dest = tmp_path_factory.mktemp("qcow2") / "disk.qcow2"
    unpack_ova(demo_appliance.ova, dest)
    return dest


@pytest.fixture(scope="module")
def packed(qcow2: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ova")
    result: dict[str, Path] = {}
    layouts: tuple[OvaLayout, ...] = ("ovirt", "ovf")
    for layout in layouts:
        for firmware in FIRMWARES:
            variant = replace(meta(), firmware=firmware)
            dest = out / f"{layout}-{firmware}.ova"
            write_ova(variant, qcow2, dest, layout=layout, console=Console(), mtime=MTIME)
            result[f"{layout}-{firmware}"] = dest
    result["ovirt"], result["ovf"] = result["ovirt-bios"], result["ovf-bios"]
    return result


def hosted_engine_reads(ova: Path, tmp: Path) -> dict[str, object]:
    """What ovirt-hosted-engine-setup (src/plugins/gr-he-common/vm/boot_disk.py) takes from an
    OVA, step by step as its _check_ovf, _parse_ovf and ImageTransaction.prepare do."""
    with tarfile.open(ova, "r:gz") as tar:
        ovf_xml = next(name for name in tar.getnames()
                       if name.startswith("master") and os.path.splitext(name)[1] == ".ovf")
        tar.extract(member=ovf_xml, path=tmp / "ovf")
        tree = ET.parse(tmp / "ovf" / ovf_xml)
        disk = tree.find("Section/Disk")
        assert disk is not None
        source_image = os.path.join("images", disk.attrib[f"{OVF}fileRef"])

        def first(tag: str) -> str:
            found = tree.find(f"Content/Section/Item/{RASD}{tag}")
            assert found is not None and found.text is not None
            return found.text

        facts: dict[str, object] = {
            "size_gb": int(disk.attrib[f"{OVF}size"]),
            "alias": disk.attrib[f"{OVF}disk-alias"],
            "qcow_size_gb": math.ceil(tar.getmember(source_image).size / GIB),
            "vcpus": int(first("num_of_sockets")) * int(first("cpu_per_socket")),
            "unit": first("AllocationUnits"),
            "memory_mb": int(first("VirtualQuantity")),
            "bios_type": tree.findtext("Content/BiosType"),
        }
    with tarfile.open(ova, "r:gz") as tar:
        source = tar.extractfile(source_image)
        assert source is not None
        with source, (tmp / "disk").open("wb") as dst:
            shutil.copyfileobj(source, dst)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(tmp / "disk")],
                                     capture_output=True, check=True, text=True).stdout)
    facts["disk_format"] = info["format"]
    facts["virtual_size"] = info["virtual-size"]
    facts["compression"] = info["format-specific"]["data"].get("compression-type")
    return facts


def test_hosted_engine_setup_reads_the_ovirt_ova(demo_appliance: DemoAppliance,
                                                 tmp_path: Path) -> None:
    facts = hosted_engine_reads(demo_appliance.ova, tmp_path)
    # The first VirtualQuantity is the memory (1024 MB), not the vCPU count.
    assert facts["memory_mb"] == meta().memory_mib == 1024 and facts["unit"] == "MegaBytes"
    assert facts["vcpus"] == meta().vcpus == 2
    assert facts["size_gb"] == 3 and facts["alias"] == "ovirt-engine-appliance-disk"
    assert facts["qcow_size_gb"] == 1 and facts["bios_type"] == "2"
    assert facts["disk_format"] == "qcow2" and facts["compression"] == "zlib"
    assert facts["virtual_size"] == 3 * GIB


def test_uefi_is_said_as_the_engine_says_it(packed: dict[str, Path], tmp_path: Path) -> None:
    """BiosType 3 is Q35_OVMF in oVirt's engine; absent or 2 reads back as BIOS."""
    assert hosted_engine_reads(packed["ovirt-uefi"], tmp_path)["bios_type"] == "3"
    assert verify_ova(packed["ovirt-uefi"]).firmware == "uefi"
    assert verify_ova(packed["ovirt-bios"]).firmware == "bios"


def pipe(first: list[str], second: list[str]) -> str:
    """`first | second` without a shell."""
    upstream = subprocess.Popen(first, stdout=subprocess.PIPE)
    assert upstream.stdout is not None
    done = subprocess.run(second, stdin=upstream.stdout, capture_output=True, text=True,
                          check=True)
    upstream.stdout.close()
    assert upstream.wait() == 0
    return done.stdout


def test_the_ansible_role_measures_unpacks_and_converts_it(
        demo_appliance: DemoAppliance, tmp_path: Path) -> None:
    """hosted_engine_setup: the space check, `unarchive` (GNU tar --sparse), the disk found
    under images/, then qemu-img convert -n -f qcow2 -O raw onto the target volume: the
    volume ends up holding exactly the appliance's disk."""
    measured = int(pipe(["zcat", str(demo_appliance.ova)], ["wc", "--bytes"]))
    with tarfile.open(demo_appliance.ova, "r:gz") as tar:
        members = tar.getmembers()
    tar_end = members[-1].offset_data + members[-1].size + 2 * tarfile.BLOCKSIZE
    assert measured == tar_end + (-tar_end % tarfile.RECORDSIZE)
    assert measured > demo_appliance.ova.stat().st_size  # not the 0 a plain tar gives
    local = tmp_path / "localvm"
    local.mkdir()
    subprocess.run(["tar", "--sparse", "-xzf", str(demo_appliance.ova), "-C", str(local)],
                   check=True)
    found = [p for p in (local / "images").rglob("*")
             if p.is_file() and re.match(r"^.*.(?<!meta)$", p.name)]
    assert len(found) == 1
    target = tmp_path / "he_virtio_disk"
    with target.open("wb") as handle:
        handle.truncate(3 * GIB)
    subprocess.run(["qemu-img", "convert", "-n", "-f", "qcow2", "-O", "raw", str(found[0]),
                    str(target)], check=True)
    assert sha256_sparse(target) == sha256_sparse(demo_appliance.disk)


def test_gzip_ova_is_reproducible_with_a_fixed_header(qcow2: Path, packed: dict[str, Path],
                                                      tmp_path: Path) -> None:
    again = tmp_path / "again.ova"
    write_ova(meta(), qcow2, again, layout="ovirt", console=Console(), mtime=MTIME)
    data = again.read_bytes()
    assert data == packed["ovirt"].read_bytes()
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
    assert subprocess.run(["gzip", "-t", str(again)], check=False).returncode == 0


def test_ovirt_layout_members_and_manifest_last(packed: dict[str, Path]) -> None:
    with tarfile.open(packed["ovirt"], "r:gz") as tar:
        names = tar.getnames()
        manifest = tar.extractfile(names[-1])
        assert manifest is not None
        lines = manifest.read().decode().splitlines()
    assert re.fullmatch(r"master/vms/([0-9a-f-]{36})/\1\.ovf", names[0])
    assert re.fullmatch(r"images/[0-9a-f-]{36}/[0-9a-f-]{36}", names[1])
    assert names[2] == "ovirt-engine-appliance.mf" and len(names) == 3
    assert [line.split("(")[1].split(")")[0] for line in lines] == names[:2]


def ovf_of(ova: Path) -> bytes:
    with tarfile.open(ova) as tar:
        name = next(n for n in tar.getnames() if n.endswith(".ovf"))
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


@pytest.mark.parametrize("variant", ["ovf-bios", "ovf-uefi"])
def test_standard_ovf_validates_against_dmtf_xsd(packed: dict[str, Path], variant: str,
                                                 tmp_path: Path) -> None:
    descriptor = tmp_path / "appliance.ovf"
    descriptor.write_bytes(ovf_of(packed[variant]))
    done = subprocess.run(["xmllint", "--nonet", "--noout", "--schema", str(XSD),
                           str(descriptor)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "validates" in done.stderr


def test_xsd_catches_what_it_should(packed: dict[str, Path], tmp_path: Path) -> None:
    """The schema check is not a formality: the RASD order the old writer used fails it."""
    text = ovf_of(packed["ovf"]).decode()
    item = re.search(r"<rasd:AllocationUnits>[^<]*</rasd:AllocationUnits>\s*"
                     r"(<rasd:ElementName>[^<]*</rasd:ElementName>)", text)
    assert item is not None
    swapped = text.replace(item.group(0), item.group(1) + item.group(0).replace(item.group(1),
                                                                               ""))
    descriptor = tmp_path / "bad.ovf"
    descriptor.write_text(swapped)
    done = subprocess.run(["xmllint", "--nonet", "--noout", "--schema", str(XSD),
                           str(descriptor)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "AllocationUnits" in done.stderr


def test_standard_layout_order_and_plain_tar(packed: dict[str, Path]) -> None:
    with packed["ovf"].open("rb") as handle:
        assert handle.read(2) != b"\x1f\x8b"
    with tarfile.open(packed["ovf"], "r:") as tar:
        names = tar.getnames()
    assert names == ["ovirt-engine-appliance.ovf", "ovirt-engine-appliance.mf",
                     "ovirt-engine-appliance-disk1.qcow2"]


def virt_v2v_source(ova: Path) -> dict[str, str]:
    """virt-v2v's own OVA reader (--print-source stops before converting the guest: the Debian
    test image carries GRUB's boot code but not the grub tools a conversion runs)."""
    proc = subprocess.run(["virt-v2v", "-i", "ova", str(ova), "--print-source"],
                          capture_output=True, text=True, check=False, timeout=300,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
                               "LIBGUESTFS_BACKEND": "direct"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    facts = {key.strip(): value.strip() for key, _, value in
             (line.partition(":") for line in proc.stdout.splitlines()) if value.strip()}
    facts["disks"] = " ".join(
        proc.stdout.split("disks:", 1)[1].split("removable media:", 1)[0].split())
    return facts


def test_virt_v2v_reads_the_standard_layout(packed: dict[str, Path]) -> None:
    facts = virt_v2v_source(packed["ovf"])
    assert facts["source name"] == "ovirt-engine-appliance"
    assert facts["memory"] == f"{meta().memory_mib << 20} (bytes)"
    assert facts["nr vCPUs"] == str(meta().vcpus)
    assert facts["firmware"] == "bios" and facts["disks"] == "0 [ide]"
    assert virt_v2v_source(packed["ovf-uefi"])["firmware"] == "uefi"


@pytest.mark.parametrize("layout", ["ovirt", "ovf"])
def test_verify_reports_the_appliance(packed: dict[str, Path], layout: str) -> None:
    info = verify_ova(packed[layout])
    assert (info.memory_mib, info.vcpus, info.disk_format) == (1024, 2, "qcow2")
    assert info.virtual_size == 3 << 30 and info.layout == layout
    assert info.compression == ("gzip" if layout == "ovirt" else "none")


def flip_byte(source: Path, dest: Path, offset: int) -> None:
    data = bytearray(source.read_bytes())
    data[offset] ^= 0xFF
    dest.write_bytes(bytes(data))


def test_cli_verify_good_and_tampered(packed: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ova", "verify", str(packed["ovirt"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["memory_mib"], data["vcpus"], data["firmware"]) == (1024, 2, "bios")
    assert data["compression"] == "gzip"
    tampered = tmp_path / "t.ova"
    flip_byte(packed["ovirt"], tampered, packed["ovirt"].stat().st_size // 2)
    assert main(["ova", "verify", str(tampered)]) == ExitCode.INTEGRITY
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("he-build: error:")]
    assert len(errors) == 1 and "checksum mismatch" in errors[0], err


def test_a_broken_gzip_trailer_is_caught(packed: dict[str, Path], tmp_path: Path) -> None:
    """Bytes outside every member (here the CRC-32 of the gzip trailer) are checked too."""
    broken = tmp_path / "b.ova"
    flip_byte(packed["ovirt"], broken, packed["ovirt"].stat().st_size - 6)
    with pytest.raises(IntegrityError, match="not a readable OVA"):
        verify_ova(broken)


def rebuild(source: Path, dest: Path, compress: bool, edit: dict[str, bytes]) -> None:
    """The same members in a new archive, some replaced, the manifest made to match."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(source) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            members.append((member, edit.get(member.name, handle.read())))
    digests = [(m.name, hashlib.sha256(data).hexdigest())
               for m, data in members if not m.name.endswith(".mf")]
    with tarfile.open(dest, "w:gz" if compress else "w") as out:
        for member, content in members:
            data = render_manifest(digests) if member.name.endswith(".mf") else content
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))


def test_an_ovf_hosted_engine_would_misread_is_refused(packed: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """A VirtualQuantity in the CPU Item (what the old writer did) would be read as the memory
    by hosted-engine: the verifier refuses it even with a matching manifest."""
    text = ovf_of(packed["ovirt"]).decode()
    cpu_item = "<rasd:max_num_of_vcpus>8</rasd:max_num_of_vcpus>"
    assert cpu_item in text
    edited = text.replace(cpu_item, cpu_item + "<rasd:VirtualQuantity>2</rasd:VirtualQuantity>")
    with tarfile.open(packed["ovirt"]) as tar:
        ovf_name = tar.getnames()[0]
    bad = tmp_path / "bad.ova"
    rebuild(packed["ovirt"], bad, True, {ovf_name: edited.encode()})
    with pytest.raises(IntegrityError, match="hosted-engine would read 2 MB of memory"):
        verify_ova(bad)


def test_a_plain_tar_in_ovirt_layout_still_unpacks(packed: dict[str, Path],
                                                   tmp_path: Path) -> None:
    """he-launch takes plain OVAs too (such as this project built before)."""
    plain = tmp_path / "plain.ova"
    rebuild(packed["ovirt"], plain, False, {})
    info = unpack_ova(plain, tmp_path / "disk.qcow2")
    assert info.compression == "none" and info.layout == "ovirt"
    assert sha256_file(tmp_path / "disk.qcow2") == verify_ova(packed["ovirt"]).disk_sha256


def test_without_the_disk_digest_only_the_disk_goes_unhashed(
        packed: dict[str, Path], tmp_path: Path) -> None:
    info = verify_ova(packed["ovf"])
    tampered = tmp_path / "t.ova"
    with tarfile.open(packed["ovf"]) as tar:
        disk = tar.getmember(info.disk_member)
    flip_byte(packed["ovf"], tampered, disk.offset_data + disk.size // 2)
    assert verify_ova(tampered, hash_disk=False).disk_sha256 == info.disk_sha256
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        verify_ova(tampered)
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        unpack_ova(tampered, tmp_path / "disk.qcow2")
    assert not (tmp_path / "disk.qcow2").exists()
    edited = tmp_path / "e.ova"
    edited.write_bytes(packed["ovf"].read_bytes().replace(b">1024<", b">9999<", 1))
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        verify_ova(edited, hash_disk=False)


def test_missing_manifest_and_junk(packed: dict[str, Path], tmp_path: Path) -> None:
    bare = tmp_path / "bare.ova"
    with tarfile.open(packed["ovf"]) as tar, tarfile.open(bare, "w") as out:
        for member in tar.getmembers():
            if not member.name.endswith(".mf"):
                out.addfile(member, tar.extractfile(member))
    with pytest.raises(IntegrityError, match=r"exactly one \.mf"):
        verify_ova(bare)
    junk = tmp_path / "junk.ova"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(IntegrityError):
        verify_ova(junk)
    truncated = tmp_path / "cut.ova"
    truncated.write_bytes(packed["ovirt"].read_bytes()[: 1 << 20])
    with pytest.raises(IntegrityError, match="not a readable OVA"):
        verify_ova(truncated)


def test_unpack_is_sparse_identical_and_atomic(packed: dict[str, Path], qcow2: Path,
                                               tmp_path: Path) -> None:
    dest = tmp_path / "disk.qcow2"
    info = unpack_ova(packed["ovirt"], dest)
    assert sha256_file(dest) == sha256_file(qcow2) == info.disk_sha256
    check = subprocess.run(["qemu-img", "check", str(dest)], capture_output=True, check=False)
    assert check.returncode == 0, check.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["disk.qcow2"]


def test_pack_without_qcow2_compression_deflates_in_the_stream(
        debian_test_disk: Path, tmp_path: Path) -> None:
    """--compress none: the clusters are plain, so the gzip stream compresses them."""
    disk = BuiltDisk(debian_test_disk, "raw", meta(), "test")
    packed = pack_ova(disk, tmp_path / "n.ova", layout="ovirt", compression="none",
                      console=Console(), mtime=MTIME, work_dir=tmp_path)
    info = verify_ova(packed.path)
    assert packed.path.stat().st_size < info.disk_size // 2
    assert packed.digests.sha256 == sha256_file(packed.path)
    sidecar = json.loads((tmp_path / "n.ova.digests.json").read_text())
    assert sidecar["sha1"] == packed.digests.sha1 and sidecar["size"] == packed.digests.size


def test_not_an_image_leaves_nothing(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.qcow2"
    bogus.write_text("this is text, not a disk image\n")
    disk = BuiltDisk(bogus, "qcow2", meta(), "x")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="is raw, not the qcow2 image"):
        pack_ova(disk, out / "x.ova", layout="ovirt", compression="none", console=Console(),
                 mtime=MTIME, work_dir=out)
    assert list(out.iterdir()) == []
    with pytest.raises(InputError, match="not found"):
        pack_ova(replace(disk, path=tmp_path / "missing"), out / "x.ova", layout="ovirt",
                 compression="none", console=Console(), mtime=MTIME, work_dir=out)
