"""`he-build`: one entry point, one error handler, documented exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from builder import __version__
from builder.console import CommandResult, Console
from builder.errors import BuilderError, ExitCode, InputError

Handler = Callable[[argparse.Namespace, Console], CommandResult]

# Each module exposes `register(subparsers)` and sets `handler=` on its parsers.
COMMAND_MODULES: tuple[str, ...] = ("builder.cli.inventory", "builder.cli.seed",
                                    "builder.cli.appliance", "builder.cli.ova")


def common_options() -> argparse.ArgumentParser:
    """--json and --debug, accepted both before and after the subcommand."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print a machine-readable result on stdout")
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="log every step and show tracebacks")
    return parent


def build_parser(prog: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, parents=[common_options()])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(name).register(subparsers, common_options())
    return parser


def configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# Control characters, line and paragraph separators, and invisible format characters (bidi
# overrides...): printed escaped, so a value quoted in a message can neither start a fake
# `he-build:` line nor hide or reorder what follows it.
UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                            r"\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` on one line: each unprintable character as a \\xNN / \\uNNNN escape."""
    return UNPRINTABLE_RE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def error_lines(exc: BuilderError) -> list[str]:
    """The lines printed for an error, each one line of printable text."""
    lines = [f"error: {exc.message}"]
    if isinstance(exc, InputError):
        lines.extend(exc.problems)
    if exc.hint:
        lines.append(f"hint: {exc.hint}")
    return [printable(line) for line in lines]


def error_data(exc: BuilderError) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ok": False,
        "error": exc.message,
        "kind": type(exc).__name__,
        "exit_code": exc.exit_code,
    }
    if isinstance(exc, InputError):
        data["problems"] = list(exc.problems)
    return data


def dispatch(prog: str, modules: Sequence[str], argv: Sequence[str] | None) -> int:
    """Parse argv, run the chosen handler, turn every failure into a message and an exit code."""
    parser = build_parser(prog, modules)
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    console = Console(json_mode=bool(getattr(args, "json", False)))
    configure_logging(debug)
    handler: Handler = args.handler
    try:
        result = handler(args, console)
    except BuilderError as exc:
        if debug:
            traceback.print_exc()
        console.emit_error(prog, error_data(exc), error_lines(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        console.emit_error(prog, {"ok": False, "error": "interrupted",
                                  "exit_code": ExitCode.INTERRUPTED}, ["interrupted"])
        return ExitCode.INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        message = f"internal error: {type(exc).__name__}: {exc}"
        hint = [] if debug else ["hint: run with --debug for the traceback"]
        console.emit_error(prog, {"ok": False, "error": message,
                                  "exit_code": ExitCode.INTERNAL}, [message, *hint])
        return ExitCode.INTERNAL
    console.emit(result)
    return result.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("he-build", COMMAND_MODULES, argv)


if __name__ == "__main__":
    sys.exit(main())
