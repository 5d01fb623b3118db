"""`he-build appliance`: recipe -> disk -> OVA -> RPM, with cached stages and a summary."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from builder.appliance.build import ApplianceBuild, BuildOptions, build_appliance, describe
from builder.appliance.recipes import load_recipe
from builder.cache import default_cache_root
from builder.console import CommandResult, Console


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "appliance", parents=[parent], help="build the appliance disk, OVA and RPM",
        description="Build the appliance from a recipe: disk, then OVA, then RPM. Stages whose "
                    "inputs did not change are reused from the cache ($HE_BUILDER_CACHE, "
                    "else ~/.cache/he-builder).")
    parser.add_argument("--recipe", default="debian-test",
                        help="bundled recipe name or path to a recipe YAML (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="where the disk, OVA and RPM are published (default: %(default)s)")
    parser.add_argument("--compress", choices=("none", "zlib", "zstd"), default="zstd",
                        help="qcow2 cluster compression inside the OVA (default: %(default)s)")
    parser.add_argument("--payload", choices=("speed", "size"), default="speed",
                        help="RPM payload compression: fast or small (default: %(default)s)")
    parser.add_argument("--format", choices=("ovirt", "ovf"), default="ovirt", dest="layout",
                        help="OVA layout: oVirt's (hosted-engine) or standard OVF 1.x "
                             "(virt-v2v) (default: %(default)s)")
    parser.add_argument("--sign-key", type=Path, default=None,
                        help="armored GPG secret key file (no passphrase) to sign the RPM")
    parser.set_defaults(handler=run_appliance)


def run_appliance(args: argparse.Namespace, console: Console) -> CommandResult:
    env = dict(os.environ)
    recipe = load_recipe(args.recipe)
    options = BuildOptions(compression=args.compress, payload=args.payload, layout=args.layout,
                           sign_key=args.sign_key)
    build = build_appliance(recipe, out_dir=args.out, options=options,
                            cache_root=default_cache_root(env), console=console, env=env)
    return CommandResult(data=describe(build), text=summary_table(build))


def summary_table(build: ApplianceBuild) -> str:
    rows = [("stage", "cache", "size", "sha256", "path")]
    for a in build.artifacts():
        rows.append((a.stage, "hit" if a.cache_hit else "built", _human(a.size),
                     a.sha256[:16], str(a.path)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
