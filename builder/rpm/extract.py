"""Get the appliance image back out of an appliance RPM (for the launcher), without installing
it: the OVA or qcow2 under /usr/share/ovirt-engine-appliance/, with its metadata JSON."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from builder.atomic import staged_file
from builder.errors import InputError
from builder.rpm.metadata import INSTALL_DIR
from builder.run import require_tool, run

CHUNK = 4 << 20
IMAGE_SUFFIXES = (".ova", ".qcow2")


def extract_appliance_from_rpm(rpm: Path, dest_dir: Path) -> Path:
    """The image in `rpm` (and the JSON files beside it) written to `dest_dir`; returns the
    image. rpm2archive -n turns the payload into an uncompressed tar beside a private copy
    link; tarfile then streams the members out."""
    require_tool("rpm2archive", package="rpm")
    if not rpm.is_file():
        raise InputError(f"RPM not found: {rpm}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rpm2archive-", dir=dest_dir) as tmp:
        archive = _payload_tar(rpm, Path(tmp))
        with tarfile.open(archive, "r:") as tar:
            images, extras = _appliance_members(tar)
            if len(images) != 1:
                raise InputError(f"{rpm} holds {len(images)} appliance images under "
                                 f"{INSTALL_DIR}, not one")
            for member in [*extras, *images]:
                _write_member(tar, member, dest_dir / PurePosixPath(member.name).name)
    return dest_dir / PurePosixPath(images[0].name).name


def _payload_tar(rpm: Path, tmp: Path) -> Path:
    local = tmp / rpm.name
    try:
        local.hardlink_to(rpm)
    except OSError:
        shutil.copyfile(rpm, local)
    run(["rpm2archive", "-n", local], cwd=tmp)
    archive = tmp / f"{rpm.name}.tar"
    if not archive.is_file():
        raise InputError(f"rpm2archive made no archive of {rpm}")
    return archive


def _appliance_members(tar: tarfile.TarFile) -> tuple[list[tarfile.TarInfo],
                                                       list[tarfile.TarInfo]]:
    """(images, metadata files) directly under INSTALL_DIR."""
    images, extras = [], []
    for member in tar.getmembers():
        path = PurePosixPath("/" + member.name.lstrip("./"))
        if not member.isfile() or str(path.parent) != INSTALL_DIR:
            continue
        if path.suffix in IMAGE_SUFFIXES:
            images.append(member)
        elif path.suffix == ".json":
            extras.append(member)
    return images, extras


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, final: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None
    with source, staged_file(final, mode=0o644) as temp, temp.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK)
