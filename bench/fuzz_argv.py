"""Fuzz campaign: random command lines through he-build and he-launch, each as its own process.

    .venv/bin/python -m bench.fuzz_argv [--cases 1000] [--seed 1] [--jobs 2] [--timeout 60]

Each case is generated from a fixed seed: a valid command line of one of the commands (check
the example inventory, seed a site or all, list the recipes, render a kickstart, verify an OVA,
plan the release, list or prune the cache, launch, prune he-launch's images), then one to four
mutations drawn from that command's own parser (and `--json`, `--debug` added to some): an
option added with an odd value (empty, 300 characters, control characters, `-`, NaN, huge or
negative numbers, odd URL schemes, a directory, a FIFO, an empty file, random bytes, a tar
whose OVF quotes an XPath), an option's value replaced, an option dropped, a stray word. Every
case runs `he-build` or `he-launch` in a directory of its own holding a copy of the examples,
with its own cache, storage and output; that directory is two levels below the case's own, so
that a value's `../../` stays in it. One mutated case in ten runs with stdout a pipe nobody reads
(its reader gone, as after `| head -1`): the same judge, but for the --json object, which
nobody can read there; half of those have no reader of stderr either, and are judged by their
exit status alone (with `--debug`, a traceback nobody read made it 1).

The campaign stays on this machine and stays short: libvirt is only ever the test driver
(`test:///default`) or a URI that cannot connect, no appliance it is given boots, `he-build
appliance` only lists recipes or renders a kickstart, `he-build release` only plans, and every
path a case may write to is inside its directory (a launch whose `--storage` a mutation dropped
gets it back: he-launch's default is the host's own storage, its sites and images).

Outcomes: done (exit 0), refused (a documented exit code other than 1), internal error (exit
1, an undocumented exit code, a traceback without --debug, or with --json a stdout that is not
one JSON object whose `ok` and `exit_code` match the exit code), hang (past
the deadline), crash (killed by a signal), leak (one of the example's secrets printed, even by
a command handed the secret's own file as some other input, e.g. `--kickstart
examples/secrets/dc1-root-password`, whose line 1 pykickstart names as an unknown command),
forged line (a value's line break printed as it is, so that the value's `he-build: error: fake`
begins a line, --debug's traceback included). The campaign passes when all but done and
refused are zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import Outcome, run_bench
from builder.cli import he_build, he_launch
from builder.cli.handler import CommandParser
from builder.errors import ExitCode

OUTCOMES = ("done", "refused", "internal error", "hang", "crash", "leak", "forged line")
FAILURES = ("internal error", "hang", "crash", "leak", "forged line")
# The line a value of ODD_TEXT would begin if its line break were printed as it is.
FORGED = "he-build: error: fake"
BIN = Path(sys.executable).parent
TEST_URI = "test:///default"
REPO = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = REPO / "examples"
RELEASE_FILE = REPO / "pipelines" / "release.yaml"
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1/"

# What each option's value may be, besides its own choices: text, a number, a path.
ODD_TEXT = ["", " ", "-", "--", "x" * 300, f"a\n{FORGED}", "\x01\x1b[31m",
            "\u202e", "é中😀", "%s%n", "$(reboot)", "'", "x' or '1'='1", "../../etc/shadow",
            "dc1", "DC1", "engine.dc1.example.com", "52:54:00:12:34:56", "52:54:00:zz:00:00",
            "192.168.122.10", "::1", "0", "nope", "not-utf8-\udcff"]
ODD_NUMBERS = ["0", "-1", "1", "1.5", "nan", "inf", "-inf", "1e309", "99999999999999999999",
               "0x10", "1_000", "\u0663", "", "3 "]
ODD_URIS = [TEST_URI, "bogus:///x", "", "test:///nonexistent.xml", "x" * 300]
ODD_URLS = ["ftp://x", "http://", "https://engine.dc1.example.com/ovirt-engine/", "file:///",
            "javascript:x", "http://[::1", "http://127.0.0.1:1/"]
SECRETS_PATH = "examples/secrets"
# Paths a case's directory holds (made by lay_out); any may be given to any path option.
CASE_PATHS = ["examples/inventory.yaml", "release.yaml", "empty", "junk.bin", "fifo", "dir",
              "missing/file", "junk.ova", "xpath.ova", "junk.iso", "junk.rpm", "bad.yaml",
              "out", "storage", "dir/ks.cfg", "-", f"{SECRETS_PATH}/dc1-root-password"]
# Deeper than any `..` of ODD_TEXT climbs.
CASE_DEPTH = ("in", "case")
PATH_WORDS = ("FILE", "DIR", "OVA", "ISO", "RPM", "PATH", "RECIPE", "OUT", "KEY")
TIMEOUT_FLAGS = ("--boot-timeout", "--setup-timeout", "--health-timeout")


# The share of the mutated cases whose stdout nobody reads (a pipe whose reader has gone, as
# after `| head -1`): drawn apart from the command lines, so a seed's command lines stay those
# it gave before.
CLOSED_STDOUT_SHARE = 0.1
# The share of those whose stderr nobody reads either.
CLOSED_STDERR_SHARE = 0.5


@dataclass(frozen=True)
class Case:
    index: int
    program: str
    base: str
    argv: tuple[str, ...]
    closed_stdout: bool = False
    closed_stderr: bool = False


def baselines() -> dict[str, tuple[str, list[str]]]:
    """Valid command lines, by name: the program and its arguments (paths relative to the
    case's directory, which is the working directory)."""
    return {
        "inventory check": ("he-build", ["inventory", "check", "--inventory",
                                         "examples/inventory.yaml"]),
        "inventory schema": ("he-build", ["inventory", "schema"]),
        "seed site": ("he-build", ["seed", "--site", "dc1", "--inventory",
                                   "examples/inventory.yaml", "--out", "out"]),
        "seed all": ("he-build", ["seed", "--all", "--inventory", "examples/inventory.yaml",
                                  "--out", "out", "--dhcp-export"]),
        "list recipes": ("he-build", ["appliance", "--list-recipes"]),
        "render kickstart": ("he-build", ["appliance", "--recipe", "kickstart-centos9",
                                          "--render-kickstart", "dir/ks.cfg"]),
        "ova verify": ("he-build", ["ova", "verify", "xpath.ova"]),
        "release plan": ("he-build", ["release", "--plan", "--file", "release.yaml"]),
        "cache list": ("he-build", ["cache", "list"]),
        "cache prune": ("he-build", ["cache", "prune", "--unused-for", "0"]),
        "launch": ("he-launch", ["--appliance", "junk.ova", "--inventory",
                                 "examples/inventory.yaml", "--site", "dc1", "--no-network",
                                 "--uri", TEST_URI, "--storage", "storage",
                                 "--boot-timeout", "5", "--setup-timeout", "5"]),
        "launch seed": ("he-launch", ["--appliance", "dir", "--seed", "junk.iso", "--site",
                                      "dc1", "--network",
                                      "default", "--uri", TEST_URI, "--storage", "storage",
                                      "--memory", "4096", "--vcpus", "2", "--mac",
                                      "52:54:00:12:34:56", "--health-check", "--health-url",
                                      "https://engine.dc1.example.com/ovirt-engine/"]),
        "prune images": ("he-launch", ["--prune-images", "--storage", "storage", "--uri",
                                       TEST_URI, "--unused-for", "0"]),
    }


def options_of(base: str, argv: list[str]) -> list[argparse.Action]:
    """The optional arguments of the parser that reads `argv` (the innermost subcommand)."""
    if base == "prune images":
        parser = he_launch.build_prune_parser()
    elif base.startswith("launch"):
        parser = he_launch.build_parser()
    else:
        parser = he_build.build_parser()
    assert isinstance(parser, CommandParser)
    innermost = parser.innermost(parser.parse_args(argv))
    return [a for a in innermost._actions
            if a.option_strings and a.option_strings[0] not in ("-h", "--help", "--version")]


def odd_value(rng: random.Random, action: argparse.Action) -> str:
    if action.choices is not None and rng.random() < 0.5:
        return str(rng.choice(list(action.choices)))
    flag = action.option_strings[-1]
    if action.type in (int, float) or "timeout" in flag or flag in (
            "--memory", "--vcpus", "--unused-for"):
        return rng.choice(ODD_NUMBERS)
    if flag == "--uri":
        return rng.choice(ODD_URIS)
    if "url" in flag:
        return rng.choice(ODD_URLS)
    metavar = str(action.metavar or action.dest).upper()
    if any(word in metavar for word in PATH_WORDS) or rng.random() < 0.3:
        return rng.choice(CASE_PATHS)
    return rng.choice(ODD_TEXT)


def mutate(rng: random.Random, argv: list[str], actions: list[argparse.Action]) -> list[str]:
    kind = rng.choice(("add", "replace", "replace", "replace", "drop", "stray"))
    flags = [i for i, word in enumerate(argv) if word.startswith("--")]
    by_flag = {flag: action for action in actions for flag in action.option_strings}
    valued = [i for i in flags if i + 1 < len(argv) and not argv[i + 1].startswith("--")
              and argv[i] in by_flag]
    if kind == "replace" and valued:
        i = rng.choice(valued)
        value = (odd_value(rng, by_flag[argv[i]]) if rng.random() < 0.8
                 else rng.choice(ODD_TEXT + CASE_PATHS))
        return [*argv[:i + 1], value, *argv[i + 2:]]
    if kind == "drop" and flags:
        i = rng.choice(flags)
        end = i + 2 if i + 1 < len(argv) and not argv[i + 1].startswith("--") else i + 1
        return argv[:i] + argv[end:]
    if kind == "stray":
        word = rng.choice([*ODD_TEXT, "--nope", "-x", "--json", "--debug"])
        return [*argv, word] if rng.random() < 0.5 else [word, *argv]
    action = rng.choice(actions)
    added = [rng.choice(action.option_strings)]
    if action.nargs != 0:
        added.append(odd_value(rng, action))
    return argv + added


def contained(base: str, argv: list[str]) -> list[str]:
    """The case kept local and short (module docstring): flags appended last win."""
    appliance = base in ("list recipes", "render kickstart")
    if appliance and "--list-recipes" not in argv and "--render-kickstart" not in argv:
        argv = [*argv, "--list-recipes"]
    if base == "release plan":
        argv = [*argv, "--plan"]
    if base.startswith("launch") or base == "prune images":
        uri = argv[argv.index("--uri") + 1] if "--uri" in argv[:-1] else TEST_URI
        argv = [*argv, "--uri", uri if uri in ODD_URIS[1:] else TEST_URI]
        if "--storage" not in argv:  # the default is the host's own: its images, its sites
            argv = [*argv, "--storage", "storage"]
    if base.startswith("launch"):
        argv = [word for word in argv if word != "--keep"]
        argv = argv + [word for flag in TIMEOUT_FLAGS for word in (flag, "5")]
    return argv


def generate(seed: int, count: int) -> Iterator[Case]:
    rng = random.Random(seed)
    bases = baselines()
    names = sorted(bases)
    options = {name: options_of(name, argv) for name, (_, argv) in bases.items()}
    for index in range(count):
        base = names[index % len(names)] if index < len(names) else rng.choice(names)
        program, argv = bases[base]
        actions = options[base]
        mutated = list(argv)
        if index >= len(names):  # the first cases are the baselines themselves
            for _ in range(rng.randint(1, 4)):
                mutated = mutate(rng, mutated, actions)
            for flag, share in (("--json", 0.3), ("--debug", 0.2)):
                if rng.random() < share:
                    mutated.insert(rng.randrange(len(mutated) + 1), flag)
        streams = random.Random(f"{seed}:{index}")
        closed = index >= len(names) and streams.random() < CLOSED_STDOUT_SHARE
        closed_err = closed and streams.random() < CLOSED_STDERR_SHARE
        yield Case(index, program, base, tuple(contained(base, mutated)), closed, closed_err)


def lay_out(root: Path) -> None:
    """A case's directory: the examples, the release file, and odd files for path options."""
    shutil.copytree(EXAMPLES_DIR, root / "examples")
    release = RELEASE_FILE.read_text(encoding="utf-8")
    (root / "release.yaml").write_text(release.replace("../examples/", "examples/"),
                                       encoding="utf-8")
    (root / "empty").touch()
    junk = random.Random(len(str(root))).randbytes(4096)
    for name in ("junk.bin", "junk.ova", "junk.iso", "junk.rpm"):
        (root / name).write_bytes(junk)
    (root / "bad.yaml").write_text("sites: [\n  - {name: dc1\n", encoding="utf-8")
    (root / "dir").mkdir()
    (root / "storage").mkdir()
    os.mkfifo(root / "fifo")
    xpath_ova(root / "xpath.ova")


def xpath_ova(path: Path) -> None:
    """An OVA whose OVF's disk names its file by an XPath injection."""
    quoted = "x' or '1'='1"
    ovf = (f'<?xml version="1.0"?><ovf:Envelope xmlns:ovf="{OVF_NS}"><ovf:References>'
           f'<ovf:File ovf:href="{quoted}" ovf:id="{quoted}"/></ovf:References>'
           f'<ovf:DiskSection><ovf:Disk ovf:diskId="d" ovf:fileRef="{quoted}" '
           f'ovf:capacity="1"/></ovf:DiskSection></ovf:Envelope>').encode()
    member = path.with_suffix(".ovf")
    member.write_bytes(ovf)
    with tarfile.open(path, "w") as tar:
        tar.add(member, arcname="vm.ovf")
    member.unlink()


def secrets() -> dict[str, str]:
    """The example's secrets, by the path (in a case's directory) of the file holding each."""
    files = [p for p in sorted((EXAMPLES_DIR / "secrets").iterdir()) if p.name != "README.md"]
    found = {f"{SECRETS_PATH}/{p.name}": p.read_text(encoding="utf-8").splitlines()[0]
             for p in files}
    passphrase = EXAMPLES_DIR / "keys" / "demo-release.passphrase"
    found["examples/keys/demo-release.passphrase"] = passphrase.read_text().strip()
    return {path: secret for path, secret in found.items() if secret}


def run_case(case: Case, scratch: Path, timeout: float, known: dict[str, str]) -> Outcome:
    """The case runs CASE_DEPTH directories below its own, so that a value's `../../` still
    names a place inside it."""
    root = scratch / f"case-{case.index}"
    work = root.joinpath(*CASE_DEPTH)
    work.mkdir(parents=True)
    try:
        lay_out(work)
        return evaluate(case, work, timeout, known)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def evaluate(case: Case, root: Path, timeout: float, known: dict[str, str]) -> Outcome:
    env = {**os.environ, "HOME": str(root), "HE_BUILDER_CACHE": str(root / "cache"),
           "SOURCE_DATE_EPOCH": "1700000000"}
    with contextlib.ExitStack() as stack:
        stdout = stack.enter_context(reader_gone()) if case.closed_stdout else subprocess.PIPE
        stderr = stack.enter_context(reader_gone()) if case.closed_stderr else subprocess.PIPE
        proc = subprocess.Popen(
            [str(BIN / case.program), *case.argv], cwd=root, env=env, stdin=subprocess.DEVNULL,
            stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.communicate()
        return Outcome("hang", f"past {timeout:g} s")
    finally:
        kill_group(proc.pid)
    return judge(proc.returncode, (out or b"").decode(errors="replace"),
                 (err or b"").decode(errors="replace"), known, debug="--debug" in case.argv,
                 argv=case.argv, stdout_read=not case.closed_stdout)


@contextlib.contextmanager
def reader_gone() -> Iterator[int]:
    """The write end of a pipe whose read end is closed: every write to it fails (EPIPE)."""
    read, write = os.pipe()
    os.close(read)
    try:
        yield write
    finally:
        os.close(write)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def judge(code: int, out: str, err: str, known: dict[str, str], *, debug: bool,
          argv: tuple[str, ...] = (), stdout_read: bool = True) -> Outcome:
    """A traceback is a bug unless --debug asked for it; exit 1 always is. A secret printed is
    a leak, even when the command line handed over its file. With nobody reading stdout
    (`stdout_read` False), its --json object is not looked for."""
    if code < 0:
        return Outcome("crash", f"signal {-code}")
    leaked = {path for path, secret in known.items() if secret in out or secret in err}
    if leaked:
        given = " (the command line gave its file)" if leaked & set(argv) else ""
        return Outcome("leak", f"{len(leaked)} secret(s) printed{given}")
    if any(line.startswith(FORGED) for line in (out + "\n" + err).splitlines()):
        return Outcome("forged line", "a value's line break began a line of its own")
    if not debug and "Traceback (most recent call last)" in out + err:
        return Outcome("internal error", "traceback: " + last_line(err))
    if code not in {int(c) for c in ExitCode} or code == ExitCode.INTERNAL:
        return Outcome("internal error", f"exit {code}: {last_line(err)}")
    if stdout_read and json_mode(argv) and not json_answer(out, code):
        return Outcome("internal error", f"exit {code} under --json without its JSON object: "
                                         f"{last_line(out)}")
    return Outcome("done") if code == 0 else Outcome("refused", refusal(code, err))


def json_mode(argv: tuple[str, ...]) -> bool:
    """Whether `--json` is an option of `argv` (not a word after `--`)."""
    words = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in words


def json_answer(out: str, code: int) -> bool:
    """stdout is one JSON object whose `ok` and `exit_code` (for a failure) match `code`; or
    the inventory's JSON Schema, which `inventory schema` prints as it is."""
    try:
        document = json.loads(out)
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    if code == 0:
        return document.get("ok") is True or "$schema" in document
    return document.get("ok") is False and document.get("exit_code") == code


def refusal(code: int, err: str) -> str:
    """What a refusal says, without its values: the exit code and the error line's words
    before the first quote or colon after `error: `. The error line is the last one: with
    --debug a traceback comes first, whose last line is the same message."""
    errors = [line for line in err.splitlines() if ": error: " in line]
    words = errors[-1].split(": error: ", 1)[1] if errors else last_line(err)
    return f"{code} {words.split(chr(39))[0].split(': ')[0][:60]}"


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:200] if lines else "(no output)"


def run_campaign(cases: Iterator[Case], *, jobs: int, timeout: float,
                 report: Callable[[Case, Outcome], None],
                 scratch_parent: Path | None = None) -> Counter[str]:
    counts: Counter[str] = Counter()
    known = secrets()
    with tempfile.TemporaryDirectory(prefix="he-fuzz-argv-", dir=scratch_parent) as scratch, \
            ThreadPoolExecutor(max_workers=jobs) as pool:
        ordered = list(cases)
        outcomes = pool.map(lambda c: run_case(c, Path(scratch), timeout, known), ordered)
        for case, outcome in zip(ordered, outcomes, strict=True):
            counts[outcome.kind] += 1
            report(case, outcome)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.fuzz_argv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    by_base: Counter[tuple[str, str]] = Counter()
    refusals: dict[str, set[str]] = {}
    started = time.monotonic()

    def report(case: Case, outcome: Outcome) -> None:
        by_base[(case.base, outcome.kind)] += 1
        by_base[("any, stdout closed", outcome.kind)] += case.closed_stdout
        by_base[("any, stdout and stderr closed", outcome.kind)] += case.closed_stderr
        if outcome.kind == "refused":
            refusals.setdefault(case.base, set()).add(outcome.detail)
        if outcome.kind in FAILURES:
            print(f"case {case.index} ({case.base}): {outcome.kind}: {outcome.detail}\n"
                  f"  argv: {case.program} {' '.join(repr(a) for a in case.argv)}"
                  + closed_note(case), flush=True)

    counts = run_campaign(generate(args.seed, args.cases), jobs=args.jobs,
                          timeout=args.timeout, report=report)
    print_summary(args, counts, by_base, refusals, time.monotonic() - started)
    return 0 if not any(counts[kind] for kind in FAILURES) else 1


def closed_note(case: Case) -> str:
    if case.closed_stderr:
        return "  (stdout and stderr closed)"
    return "  (stdout closed)" if case.closed_stdout else ""


def print_summary(args: argparse.Namespace, counts: Counter[str],
                  by_base: Counter[tuple[str, str]], refusals: dict[str, set[str]],
                  elapsed: float) -> None:
    print(f"{sum(counts.values())} command lines (seed {args.seed}, {args.jobs} jobs) in "
          f"{elapsed:.1f} s: " + ", ".join(f"{counts[k]} {k}" for k in OUTCOMES))
    for base in sorted({b for b, _ in +by_base}):
        row = ", ".join(f"{by_base[(base, k)]} {k}" for k in OUTCOMES if by_base[(base, k)])
        distinct = len(refusals.get(base, ()))
        print(f"  {base}: {row}" + (f" ({distinct} distinct refusals)" if distinct else ""))


if __name__ == "__main__":
    run_bench(main)
