"""The one error handler of every command line: a result or a failure becomes output on stdout
or stderr, and an exit code (builder.errors.ExitCode). Tracebacks only with --debug."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeAlias

from builder.console import Console, JsonData, write_or_drop
from builder.errors import BuilderError, ExitCode, InputError, file_error

# Control characters, line and paragraph separators, and invisible format characters (bidi
# overrides...): printed escaped, so a value quoted in a message can neither start a fake
# `he-build:` line nor hide or reorder what follows it.
UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                            r"\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]")

# argparse's complaints about a required option or choice that is missing.
MISSING_RE = re.compile(r"the following arguments are required: |one of the arguments .* is "
                        r"required\Z")

# What a subcommand module's `register(subparsers, parent)` adds its parser to.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass
class CommandResult:
    """What a command returns: `data` for --json (or the function that makes it, for data only
    worth making when asked for), `text` for people (`verbatim`: exactly these characters, for a
    document written to stdout)."""

    data: JsonData
    text: str
    exit_code: int = 0
    verbatim: bool = False


class CommandParser(argparse.ArgumentParser):
    """argparse, whose usage errors go through the one error handler like every other error
    (one line and a hint, exit 2, and a JSON object with --json) instead of exiting on their
    own. Subcommands' parsers are of this class too (argparse makes them of their parent's).
    A long option is taken only as written in full: an abbreviation a script relies on would
    change meaning, or fail, the day an option sharing its start is added."""

    def __init__(self, *, hint: str | None = None, **kwargs: Any) -> None:
        super().__init__(**{"allow_abbrev": False, **kwargs})
        self.hint = hint

    def error(self, message: str) -> NoReturn:
        raise InputError(message, hint=self.hint or f"see {self.prog} --help")

    def _print_message(self, message: str, file: Any = None) -> None:
        """--help, --version and usage go out as every other output does (builder.console):
        a reader that has gone (`he-build --help | head -1`) is no traceback. `file` is
        sys.stdout or sys.stderr (argparse's choice)."""
        if message:
            write_or_drop(file or sys.stderr, message)

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: None = None) -> argparse.Namespace:
        """As argparse's, but words left over are refused by the subcommand that was given
        them, so that the hint names its help (`see he-build seed --help`). Only a new
        namespace is parsed here, hence the narrower signature."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.innermost(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        """As argparse's, but a missing required option comes with the words no option took
        (argparse stops at the first, `--site dc1 --no` would read as only `--appliance` is
        missing): `unrecognized arguments: --no; the following arguments are required:
        --appliance`."""
        try:
            return super().parse_known_args(args, namespace)
        except InputError as missing:
            if not MISSING_RE.match(missing.message):
                raise
            extras = self._words_left_over(args)
            if not extras:
                raise
            raise InputError(f"unrecognized arguments: {' '.join(extras)}; {missing.message}",
                             hint=missing.hint) from None

    def _words_left_over(self, args: Sequence[str] | None) -> list[str]:
        """The words of `args` no option takes, parsed again with nothing required."""
        groups: list[argparse.Action | argparse._MutuallyExclusiveGroup] = [
            *self._actions, *self._mutually_exclusive_groups]
        required = [group.required for group in groups]
        for group in groups:
            group.required = False
        try:
            return super().parse_known_args(args, None)[1]
        except InputError:
            return []
        finally:
            for group, was in zip(groups, required, strict=True):
                group.required = was

    def innermost(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The parser of the subcommand `parsed` ran (this one when there is none)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(str(getattr(parsed, action.dest, "")))
                if isinstance(chosen, CommandParser):
                    return chosen.innermost(parsed)
        return self


def parse_command_line(parser: argparse.ArgumentParser,
                       argv: Sequence[str]) -> argparse.Namespace | int:
    """The parsed options, or the exit code when parsing ended the command: --help and
    --version (0), a usage error (2, reported as every error is, with --json and --debug taken
    as written)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    except InputError as exc:
        return report_usage_error(parser.prog, exc, json_mode="--json" in argv,
                                  debug="--debug" in argv)


