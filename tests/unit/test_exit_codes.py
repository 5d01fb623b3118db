"""The README's "Exit codes" table says what builder.errors.MEANINGS says, code for code."""

from __future__ import annotations

import re
from pathlib import Path

from builder.errors import MEANINGS, ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"
ROW_RE = re.compile(r"^\| (\d+) \| (.+) \|$")


def readme_table() -> dict[int, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[2] for line in section.splitlines() if (m := ROW_RE.match(line))}


def test_readme_lists_every_exit_code_with_its_meaning() -> None:
    assert readme_table() == {int(code): text for code, text in MEANINGS.items()}


def test_every_exit_code_has_a_meaning() -> None:
    assert set(MEANINGS) == set(ExitCode)
