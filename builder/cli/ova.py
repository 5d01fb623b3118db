"""`he-build ova verify FILE`: check an OVA's manifest and OVF, print what it describes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from builder.cli.handler import CommandResult, Subcommands, a_path
from builder.errors import InputError

if TYPE_CHECKING:
    from builder.console import Console


def register(subparsers: Subcommands, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("ova", parents=[parent], help="inspect appliance OVAs")
    actions = parser.add_subparsers(dest="ova_command", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", parents=[parent],
                                help="check the manifest and the OVF, gzip or plain tar "
                                     "(exit 5 when tampered)")
    verify.add_argument("file", type=a_path, metavar="OVA", help="the OVA file")
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace, console: Console) -> CommandResult:
    from builder.ova import verify_ova  # noqa: PLC0415
    from builder.ova.ovf import GIB  # noqa: PLC0415

    path: Path = args.file
    if not path.is_file():
        raise InputError(f"OVA not found: {path}")
    console.step(f"verifying {path}")
    info = verify_ova(path)
    data = {
        "ok": True, "path": str(path), "layout": info.layout, "name": info.name,
        "memory_mib": info.memory_mib, "vcpus": info.vcpus, "ovf": info.ovf_member,
        "disk": info.disk_member, "disk_format": info.disk_format,
        "disk_virtual_size": info.virtual_size, "disk_size": info.disk_size,
        "disk_sha256": info.disk_sha256, "firmware": info.firmware,
        "compression": info.compression,
    }
    text = "\n".join([
        f"OK {path} ({info.layout} layout)",
        f"  name      {info.name}",
        f"  memory    {info.memory_mib} MiB",
        f"  vcpus     {info.vcpus}",
        f"  firmware  {info.firmware}",
        f"  archive   {archive_text(info.compression, info.layout)}",
        f"  disk      {info.disk_member} ({info.disk_format}, "
        f"{info.virtual_size / GIB:.1f} GiB virtual, {info.disk_size} bytes)",
        f"  ovf       {info.ovf_member}",
    ])
    return CommandResult(data=data, text=text)


def archive_text(compression: str, layout: str) -> str:
    if compression == "gzip":
        return "gzip-compressed tar"
    if layout == "ovirt":
        return "plain tar (hosted-engine-setup opens only gzip OVAs)"
    return "plain tar"
