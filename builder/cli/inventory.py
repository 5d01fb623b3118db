"""`he-build inventory check|schema`: validate the inventory, print its JSON Schema."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.cli.handler import CommandResult, Subcommands, a_path
from builder.console import counted, text_table
from builder.heap import collection_paused, frozen_at_exit

if TYPE_CHECKING:
    from builder.console import Console
    from builder.inventory.load import Inventory, SiteLoaded
    from builder.inventory.models import Site


def add_inventory_option(parser: argparse.ArgumentParser, *, secrets: bool = False) -> None:
    """`--inventory FILE`, shared by every command that reads the inventory (and, for those
    that check or read `file:` secrets, `--allow-secrets-from DIR`)."""
    parser.add_argument("--inventory", type=a_path, default=None, metavar="FILE",
                        help="the inventory YAML file (default: the bundled example)")
    if secrets:
        add_allow_secrets_option(parser)


def load_from_args(args: argparse.Namespace, on_site: SiteLoaded | None = None) -> Inventory:
    """The inventory `--inventory` names (else the bundled example), loaded and validated
    (`on_site`: builder.inventory.load.SiteLoaded). The sites live until the command ends: they
    are made with the collector paused, and the collections of the process's exit skip them
    (builder.heap)."""
    from builder.inventory.load import DEFAULT_INVENTORY, load_inventory  # noqa: PLC0415

    path: Path = DEFAULT_INVENTORY if args.inventory is None else args.inventory
    with collection_paused():
        inventory = load_inventory(path, allow_secrets_from=args.allow_secrets_from,
                                   on_site=on_site)
    frozen_at_exit()
    return inventory


def add_allow_secrets_option(parser: argparse.ArgumentParser | Any) -> None:
    """`--allow-secrets-from DIR` (repeatable): where `file:` secrets outside the inventory's
    directory may be read from (he-launch adds it to its own parser too)."""
    parser.add_argument("--allow-secrets-from", type=a_path, action="append", default=[],
                        metavar="DIR", help="allow file: secrets in DIR too (absolute paths "
                        "in the inventory; repeatable); by default only files inside the "
                        "inventory's directory are allowed")


def register(subparsers: Subcommands, parent: argparse.ArgumentParser) -> None:
    group = subparsers.add_parser("inventory", parents=[parent],
                                  help="validate the site inventory or print its schema")
    commands = group.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    check = commands.add_parser("check", parents=[parent],
                                help="validate the inventory and list its sites (nothing written)")
    add_inventory_option(check, secrets=True)
    check.set_defaults(handler=run_check)
    schema = commands.add_parser("schema", parents=[parent],
                                 help="print the inventory's JSON Schema (for editors)")
    schema.set_defaults(handler=run_schema)


def run_check(args: argparse.Namespace, console: Console) -> CommandResult:
    inventory = load_from_args(args)
    rows = [site_summary(site) for site in inventory.sites.values()]
    data = {"ok": True, "inventory": str(inventory.path), "sites": rows}
    return CommandResult(data=data, text=render_check(inventory, rows))


def run_schema(args: argparse.Namespace, console: Console) -> CommandResult:
    from builder.inventory.schema import render_schema  # noqa: PLC0415

    schema = render_schema()
    return CommandResult(data=schema, text=json.dumps(schema, indent=2, sort_keys=True))


def site_summary(site: Site) -> dict[str, str]:
    """One row: in DHCP mode the MAC is what identifies the VM, in static mode the address."""
    net = site.network
    addresses = [str(s.address) for s in (net.ipv4, net.ipv6) if s is not None]
    return {
        "site": site.name,
        "fqdn": site.fqdn,
        "mode": net.mode,
        "address": ", ".join(addresses),
        "mac": site.mac,
    }


def render_check(inventory: Inventory, rows: list[dict[str, str]]) -> str:
    table = [("SITE", "FQDN", "NETWORK", "ADDRESS OR MAC")]
    for row in rows:
        where = row["address"] if row["mode"] == "static" else row["mac"]
        table.append((row["site"], row["fqdn"], row["mode"], where))
    lines = [text_table(table)]
    count = len(rows)
    lines.append(f"{inventory.path}: {counted(count, 'site')}, no problems")
    return "\n".join(lines)
