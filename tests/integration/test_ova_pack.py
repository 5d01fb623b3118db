"""Packing the debian-test disk into OVAs: the OVF as hosted-engine and virt-v2v read it,
verification of good and tampered files, sparse extraction, reproducible bytes, bad input."""

from __future__ import annotations

import json
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from builder.appliance.backend import ApplianceMeta, BuiltDisk
from builder.appliance.recipes import load_recipe
from builder.cli import main
from builder.console import Console
from builder.errors import ExitCode, InputError, IntegrityError
from builder.ova import OvaLayout, check_disk_digest, extract_disk, pack_ova, verify_ova
from builder.ova.ovf import NSMAP

pytestmark = pytest.mark.integration
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
HW = ('/ovf:Envelope/Content[@xsi:type="ovf:VirtualSystem_Type"]'
      '/Section[@xsi:type="ovf:VirtualHardwareSection_Type"]/Item')


def meta() -> ApplianceMeta:
    return load_recipe("debian-test").meta


@pytest.fixture(scope="module")
def packed(debian_test_disk: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ova")
    disk = BuiltDisk(debian_test_disk, "raw", meta(), "test")
    result: dict[str, Path] = {}
    layouts: tuple[OvaLayout, ...] = ("ovirt", "ovf")
    for layout in layouts:
        dest = out / f"{layout}.ova"
        pack_ova(disk, dest, layout=layout, compression="zstd", console=Console(), env=EPOCH,
                 work_dir=out)
        result[layout] = dest
    return result


# DMTF's OVF 1.x envelope namespace, spelled out: importers such as virt-v2v match it exactly.
DMTF_NAMESPACES = {**NSMAP, "ovf": "http://schemas.dmtf.org/ovf/envelope/1"}


def strings(root: etree._Element, path: str, namespaces: dict[str, str] = NSMAP) -> list[str]:
    found = root.xpath(path, namespaces=namespaces)
    assert isinstance(found, list)
    return [str(item) for item in found]


def member_bytes(ova: Path, name: str) -> bytes:
    with tarfile.open(ova) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def test_ovirt_layout_and_the_xpaths_hosted_engine_reads(packed: dict[str, Path]) -> None:
    with tarfile.open(packed["ovirt"]) as tar:
        names = tar.getnames()
    ovf_name = next(n for n in names if n.endswith(".ovf"))
    assert ovf_name.startswith("master/vms/") and ovf_name.count("/") == 3
    root = etree.fromstring(member_bytes(packed["ovirt"], ovf_name))
    disk = root.find("Section/Disk")
    assert disk is not None
    attr = {etree.QName(k).localname: str(v) for k, v in disk.attrib.items()}
    assert attr["size"] == "3" and int(attr["actual_size"]) >= 1
    assert attr["disk-interface"] == "VirtIO" and attr["volume-format"] == "COW"
    assert f"images/{attr['fileRef']}" in names
    memory = strings(root, f"{HW}[rasd:ResourceType=4]/rasd:VirtualQuantity/text()")
    sockets = strings(root, f"{HW}[rasd:ResourceType=3]/rasd:num_of_sockets/text()")
    per_socket = strings(root, f"{HW}[rasd:ResourceType=3]/rasd:cpu_per_socket/text()")
    assert memory == ["1024"] and int(sockets[0]) * int(per_socket[0]) == 2
    href = strings(root, "/ovf:Envelope/References/File/@ovf:href")
    assert href == [attr["fileRef"]]


def test_standard_layout_order_and_ovf1_namespace(packed: dict[str, Path]) -> None:
    with tarfile.open(packed["ovf"]) as tar:
        names = tar.getnames()
    assert names[0].endswith(".ovf") and names[1].endswith(".mf") and len(names) == 3
    root = etree.fromstring(member_bytes(packed["ovf"], names[0]))
    ns = DMTF_NAMESPACES
    system = "/ovf:Envelope/ovf:VirtualSystem"
    assert strings(root, f"{system}/ovf:Name/text()", ns) == ["ovirt-engine-appliance"]
    disk_item = f"{system}/ovf:VirtualHardwareSection/ovf:Item[rasd:ResourceType=17]"
    disk_id = strings(root, f"{disk_item}/rasd:HostResource/text()", ns)[0].split("/")[-1]
    parent = strings(root, f"{disk_item}/rasd:Parent/text()", ns)[0]
    assert strings(root, f"{system}/ovf:VirtualHardwareSection/ovf:Item"
                         f"[rasd:InstanceID={parent}]/rasd:ResourceType/text()", ns) == ["5"]
    file_ref = strings(root, f"/ovf:Envelope/ovf:DiskSection/ovf:Disk[@ovf:diskId='{disk_id}']"
                             "/@ovf:fileRef", ns)[0]
    href = strings(root, f"/ovf:Envelope/ovf:References/ovf:File[@ovf:id='{file_ref}']/@ovf:href",
                   ns)
    assert href == [names[2]]
    manifest = member_bytes(packed["ovf"], names[1]).decode()
    assert manifest.startswith(f"SHA256({names[0]})= ")


def test_virt_v2v_reads_the_standard_layout(packed: dict[str, Path]) -> None:
    """virt-v2v's own OVA reader (its --print-source stops before converting the guest: the
    Debian test image carries GRUB's boot code but not the grub tools a conversion runs)."""
    proc = subprocess.run(["virt-v2v", "-i", "ova", str(packed["ovf"]), "--print-source"],
                          capture_output=True, text=True, check=False, timeout=300,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
                               "LIBGUESTFS_BACKEND": "direct"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    facts = {key.strip(): value.strip() for key, _, value in
             (line.partition(":") for line in proc.stdout.splitlines()) if value.strip()}
    assert facts["source name"] == "ovirt-engine-appliance"
    assert facts["memory"] == f"{meta().memory_mib << 20} (bytes)"
    assert facts["nr vCPUs"] == str(meta().vcpus)
    disks = proc.stdout.split("disks:", 1)[1].split("removable media:", 1)[0].split()
    assert disks == ["0", "[ide]"], proc.stdout


@pytest.mark.parametrize("layout", ["ovirt", "ovf"])
def test_verify_reports_the_appliance(packed: dict[str, Path], layout: str) -> None:
    info = verify_ova(packed[layout])
    assert (info.memory_mib, info.vcpus, info.disk_format) == (1024, 2, "qcow2")
    assert info.virtual_size == 3 << 30 and info.layout == layout


def test_cli_verify_good_and_tampered(packed: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ova", "verify", str(packed["ovirt"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["memory_mib"] == 1024 and data["vcpus"] == 2
    tampered = tmp_path / "t.ova"
    tampered.write_bytes(packed["ovirt"].read_bytes())
    with tarfile.open(tampered) as tar:
        disk = next(m for m in tar.getmembers() if m.name.startswith("images/"))
    with tampered.open("r+b") as handle:
        handle.seek(disk.offset_data + disk.size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert main(["ova", "verify", str(tampered)]) == ExitCode.INTEGRITY
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("he-build: error:")]
    assert len(errors) == 1 and "checksum mismatch" in errors[0]


def test_without_the_disk_digest_only_the_disk_goes_unhashed(
        packed: dict[str, Path], tmp_path: Path) -> None:
    info = verify_ova(packed["ovirt"])
    tampered = tmp_path / "t.ova"
    tampered.write_bytes(packed["ovirt"].read_bytes())
    with tarfile.open(tampered) as tar:
        disk = tar.getmember(info.disk_member)
    with tampered.open("r+b") as handle:
        handle.seek(disk.offset_data + disk.size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert verify_ova(tampered, hash_disk=False).disk_sha256 == info.disk_sha256
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        check_disk_digest(tampered, info)
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        extract_disk(tampered, info, tmp_path / "disk.qcow2")
    assert not (tmp_path / "disk.qcow2").exists()
    edited = tmp_path / "e.ova"
    edited.write_bytes(packed["ovf"].read_bytes().replace(b">1024<", b">9999<", 1))
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        verify_ova(edited, hash_disk=False)


def test_tampered_ovf_and_missing_manifest(packed: dict[str, Path], tmp_path: Path) -> None:
    source = packed["ovf"].read_bytes()
    edited = tmp_path / "e.ova"
    edited.write_bytes(source.replace(b">1024<", b">9999<", 1))
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        verify_ova(edited)
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


def test_extract_disk_is_sparse_and_identical(packed: dict[str, Path], tmp_path: Path) -> None:
    info = verify_ova(packed["ovirt"])
    dest = extract_disk(packed["ovirt"], info, tmp_path / "disk.qcow2")
    assert dest.read_bytes() == member_bytes(packed["ovirt"], info.disk_member)
    check = subprocess.run(["qemu-img", "check", str(dest)], capture_output=True, check=False)
    assert check.returncode == 0, check.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["disk.qcow2"]


def test_same_epoch_same_ova_bytes(debian_test_disk: Path, packed: dict[str, Path],
                                   tmp_path: Path) -> None:
    disk = BuiltDisk(debian_test_disk, "raw", meta(), "test")
    again = tmp_path / "again.ova"
    pack_ova(disk, again, layout="ovirt", compression="zstd", console=Console(), env=EPOCH,
             work_dir=tmp_path)
    assert again.read_bytes() == packed["ovirt"].read_bytes()


def test_not_an_image_leaves_nothing(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.qcow2"
    bogus.write_text("this is text, not a disk image\n")
    disk = BuiltDisk(bogus, "qcow2", meta(), "x")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="is raw, not the qcow2 image"):
        pack_ova(disk, out / "x.ova", layout="ovirt", compression="none", console=Console(),
                 env=EPOCH, work_dir=out)
    assert list(out.iterdir()) == []
    with pytest.raises(InputError, match="not found"):
        pack_ova(replace(disk, path=tmp_path / "missing"), out / "x.ova", layout="ovirt",
                 compression="none", console=Console(), env=EPOCH, work_dir=out)
