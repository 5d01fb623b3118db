"""bench.startup's reading of `python -X importtime`: only top-level entries count."""

from __future__ import annotations

import subprocess
import sys

from bench.startup import HEADER, import_ms

SAMPLE = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       200 |        300 | site
import time:        50 |         50 |     json.scanner
import time:       400 |        450 |   json.decoder
import time:       500 |        950 | json
a line the command itself wrote
"""


def test_top_level_cumulative_times_are_summed_once() -> None:
    # site (300 us, _io nested in it) + json (950 us, its submodules nested): 1.25 ms.
    assert import_ms(SAMPLE) == 1.25


def test_this_interpreter_writes_the_format_read() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import json"],
                          capture_output=True, text=True, check=True)
    lines = done.stderr.splitlines()
    assert lines[0] == HEADER
    top = [line for line in lines[1:] if line.split("|")[2].startswith(" json")]
    assert len(top) == 1 and import_ms(done.stderr) >= int(top[0].split("|")[1]) / 1000
