"""A fixed-seed sample of the fuzz campaign (bench/fuzz_inventory.py runs all 5,000 cases):
hostile and random inventories end in a clean one-line error or an accepted, rendered seed;
never a hang, a crash of the interpreter, or an internal error."""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from bench import fuzz_inventory as fuzz
from bench.fuzz_inventory import Case, Outcome, generate, run_campaign

SAMPLE = 1000
SEED = 20260131


def test_fuzz_sample_has_no_hang_crash_or_internal_error() -> None:
    problems: list[str] = []
    families: Counter[str] = Counter()

    def report(case: Case, outcome: Outcome) -> None:
        families[case.family.split(":")[0]] += 1
        if outcome.kind in ("hang", "crash", "internal error"):
            problems.append(f"case {case.index} ({case.family}): {outcome.kind}: "
                            f"{outcome.detail}")

    counts = run_campaign(generate(SEED, SAMPLE), jobs=2, timeout=60, report=report)
    assert problems == []
    assert sum(counts.values()) == SAMPLE
    # The sample exercises both ends and every family, or it proves nothing.
    assert counts["accepted"] > SAMPLE // 10 and counts["clean error"] > SAMPLE // 2
    assert set(families) == {"structured", "edgy", "raw", "secret", "special"}


def test_the_harness_counts_crashes_hangs_and_internal_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each case runs in a forked child: a segfault, a hang past the deadline or an exception
    is counted, and the campaign goes on."""
    def misbehave(case: Case, _root: Path) -> Outcome:
        if case.index == 0:
            faulthandler.disable()  # pytest's handler would print this child's stack in the log
            os.kill(os.getpid(), signal.SIGSEGV)
        if case.index == 1:
            time.sleep(60)
        if case.index == 2:
            raise ValueError("boom")
        return Outcome("accepted")

    monkeypatch.setattr(fuzz, "evaluate", misbehave)
    seen: dict[int, Outcome] = {}

    def report(case: Case, outcome: Outcome) -> None:
        seen[case.index] = outcome

    cases = (Case(index, "special:missing", special="missing") for index in range(4))
    counts = fuzz.run_campaign(cases, jobs=2, timeout=2, report=report)
    assert {index: outcome.kind for index, outcome in seen.items()} == {
        0: "crash", 1: "hang", 2: "internal error", 3: "accepted"}
    assert "signal 11" in seen[0].detail and "ValueError: boom" in seen[2].detail
    assert counts == {"crash": 1, "hang": 1, "internal error": 1, "accepted": 1,
                      "clean error": 0}
