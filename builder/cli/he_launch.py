"""`he-launch` entry point: options in, engine-setup's exit status out."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from builder.cli.he_build import configure_logging, error_data, error_lines
from builder.console import CommandResult, Console
from builder.errors import BuilderError, ExitCode
from builder.launch.launcher import run_launch
from builder.launch.options import build_parser, options_from_args

PROG = "he-launch"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(json_mode=bool(args.json))
    configure_logging(bool(args.debug))
    result: dict[str, Any] = {}  # filled by the launch as it goes: a failure reports it too
    try:
        with _terminate_as_interrupt():
            opts = options_from_args(args)
            run_launch(opts, console, os.environ, result)
    except BuilderError as exc:
        return _fail(console, exc, result, debug=bool(args.debug))
    except KeyboardInterrupt:
        console.emit_error(PROG, {**result, "ok": False, "error": "interrupted",
                                  "exit_code": ExitCode.INTERRUPTED},
                           ["interrupted: the VM was cleaned up, logs kept"])
        return ExitCode.INTERRUPTED
    console.emit(render_result(result))
    return int(result["exit_status"])


def _fail(console: Console, exc: BuilderError, result: dict[str, Any], *, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    console.emit_error(PROG, {**result, **error_data(exc)}, error_lines(exc))
    return exc.exit_code


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C: both unwind the launch's ExitStack."""
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def render_result(result: dict[str, Any]) -> CommandResult:
    """The closing lines for people, the whole object for --json."""
    status = int(result["exit_status"])
    data = {"ok": status == 0, **result}
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result["durations"].items())
    if status == 0:
        lines = [f"engine-setup succeeded on {result['domain']} ({result['virt_type']})"]
        if result.get("url"):
            lines.append(f"the engine: {result['url']}")
    else:
        lines = [f"engine-setup failed with exit status {status}",
                 f"console log: {result['console_log']}",
                 f"engine-setup output: {result['transcript']}"]
    lines.append(f"phases: {timing}")
    return CommandResult(data=data, text="\n".join(lines), exit_code=status)


if __name__ == "__main__":
    sys.exit(main())
