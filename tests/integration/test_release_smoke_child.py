"""A release killed while its boot smoke test runs: the he-launch child is sent SIGTERM (and,
as on Ctrl-C, removes its VM) instead of going on booting with nobody to read its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.processes import wait_until

pytestmark = pytest.mark.integration

# Stands in for he-launch: only how it learns of the release's death is under test here.
# It names the signal in a file that appears whole (written beside it, then renamed): the test
# reads the file as soon as it exists.
CHILD = """\
import os, pathlib, signal, sys, time
def terminated(*_):
    partial = pathlib.Path(sys.argv[1] + ".partial")
    partial.write_text("TERM")
    os.replace(partial, sys.argv[1])
    sys.exit(0)
signal.signal(signal.SIGTERM, terminated)
pathlib.Path(sys.argv[2]).write_text("")
time.sleep(120)
"""
RELEASE = """\
import pathlib, sys
from builder.pipeline.release import run_following
work = pathlib.Path(sys.argv[1])
run_following([sys.executable, "-c", sys.argv[2], str(work / "terminated"), str(work / "ready")],
              {}, work, print)
"""


def test_a_killed_release_terminates_its_smoke_child(tmp_path: Path) -> None:
    release = subprocess.Popen([sys.executable, "-c", RELEASE, str(tmp_path), CHILD])
    try:
        assert wait_until((tmp_path / "ready").exists, 60)
        release.kill()
        release.wait(timeout=30)
        assert wait_until((tmp_path / "terminated").exists, 30)
        assert (tmp_path / "terminated").read_text() == "TERM"
    finally:
        if release.poll() is None:
            release.kill()
