"""`he-build seed`: render and master each selected site's seed under OUT/SITE/, publishing the
new set of sites in OUT all at once (builder.seed.generations)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.cli.handler import CommandResult, Subcommands, a_path, a_value
from builder.cli.inventory import add_inventory_option, load_from_args
from builder.console import counted, text_table

if TYPE_CHECKING:
    from builder.console import Console
    from builder.inventory.models import Site
    from builder.seed.dhcp import DhcpExport
    from builder.seed.generations import Publication
    from builder.seed.master import SeedArtifacts

DEFAULT_OUT = Path("out/seeds")
DHCP_DIR = "dhcp"
# A progress bar for a handful of sites is only noise.
PROGRESS_MIN_SITES = 10


def register(subparsers: Subcommands, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "seed", parents=[parent], help="render each site's cloud-init seed ISO and answer file",
        description="Render and master the NoCloud seed of each selected site into OUT/SITE/. "
                    "The sites are published together: a crash leaves the previous set or the "
                    "new one. --all makes the set exactly the inventory's sites; --site "
                    "replaces or adds those sites and keeps the others. A second run on the "
                    "same OUT waits for the first.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--site", type=a_value, action="append", metavar="NAME",
                       help="a site of the inventory (repeatable)")
    which.add_argument("--all", action="store_true", help="every site of the inventory")
    add_inventory_option(parser, secrets=True)
    parser.add_argument("--out", type=a_path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--dhcp-export", action="store_true",
                        help="also write dnsmasq, ISC dhcpd and zone-file records to OUT/dhcp/")
    parser.set_defaults(handler=run_seed)


def run_seed(args: argparse.Namespace, console: Console) -> CommandResult:
    from builder.inventory.load import select_sites  # noqa: PLC0415
    from builder.repro import build_time  # noqa: PLC0415
    from builder.seed.ahead import HashesAhead  # noqa: PLC0415
    from builder.seed.master import publish_seeds  # noqa: PLC0415

    env = dict(os.environ)
    prompt = _prompt if sys.stdin.isatty() else None
    # Root passwords are hashed on another CPU while the inventory loads (builder.seed.ahead).
    with HashesAhead(env, wanted=None if args.all else args.site) as ahead:
        inventory = load_from_args(args, on_site=ahead.site_loaded)
        sites = select_sites(inventory, args.site or (), args.all)
        ahead.stop()
        jobs = [(site, ahead.secrets_of(site)
                 or inventory.resolve_secrets(site, env=env, prompt=prompt)) for site in sites]
    progress = _progress(console) if len(jobs) >= PROGRESS_MIN_SITES else None
    export = _dhcp_export(sites) if args.dhcp_export else None
    artifacts, published = publish_seeds(
        jobs, args.out, epoch=build_time(env), progress=progress, whole_set=args.all,
        dhcp=export, notify=console.note)
    console.note(publication_note(args.out, published, len(artifacts)))
    dhcp = _dhcp_data(export, args.out) if export is not None else None
    return CommandResult(data=lambda: result_data(args.out, artifacts, dhcp, published),
                         text=result_text(artifacts, dhcp))


def publication_note(out: Path, published: Publication, rendered: int) -> str:
    kept = len(published.sites) - rendered
    return (f"published {out}: generation {published.generation}, "
            f"{counted(len(published.sites), 'site')} ({rendered} rendered, "
            f"{kept} unchanged)")


def _prompt(label: str) -> str:
    import getpass  # noqa: PLC0415

    return getpass.getpass(f"{label}: ")


def _progress(console: Console) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        console.progress("seeds", done, total)
    return report


def _dhcp_export(sites: Sequence[Site]) -> DhcpExport:
    from builder.seed.dhcp import build_dhcp_export  # noqa: PLC0415  (only with --dhcp-export)

    return build_dhcp_export(sites)


def _dhcp_data(export: DhcpExport, out: Path) -> dict[str, Any]:
    from builder.seed.dhcp import DHCPD_NAME, DNSMASQ_NAME, ZONE_NAME  # noqa: PLC0415

    directory = out / DHCP_DIR
    return {
        "files": {name: str(directory / name) for name in (DNSMASQ_NAME, DHCPD_NAME, ZONE_NAME)},
        "dnsmasq": export.dnsmasq, "dhcpd": export.dhcpd, "zone": export.zone,
        "registrations": [
            {"site": r.site, "fqdn": r.fqdn, "mac": r.mac, "dhcp": r.dhcp,
             "addresses": [str(a) for a in r.addresses]}
            for r in export.registrations
        ],
    }


def result_data(out: Path, artifacts: Sequence[SeedArtifacts], dhcp: dict[str, Any] | None,
                published: Publication) -> dict[str, Any]:
    data: dict[str, Any] = {"ok": True, "out": str(out), "generation": published.generation,
                            "set": list(published.sites), "sites": [
        {"site": a.site, "directory": str(a.directory), "iso": str(a.iso),
         "instance_id": a.instance_id, "mac": a.mac,
         "files": [{"name": f.name, "path": str(f.path), "sha256": f.sha256, "size": f.size,
                    "mode": f"{f.mode:04o}"} for f in a.files]}
        for a in artifacts
    ]}
    if dhcp is not None:
        data["dhcp"] = dhcp
    return data


def _row(artifacts: SeedArtifacts) -> tuple[str, str, str, str]:
    iso = artifacts.iso
    return artifacts.site, artifacts.mac, str(iso), artifacts.digest(iso.name)


def result_text(artifacts: Sequence[SeedArtifacts], dhcp: dict[str, Any] | None) -> str:
    """One row a site: its MAC, its seed ISO and the ISO's SHA-256. Every file's checksum and
    mode are in the site's manifest.json and under --json."""
    rows = [("SITE", "MAC", "ISO", "SHA256")]
    rows += [_row(a) for a in artifacts]
    lines = [text_table(rows)]
    if dhcp is not None:
        lines.append("")
        lines += [f"DHCP/DNS records: {path}" for path in dhcp["files"].values()]
    return "\n".join(lines)

