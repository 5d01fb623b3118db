"""Get the OVA back out of an appliance RPM (for the launcher), without installing it."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from builder.atomic import staged_file
from builder.errors import InputError
from builder.rpm.spec import INSTALL_DIR
from builder.run import require_tool, run

CHUNK = 4 << 20


def extract_ova_from_rpm(rpm: Path, dest_dir: Path) -> Path:
    """The `.ova` under /usr/share/ovirt-engine-appliance/ in `rpm`, written to `dest_dir`.

    rpm2archive -n turns the payload into an uncompressed tar beside a private copy link;
    tarfile then streams the one member out.
    """
    require_tool("rpm2archive", package="rpm")
    if not rpm.is_file():
        raise InputError(f"RPM not found: {rpm}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rpm2archive-", dir=dest_dir) as tmp:
        archive = _payload_tar(rpm, Path(tmp))
        with tarfile.open(archive, "r:") as tar:
            member = _ova_member(tar, rpm)
            final = dest_dir / PurePosixPath(member.name).name
            _write_member(tar, member, final)
    return final


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


def _ova_member(tar: tarfile.TarFile, rpm: Path) -> tarfile.TarInfo:
    prefix = INSTALL_DIR.lstrip("/")
    for member in tar.getmembers():
        name = member.name.lstrip("./")
        if member.isfile() and name.startswith(prefix + "/") and name.endswith(".ova"):
            return member
    raise InputError(f"{rpm} holds no OVA under {INSTALL_DIR}")


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, final: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None
    with source, staged_file(final, mode=0o644) as temp, temp.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK)
