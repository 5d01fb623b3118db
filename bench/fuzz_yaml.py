"""Fuzz campaign: generated YAML documents through both writers of the seed's documents.

    .venv/bin/python -m bench.fuzz_yaml [--cases 100000] [--seed 1]

Each case is a document generated from a fixed seed: mappings and lists nested up to three deep
(empty ones too, and the same list twice), whose leaves are booleans, null, ints and strings. Half
the cases draw their strings from what the seed's documents hold (paths, host names, addresses,
MACs, modes, hashes, words YAML reads as other types, long runs of words near the width, files
of lines); the other half add what needs quoting, escaping or a special block (leading and
trailing blanks, `: ` and ` #`, indicators, tabs, quotes, backslashes, non-ASCII, blank last
lines, keys over 128 characters).

Each document goes through `dump_block_yaml` (builder.seed.block_yaml) and, when it writes it,
through libyaml (`libyaml_dump`, builder.seed.documents): the texts must be the same. Outcomes:
direct (the same text), libyaml (left to libyaml), mismatch. The campaign passes when there is
no mismatch.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench import Outcome, run_bench
from builder.seed.block_yaml import dump_block_yaml
from builder.seed.documents import libyaml_dump

OUTCOMES = ("direct", "libyaml", "mismatch")
READ_AS_OTHER = ["yes", "no", "on", "off", "true", "False", "null", "Null", "~", "1", "0644", "-3",
                 "+1", "1.5", "1e3", ".inf", ".NaN", "0x1f", "0o17", "0b101", "1_000", "1:20",
                 "52:54:00:12:34:56", "2001-01-01", "2001-12-14t21:59:43.10-05:00", "=", "<<"]
ORDINARY = ["root:root", "/etc/hosts", "engine.dc1.example.com", "10.0.2.15/24", "fd00::15/64",
            "00:16:3E:B4:BF:20", "eth0", "UTC", "pool.ntp.org", "NoCloud", "None", "$6$salt$" +
            "x" * 86, "Europe/Prague", "hosted-engine", "a.b_c-d", "x" * 130, "AAAA/b+c="]
AWKWARD = ["", " ", "a ", " a", "a  b", "a: b", "a:", "a #b", "#a", "-", "-a", "- a", "? a", ":a",
           "...", "---", "--- a", "a,b", "[a]", "{a}", "*a", "&a", "!a", "|", ">", "'a'", '"a"',
           "a\tb", "a\\b", "\u00e9t\u00e9", "a\u2028b", "%a", "@a", "`a"]
LINES = ["", "abc", "  indented", "# comment", "a: b", "k=v", "[x]", "- item", "key: 'v'",
         "x" * 150, "a #b", "...", "---", "end"]
AWKWARD_LINES = ["x ", " ", "\ttab", "\u00e9t\u00e9", "a\u0007b"]
PLAIN_CHARS = "abcXYZ019_/$.@=+%~:- "
KEYS = ["path", "content", "owner", "permissions", "on", "1", "ethernets", "a-b"]


@dataclass(frozen=True)
class Case:
    index: int
    document: Any


def generate(seed: int, count: int) -> Iterator[Case]:
    """`count` documents from `seed`: even cases ordinary strings only, odd ones awkward too."""
    rng = random.Random(seed)
    for index in range(count):
        awkward = index % 2 == 1
        yield Case(index, _document(rng, awkward))


def _document(rng: random.Random, awkward: bool) -> Any:
    if rng.random() < 0.3:
        return _value(rng, awkward, 0)
    return {_key(rng, awkward): _value(rng, awkward, 1) for _ in range(rng.randint(1, 5))}


def _key(rng: random.Random, awkward: bool) -> str:
    if awkward and rng.random() < 0.2:
        return _text(rng, awkward) if rng.random() < 0.8 else "k" * 129
    return rng.choice(KEYS)


def _value(rng: random.Random, awkward: bool, depth: int) -> Any:
    draw = rng.random()
    if depth < 3 and draw < 0.2:
        return {_key(rng, awkward): _value(rng, awkward, depth + 1)
                for _ in range(rng.randint(0, 4))}
    if depth < 3 and draw < 0.35:
        items = [_value(rng, awkward, depth + 1) for _ in range(rng.randint(0, 4))]
        if items and rng.random() < 0.1:
            shared = [_text(rng, awkward)]
            items += [shared, shared]
        return items
    if draw < 0.42:
        return rng.choice([True, False, None, 0, 7, -3, 10**12])
    return _text(rng, awkward)


def _text(rng: random.Random, awkward: bool) -> str:
    draw = rng.random()
    if draw < 0.2:
        return rng.choice(READ_AS_OTHER)
    if draw < 0.35:
        return rng.choice(AWKWARD if awkward and rng.random() < 0.5 else ORDINARY)
    if draw < 0.6:
        if awkward:
            return "".join(rng.choice(PLAIN_CHARS) for _ in range(rng.randint(0, 60)))
        return " ".join(_word(rng) for _ in range(rng.randint(1, 4)))
    if draw < 0.8:
        words = ["word", "1", "a:b", "x" * 20, "yes", "$6$", "/etc/x"]
        if awkward:
            words += AWKWARD
        return " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
    return _file(rng, awkward)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(PLAIN_CHARS[:-1]) for _ in range(rng.randint(1, 12)))


def _file(rng: random.Random, awkward: bool) -> str:
    pool = LINES + (AWKWARD_LINES if awkward else [])
    lines = [rng.choice(pool) for _ in range(rng.randint(1, 6))]
    if not awkward and not lines[0].strip():
        lines[0] = "first"
    return "\n".join(lines) + rng.choice(["", "\n", "\n", "\n\n" if awkward else "\n"])


def evaluate(case: Case) -> Outcome:
    direct = dump_block_yaml(case.document)
    if direct is None:
        return Outcome("libyaml")
    expected = libyaml_dump(case.document)
    if direct != expected:
        return Outcome("mismatch", f"{case.document!r}: wrote {direct!r}, libyaml {expected!r}")
    return Outcome("direct")


def run_campaign(cases: Iterator[Case], *,
                 report: Callable[[Case, Outcome], None] | None = None) -> Counter[str]:
    counts: Counter[str] = Counter()
    for case in cases:
        outcome = evaluate(case)
        counts[outcome.kind] += 1
        if report is not None:
            report(case, outcome)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.fuzz_yaml", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    shown = 0

    def report(case: Case, outcome: Outcome) -> None:
        nonlocal shown
        if outcome.kind == "mismatch" and shown < 5:
            shown += 1
            print(f"case {case.index}: {outcome.detail[:600]}")

    started = time.perf_counter()
    counts = run_campaign(generate(args.seed, args.cases), report=report)
    elapsed = time.perf_counter() - started
    print(f"cases: {args.cases} (seed {args.seed}) in {elapsed:.1f} s")
    for kind in OUTCOMES:
        print(f"  {kind:9s} {counts[kind]}")
    verdict = "pass" if counts["mismatch"] == 0 else "FAIL"
    print(f"{verdict}: {counts['mismatch']} mismatches")
    return 0 if counts["mismatch"] == 0 else 1


if __name__ == "__main__":
    run_bench(main)
