"""`he-build`: the subcommands, parsed once, run through the one error handler."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from builder import __version__
from builder.cli import appliance, cache, inventory, ova, release, seed
from builder.cli.handler import (
    CommandParser,
    common_options,
    configure_logging,
    parse_command_line,
    run_command,
)
from builder.console import Console

PROG = "he-build"
# Each module registers its parsers and sets `handler=`; its heavy imports wait for the handler.
SUBCOMMANDS = (inventory, seed, appliance, ova, release, cache)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=PROG, parents=[common_options()])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(subparsers, common_options())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(build_parser(), list(sys.argv[1:] if argv is None else argv))
    if isinstance(args, int):
        return args
    debug = bool(getattr(args, "debug", False))
    console = Console(json_mode=bool(getattr(args, "json", False)))
    configure_logging(debug)
    return run_command(PROG, console, lambda: args.handler(args, console), debug=debug)


if __name__ == "__main__":
    sys.exit(main())