def report_usage_error(prog: str, exc: InputError, *, json_mode: bool, debug: bool) -> int:
    def refuse() -> CommandResult:
        raise exc
    return run_command(prog, Console(json_mode=json_mode), refuse, debug=debug)


def common_options() -> argparse.ArgumentParser:
    """--json and --debug, accepted both before and after a subcommand."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print a machine-readable result on stdout")
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="log every step and show tracebacks")
    return parent


def a_value(text: str) -> str:
    """The type of an option whose empty value would read as "not given" (a site, a recipe)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty value")
    return text


def a_path(text: str) -> Path:
    """The type of every path option: never empty. Path("") is ".", the current directory,
    which nobody means; an empty value is an unset shell variable (`--out "$OUT"`)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])


class PrintableFormatter(logging.Formatter):
    """A log line on one line of printable text, whatever the values it quotes (a traceback
    that --debug adds after it keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


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


def traceback_text(exc: BaseException) -> str:
    """The traceback --debug prints, as Python's, but each exception's message on one line of
    printable text: a value it quotes may hold a line break (`a\\nhe-build: error: ...`)."""
    return "".join(_traceback_chunks(traceback.TracebackException.from_exception(exc)))


def _traceback_chunks(exc: traceback.TracebackException) -> Iterator[str]:
    if exc.__cause__ is not None:
        yield from _traceback_chunks(exc.__cause__)
        yield "\nThe above exception was the direct cause of the following exception:\n\n"
    elif exc.__context__ is not None and not exc.__suppress_context__:
        yield from _traceback_chunks(exc.__context__)
        yield "\nDuring handling of the above exception, another exception occurred:\n\n"
    if exc.stack:
        yield "Traceback (most recent call last):\n"
        yield from exc.stack.format()
    for line in exc.format_exception_only():
        yield printable(line.rstrip("\n")) + "\n"


def error_data(exc: BuilderError) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ok": False,
        "error": exc.message,
        "kind": type(exc).__name__,
        "exit_code": int(exc.exit_code),
    }
    if isinstance(exc, InputError):
        data["problems"] = list(exc.problems)
    if exc.hint:
        data["hint"] = exc.hint
    return data


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C: every cleanup registered on the way runs."""
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(
    prog: str, console: Console, action: Callable[[], CommandResult], *, debug: bool,
    context: Callable[[], Mapping[str, Any]] = dict, interrupted: str = "interrupted",
) -> int:
    """Run `action` and turn whatever happens into output and an exit code.

    `context` is what the JSON error report carries besides the error (e.g. how far a launch
    got); `interrupted` is the line printed for Ctrl-C and SIGTERM.
    """
    try:
        with terminate_as_interrupt():
            result = action()
    except KeyboardInterrupt:
        console.emit_error(prog, {**context(), "ok": False, "error": "interrupted",
                                  "exit_code": int(ExitCode.INTERRUPTED)}, [interrupted])
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        if debug:
            write_or_drop(sys.stderr, traceback_text(exc))
        known = exc if isinstance(exc, BuilderError) else (
            file_error(exc) if isinstance(exc, OSError) else None)
        if known is not None:
            console.emit_error(prog, {**context(), **error_data(known)}, error_lines(known))
            return int(known.exit_code)
        message = printable(f"internal error: {type(exc).__name__}: {exc}")
        hint = {} if debug else {"hint": "run with --debug for the traceback"}
        console.emit_error(prog, {**context(), "ok": False, "error": message,
                                  "exit_code": int(ExitCode.INTERNAL), **hint},
                           [message, *(f"hint: {text}" for text in hint.values())])
        return int(ExitCode.INTERNAL)
    console.emit(result.data, result.text, verbatim=result.verbatim)
    return result.exit_code
