"""`he-launch`: options in, engine-setup's exit status out, through the one error handler."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from ipaddress import IPv4Address

from builder import __version__
from builder.cli.cache import DAY_S, DEFAULT_UNUSED_DAYS, days
from builder.cli.handler import (
    CommandParser,
    CommandResult,
    a_path,
    configure_logging,
    parse_command_line,
    run_command,
)
from builder.console import Console, counted, human_size, utc_time
from builder.errors import InputError
from builder.launch.options import (
    DEFAULT_STORAGE,
    DEFAULT_URI,
    LaunchOptions,
    check_options,
    quoted,
    storage_problem,
    uri_problem,
)
from builder.launch.report import LaunchReport

PROG = "he-launch"
PRUNE_FLAG = "--prune-images"
PRUNE_HINT = f"see {PROG} {PRUNE_FLAG} --help"


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=PROG,
        description="Boot the engine appliance with its seed and exit with engine-setup's status.",
        epilog=f"{PROG} {PRUNE_FLAG} [--storage DIR] [--uri URI] [--unused-for DAYS] "
               "[--dry-run] [--json] removes from the storage directory the unpacked images "
               "no domain's disk backs onto, the RPM extracts no launch used for DAYS days and "
               f"the records of appliance files that are gone (see {PROG} {PRUNE_FLAG} --help)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_input_options(parser)
    _add_vm_options(parser)
    _add_run_options(parser)
    return parser


def build_prune_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=PROG, hint=PRUNE_HINT,
        usage=f"{PROG} {PRUNE_FLAG} [--storage DIR] [--uri URI] [--unused-for DAYS] [--dry-run] "
              "[--json] [--debug]",
        description="Remove from the storage directory what no engine VM boots from: the "
                    "unpacked images that no disk of any domain on URI (running or defined) "
                    "and no qcow2 file in the storage directory backs onto, unless a launch "
                    "used them in the last DAYS days; the OVAs taken out of appliance RPMs "
                    "that no launch used for DAYS days; the verification records of "
                    "appliance files that are gone or changed.")
    parser.add_argument(PRUNE_FLAG, action="store_true", required=True,
                        help="remove what no engine VM boots from")
    parser.add_argument("--storage", type=a_path, default=DEFAULT_STORAGE, metavar="DIR",
                        help=f"he-launch's storage directory (default {DEFAULT_STORAGE})")
    parser.add_argument("--uri", default=DEFAULT_URI,
                        help=f"libvirt URI whose domains are read (default {DEFAULT_URI})")
    parser.add_argument("--unused-for", type=days, default=DEFAULT_UNUSED_DAYS, metavar="DAYS",
                        help="keep what a launch used in the last DAYS days, 0 for none "
                             f"(default {DEFAULT_UNUSED_DAYS:g})")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be removed, remove nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--debug", action="store_true", help="log every step, show tracebacks")
    return parser


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs")
    group.add_argument("--appliance", type=a_path, required=True, metavar="OVA|DIR|RPM",
                       help="the appliance: an OVA, the directory holding it (the installed "
                            "RPM's /usr/share/ovirt-engine-appliance/) or the appliance RPM")
    seed = group.add_mutually_exclusive_group(required=True)
    seed.add_argument("--seed", type=a_path, metavar="ISO", help="a seed ISO from he-build seed")
    seed.add_argument("--inventory", type=a_path, metavar="FILE",
                      help="render the site's seed from this inventory (with --site)")
    seed.add_argument("--no-seed", action="store_true",
                      help="boot without a seed (an appliance seeded before)")
    group.add_argument("--site", metavar="NAME", help="the site (names the domain)")
    group.add_argument("--fqdn", help="the engine's FQDN (default: from the inventory or seed)")
    group.add_argument("--network-from-host", metavar="IFACE",
                       help="static IPv4 in IFACE's subnet: host prefix, gateway and DNS")
    group.add_argument("--address", type=an_ipv4_address,
                       help="the engine VM's IPv4 address for --network-from-host")
    # The same option as `he-build seed`'s (builder.cli.inventory), defined here so that
    # he-launch does not import the inventory models unless it renders a seed.
    group.add_argument("--allow-secrets-from", type=a_path, action="append", metavar="DIR",
                       help="with --inventory: also read file: secrets from DIR (absolute "
                            "paths in the inventory; repeatable)")


def _add_vm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("virtual machine")
    group.add_argument("--uri", default=DEFAULT_URI, help=f"libvirt URI (default {DEFAULT_URI})")
    group.add_argument("--storage", type=a_path, default=DEFAULT_STORAGE, metavar="DIR",
                       help=f"where disks and logs go (default {DEFAULT_STORAGE})")
    nic = group.add_mutually_exclusive_group(required=True)
    nic.add_argument("--network", metavar="NAME", help="attach the NIC to this libvirt network")
    nic.add_argument("--bridge", metavar="BR", help="attach the NIC to this host bridge")
    nic.add_argument("--no-network", action="store_true", help="no NIC at all")
    group.add_argument("--mac", type=str.lower, help="the NIC's MAC (default: the site's)")
    group.add_argument("--name", dest="domain_name", help="domain name (default he-engine-SITE)")
    group.add_argument("--memory", dest="memory_mib", type=a_whole_number, metavar="MIB",
                       help="memory in MiB (default: from the OVF)")
    group.add_argument("--vcpus", type=a_whole_number, help="vCPUs (default: from the OVF)")
    group.add_argument("--virt-type", choices=("auto", "kvm", "qemu"), default="auto",
                       help="kvm, qemu (TCG), or auto: kvm when it works (default)")
    group.add_argument("--firmware", choices=("uefi", "bios"),
                       help="boot with UEFI (OVMF, secure boot off) or BIOS (default: what the "
                            "appliance's OVF says, else bios)")
    group.add_argument("--transient", action="store_true",
                       help="do not define the domain persistently")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--boot-timeout", type=seconds, default=900.0, metavar="S",
                       help="seconds until the guest's first report (default 900)")
    group.add_argument("--setup-timeout", type=seconds, default=7200.0, metavar="S",
                       help="seconds from the first report to engine-setup's status (default 7200)")
    group.add_argument("--keep", action="store_true", help="keep the domain after a failure")
    group.add_argument("--replace", action="store_true",
                       help="replace an existing domain of the same name")
    group.add_argument("--health-check", action="store_true",
                       help="after success, poll the engine's health page until it answers")
    group.add_argument("--health-timeout", type=seconds, default=600.0, metavar="S")
    group.add_argument("--health-url", metavar="URL",
                       help="default http://FQDN/ovirt-engine/services/health")
    group.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    group.add_argument("--debug", action="store_true", help="log every step, show tracebacks")


def a_whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {quoted(text)}") from None


def seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {quoted(text)}") from None


def an_ipv4_address(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {quoted(text)}") from None


def options_from_args(args: argparse.Namespace) -> LaunchOptions:
    """Validate what argparse cannot and freeze the result."""
    values = {k: v for k, v in vars(args).items() if k not in ("no_seed", "no_network")}
    values["allow_secrets_from"] = tuple(values.get("allow_secrets_from") or ())
    # The disks' paths go into the domain XML, which libvirt reads from its own directory.
    values["storage"] = values["storage"].absolute()
    opts = LaunchOptions(**values)
    check_options(opts)
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    pruning = PRUNE_FLAG in given
    args = parse_command_line(build_prune_parser() if pruning else build_parser(), given)
    if isinstance(args, int):
        return args
    debug = bool(args.debug)
    console = Console(json_mode=bool(args.json))
    configure_logging(debug)
    if pruning:
        return run_command(PROG, console, lambda: prune_images(args), debug=debug)
    reports: list[LaunchReport] = []  # the launch's report, once options are valid

    def launch() -> CommandResult:
        # The launcher brings libvirt, the seed and OVA readers: not needed for --help.
        from builder.launch.launcher import new_report, run_launch  # noqa: PLC0415

        opts = options_from_args(args)
        reports.append(new_report(opts))
        return render_report(run_launch(opts, console, os.environ, reports[0]))

    return run_command(PROG, console, launch, debug=debug,
                       context=lambda: reports[0].as_dict() if reports else {},
                       interrupted="interrupted: cleanup ran (logs kept)")


def prune_images(args: argparse.Namespace) -> CommandResult:
    """`--prune-images`: what went (or would go), what stays because disks back onto it."""
    from builder.launch.prune import prune_storage, report_data  # noqa: PLC0415

    storage = args.storage.absolute()
    problem = uri_problem(args.uri) or storage_problem(storage)
    if problem:
        raise InputError(problem, hint=PRUNE_HINT)
    report = prune_storage(storage, args.uri, unused_since=time.time() - args.unused_for * DAY_S,
                           dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    lines = [f"{verb} {item.path} ({human_size(item.size)}, last used "
             f"{utc_time(item.last_used)})" for item in report.removed]
    lines += [f"kept {item.path}: {', '.join(item.users)} backs onto it"
              for item in report.in_use]
    lines += [f"kept every image nothing else holds: cannot read the backing chain of {disk}"
              for disk in report.unreadable]
    counts = ", ".join(counted(report.count(kind), noun)
                       for kind, noun in (("image", "image"), ("rpm", "RPM extract"),
                                          ("record", "record")))
    unsure = f", {report.unsure} for those chains" if report.unreadable else ""
    lines.append(f"{verb} {counts} ({human_size(report.freed)}); kept {len(report.in_use)} in "
                 f"use, {report.recent} used in the last {counted(args.unused_for, 'day')}{unsure}")
    return CommandResult(data={"ok": True, **report_data(report, args.unused_for)},
                         text="\n".join(lines))


def render_report(report: LaunchReport) -> CommandResult:
    """The closing lines for people, the whole report for --json; engine-setup's status is
    the exit code."""
    status = int(report.exit_status if report.exit_status is not None else 1)
    return CommandResult(data={"ok": report.succeeded, **report.as_dict()},
                         text="\n".join(report.closing_lines()), exit_code=status)


if __name__ == "__main__":
    sys.exit(main())
