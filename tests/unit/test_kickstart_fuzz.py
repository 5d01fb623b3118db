"""A fixed-seed sample of the kickstart fuzz campaign (bench/fuzz_kickstart.py runs 5,000
cases): mutated kickstarts, many with a password on a line pykickstart refuses, end accepted
or in a one-line refusal that does not show the password; never a hang or another exception."""

from __future__ import annotations

import logging
import time
from collections import Counter

import pytest

from bench import Outcome
from bench import fuzz_kickstart as fuzz
from bench.fuzz_kickstart import Case, generate, run_campaign
from builder.errors import InputError

SAMPLE = 300
SEED = 20261204


def test_fuzz_sample_has_no_leak_hang_or_internal_error() -> None:
    problems: list[str] = []
    refusals: Counter[str] = Counter()

    def report(case: Case, outcome: Outcome) -> None:
        if outcome.kind in fuzz.FAILURES:
            problems.append(f"case {case.index}: {outcome.kind}: {outcome.detail}")
        if outcome.kind == "refused":
            refusals["cut" if "the arguments are not shown" in outcome.detail else "whole"] += 1

    counts = run_campaign(generate(SEED, SAMPLE), timeout=30, report=report)
    assert problems == []
    assert sum(counts.values()) == SAMPLE
    # Both ends, and refusals of password lines among them, or the sample proves nothing.
    assert counts["accepted"] > SAMPLE // 10 and counts["refused"] > SAMPLE // 2
    assert refusals["cut"] > SAMPLE // 50


def test_the_harness_counts_leaks_hangs_and_internal_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal or a log line showing the case's password is a leak; past the deadline is a
    hang; any exception but InputError is an internal error."""
    def misbehave(text: str, *, version: str | None = None) -> object:
        if text == "refusal":
            raise InputError("kickstart rejected by pykickstart: line 1: ['Pw123']")
        if text == "log":
            logging.getLogger("builder.disk.kickstart").warning("a user named Pw123")
        if text == "hang":
            time.sleep(5)
        if text == "boom":
            raise IndexError("string index out of range")
        if text == "two lines":
            raise InputError("a\nb")
        raise InputError("line 1: Unknown command: frobnicate")

    monkeypatch.setattr(fuzz, "validate_kickstart", misbehave)
    kinds = {text: fuzz.run_case(Case(0, text, "RHEL9", "Pw123"), timeout=0.5).kind
             for text in ("refusal", "log", "hang", "boom", "two lines", "fine")}
    assert kinds == {"refusal": "leak", "log": "leak", "hang": "hang", "boom": "internal error",
                     "two lines": "internal error", "fine": "refused"}
