"""bench.killrun's path kill points: killed `delay_s` after a file matching the glob appears;
with `while_present`, only if one still matches then (a campaign's "STAGE: partial +X s" point
must not land in the next stage)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.killrun import KillPoint, run_with_kill

# A step that keeps a partial for two seconds, then runs on for two more (margins of a second
# or more either way, for a busy machine).
STEP = """\
import pathlib, sys, time
partial = pathlib.Path(sys.argv[1]) / ".entry.partial-1"
partial.write_text("x")
time.sleep(2)
partial.unlink()
time.sleep(2)
"""


@pytest.mark.parametrize(("delay", "while_present", "killed"), [
    (0.05, True, True), (3.0, True, False), (3.0, False, True),
], ids=["while there", "after it went", "after it went, unconditional"])
def test_a_path_point_while_present_kills_only_while_the_file_is_there(
    tmp_path: Path, delay: float, while_present: bool, killed: bool,
) -> None:
    point = KillPoint(label="step: partial", delay_s=delay, glob=f"{tmp_path}/.*.partial-*",
                      while_present=while_present)
    outcome = run_with_kill([sys.executable, "-c", STEP, str(tmp_path)], {}, point,
                            timeout_s=60)
    assert outcome.killed == killed
    assert outcome.returncode == (-9 if killed else 0)
