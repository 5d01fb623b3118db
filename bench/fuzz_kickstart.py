"""Fuzz campaign: mutated kickstarts through the check a kickstart build runs before any work.

    .venv/bin/python -m bench.fuzz_kickstart [--cases 5000] [--seed 1] [--timeout 10]

Each case is generated from a fixed seed: the bundled kickstart as the default recipe renders
it (or nothing), with one to five mutations: a line of a command that can hold a password
(rootpw, user, bootloader, sshpw, url, part, ...) carrying the case's password, right or with
a mistake pykickstart refuses (a space in it, a misspelt option, a stray word, an unbalanced
quote, `--option=value` on a flag); a line of random commands, options and words (quotes,
backslashes, `%include`, section headers and ends, control characters); a line dropped,
doubled or cut short; other line ends. Each case goes through `validate_kickstart` and
`check_finishes`, as `he-build appliance` runs them, under a deadline.

Outcomes: accepted, refused (an InputError of one line), leak (a refusal showing the case's
password), hang (past the deadline), internal error (any other exception). The campaign passes
when leaks, hangs and internal errors are all zero.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import string
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

from bench import Outcome, run_bench
from builder.disk import kickstart
from builder.disk.kickstart import (
    KickstartInputs,
    Repo,
    check_finishes,
    render_kickstart,
    validate_kickstart,
)
from builder.errors import InputError

OUTCOMES = ("accepted", "refused", "leak", "hang", "internal error")
FAILURES = ("leak", "hang", "internal error")
VERSIONS = ("RHEL9", "RHEL10")
BASE = render_kickstart(KickstartInputs(
    install_tree="http://mirror.example/centos/9-stream/BaseOS/x86_64/os/",
    timezone="Europe/Prague", root_password_hash="$6$saltsalt$" + "a" * 86,
    repos=(Repo("ovirt-45", "http://mirror.example/ovirt/4.5/el9/"),),
    extra_packages=("vim-enhanced",)))

# How each password-holding command takes its secret: {} is the password as written.
SECRET_LINES = [
    "rootpw --plaintext {}", "rootpw --iscrypted {}", "rootpw {}",
    "user --name=admin --password={} --plaintext", "user --name=admin --password {}",
    "bootloader --password={} --iscrypted", "bootloader --location=mbr --password {}",
    "sshpw --username=root --plaintext {}", "url --url=http://user:{}@mirror.example/os/",
    "repo --name=r --baseurl=http://user:{}@mirror.example/r/",
    "liveimg --url=http://user:{}@mirror.example/img", "network --bootproto=dhcp --wpakey={}",
    "autopart --encrypted --passphrase={}", "part / --size=1024 --encrypted --passphrase={}",
    "logvol / --vgname=vg --name=root --size=1 --encrypted --passphrase={}",
    "raid / --level=1 --device=md0 --encrypted --passphrase={} raid.1 raid.2",
    "rhsm --organization=o --activation-key={}",
]
# A mistake pykickstart refuses, made on a password line.
SECRET_MISTAKES: list[Callable[[str, str], str]] = [
    lambda line, pw: line.replace(pw, f"{pw[:3]} {pw}", 1),       # a space in the password
    lambda line, pw: line.replace(pw, f"x {pw}", 1),
    lambda line, pw: f"{line} {pw}",                                # a stray word
    lambda line, pw: f"{line} extra",
    lambda line, pw: line.replace("--", "--mis", 1),                # a misspelt option
    lambda line, pw: line.replace("--plaintext", f"--plaintext={pw}"),
    lambda line, pw: line.replace(pw, f"'{pw}", 1),                 # an unbalanced quote
    lambda line, pw: line.replace(pw, f'"{pw}', 1),
    lambda line, pw: f"{line} \\",
    lambda line, pw: line.replace(pw, f"{pw}\\", 1),
    lambda line, pw: line.replace(pw, f"'{pw}' '{pw}'", 1),
]
# Decorations of the password (its core, the letters the leak check looks for, stays whole).
DECORATIONS = ["{}", "{}!", "p\\{}", "{}'s", 'a"{}', "é{}", "{}%", "{}=x", "{},", "[{}]",
               "({})", "{}#x", "$6${}"]

COMMANDS = ["text", "poweroff", "reboot", "lang", "keyboard", "timezone", "selinux", "firewall",
            "services", "clearpart", "zerombr", "ignoredisk", "network", "rootpw", "user",
            "bootloader", "part", "logvol", "volgroup", "autopart", "url", "repo", "sshkey",
            "module", "eula", "firstboot", "skipx", "halt", "shutdown", "frobnicate",
            "%pre", "%post", "%packages", "%end", "%include", "%ksappend", "%addon",
            "%anaconda", "%onerror", "%traceback", "%bogus", "-", "#", "%", "\\", "'", '"']
WORDS = ["--name=a", "--password", "--size=1", "--grow", "--", "=", "--bootproto=dhcp",
         "--interpreter=/bin/sh", "--nochroot", "--log=/tmp/x", "--iscrypted", "--plaintext",
         "--lock", "--ondisk=vda", "--fstype=xfs", "/", "swap", "pv.01", "--url=http://x/",
         "--all", "--initlabel", "--enforcing", "--disabled", "--utc", "Europe/Prague",
         "en_US.UTF-8", "'a b'", '"q', "'", "\\", "#c", "%end", "\t", "é", "\x00", "\x1b",
         "\x7f", "/etc/shadow", "http://127.0.0.1:9/x.ks", "$(reboot)", "x" * 200]
LINE_ENDS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028"]


@dataclass(frozen=True)
class Case:
    index: int
    text: str
    version: str
    password: str  # the core of every password the case holds


def generate(seed: int, count: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for index in range(count):
        core = "Pw" + "".join(rng.choices(string.ascii_letters + string.digits, k=10))
        lines = BASE.splitlines() if rng.random() < 0.8 else []
        for _ in range(rng.randint(1, 5)):
            lines = rng.choice(MUTATIONS)(rng, lines, core)
        end = rng.choice(LINE_ENDS) if rng.random() < 0.2 else "\n"
        text = end.join(lines) + (end if rng.random() < 0.9 else "")
        yield Case(index, text, rng.choice(VERSIONS), core)


def _password_line(rng: random.Random, lines: list[str], core: str) -> list[str]:
    password = rng.choice(DECORATIONS).format(core)
    line = rng.choice(SECRET_LINES).format(password)
    if rng.random() < 0.7:
        line = rng.choice(SECRET_MISTAKES)(line, password)
    return _insert(rng, lines, line)


def _random_line(rng: random.Random, lines: list[str], _core: str) -> list[str]:
    words = [rng.choice(COMMANDS), *rng.choices(WORDS, k=rng.randint(0, 5))]
    return _insert(rng, lines, " ".join(words))


def _insert(rng: random.Random, lines: list[str], line: str) -> list[str]:
    at = rng.randint(0, len(lines))
    return [*lines[:at], line, *lines[at:]]


def _drop(rng: random.Random, lines: list[str], _core: str) -> list[str]:
    if not lines:
        return lines
    at = rng.randrange(len(lines))
    return [*lines[:at], *lines[at + 1:]]


def _double(rng: random.Random, lines: list[str], _core: str) -> list[str]:
    if not lines:
        return lines
    at = rng.randrange(len(lines))
    return [*lines[:at + 1], *lines[at:]]


def _cut_short(rng: random.Random, lines: list[str], _core: str) -> list[str]:
    """The text ends inside a line (a truncated file)."""
    if not lines:
        return lines
    at = rng.randrange(len(lines))
    return [*lines[:at], lines[at][:rng.randint(0, len(lines[at]))]]


MUTATIONS: list[Callable[[random.Random, list[str], str], list[str]]] = [
    _password_line, _password_line, _password_line, _random_line, _random_line, _drop,
    _double, _cut_short,
]


class _Warnings(logging.Handler):
    """What the check logs (pykickstart's warnings: a duplicate, a deprecated command)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def evaluate(case: Case) -> Outcome:
    logged = _Warnings()
    logger = logging.getLogger(kickstart.__name__)
    logger.addHandler(logged)
    logger.propagate = False
    try:
        outcome = _check(case)
    finally:
        logger.removeHandler(logged)
        logger.propagate = True
    leaked = [message for message in logged.messages if case.password in message]
    return Outcome("leak", f"logged: {leaked[0]}") if leaked else outcome


def _check(case: Case) -> Outcome:
    try:
        check_finishes(validate_kickstart(case.text, version=case.version))
    except InputError as exc:
        shown = " ".join([exc.message, *exc.problems])
        if case.password in shown:
            return Outcome("leak", shown)
        if "\n" in shown:
            return Outcome("internal error", f"a refusal of more than one line: {shown!r}")
        return Outcome("refused", exc.message)
    except Exception as exc:  # what the campaign counts
        return Outcome("internal error", "".join(
            traceback.format_exception_only(type(exc), exc)).strip())
    return Outcome("accepted")


class _Deadline(BaseException):  # not one of the exceptions a case may raise
    pass


def run_case(case: Case, timeout: float) -> Outcome:
    """`evaluate` under a deadline (pykickstart is pure Python: SIGALRM interrupts it)."""
    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise _Deadline

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return evaluate(case)
    except _Deadline:
        return Outcome("hang", f"past {timeout:g} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_campaign(cases: Iterator[Case], *, timeout: float,
                 report: Callable[[Case, Outcome], None]) -> Counter[str]:
    counts: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
    for case in cases:
        outcome = run_case(case, timeout)
        counts[outcome.kind] += 1
        report(case, outcome)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.fuzz_kickstart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    refusals: Counter[str] = Counter()
    started = time.monotonic()

    def report(case: Case, outcome: Outcome) -> None:
        if outcome.kind == "refused":
            refusals[_refusal_kind(outcome.detail)] += 1
        if outcome.kind in FAILURES:
            print(f"case {case.index}: {outcome.kind}: {outcome.detail}\n"
                  f"  text: {case.text!r}", flush=True)

    counts = run_campaign(generate(args.seed, args.cases), timeout=args.timeout, report=report)
    print(f"cases: {args.cases} (seed {args.seed}) in {time.monotonic() - started:.1f} s")
    for kind in OUTCOMES:
        print(f"  {kind:<15}{counts[kind]:>6}")
    print(f"distinct refusals: {len(refusals)}; most common:")
    for kind, count in refusals.most_common(8):
        print(f"  {count:>5}  {kind}")
    return 0 if not any(counts[kind] for kind in FAILURES) else 1


def _refusal_kind(message: str) -> str:
    """A refusal without its line number and quoted words, to count the kinds."""
    text = message.removeprefix("kickstart rejected by pykickstart: ")
    if text.startswith("line "):
        text = text.split(": ", 1)[-1]
    return text.split(":", 1)[0][:80]


if __name__ == "__main__":
    run_bench(main)
