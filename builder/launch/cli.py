"""`he-launch` entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from builder.cli import dispatch

COMMAND_MODULES: tuple[str, ...] = ()


def main(argv: Sequence[str] | None = None) -> int:
    print("he-launch: not built yet", file=sys.stderr)
    return 1 if COMMAND_MODULES == () else dispatch("he-launch", COMMAND_MODULES, argv)


if __name__ == "__main__":
    sys.exit(main())
