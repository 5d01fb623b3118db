"""A fixed-seed sample of the command-line fuzz campaign (bench/fuzz_argv.py runs 1,000 cases):
random command lines of he-build and he-launch end in a result or a documented refusal; never
an internal error, a traceback without --debug, a hang, a crash or a printed secret."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench import Outcome
from bench.fuzz_argv import (
    FAILURES,
    Case,
    baselines,
    generate,
    judge,
    refusal,
    run_campaign,
)

SAMPLE = 150
SEED = 20261203
SECRET = "s3cret-Root-pw"
SECRET_FILE = "examples/secrets/dc1-root-password"


def test_fuzz_sample_has_no_internal_error_hang_crash_or_leak(tmp_path: Path) -> None:
    problems: list[str] = []
    bases: Counter[tuple[str, str]] = Counter()

    def report(case: Case, outcome: Outcome) -> None:
        bases[(case.base, outcome.kind)] += 1
        if outcome.kind in FAILURES:
            problems.append(f"case {case.index} ({case.program} {case.argv}): {outcome.kind}: "
                            f"{outcome.detail}")

    counts = run_campaign(generate(SEED, SAMPLE), jobs=2, timeout=120, report=report,
                          scratch_parent=tmp_path)
    assert problems == []
    assert list(tmp_path.iterdir()) == []  # no case wrote outside its directory
    assert sum(counts.values()) == SAMPLE
    # Every command line of the campaign ran, and the sample holds both ends.
    assert {base for base, _ in bases} == set(baselines())
    assert counts["done"] > SAMPLE // 10 and counts["refused"] > SAMPLE // 2


def test_the_first_cases_are_the_unmutated_baselines_and_they_succeed_or_refuse_as_expected(
) -> None:
    """The baselines are valid command lines: each ends in exit 0, except where an input is
    junk on purpose: the launches' OVA and seed (so that no case boots) and the OVA whose disk
    names its file by an XPath injection (read as a name, then refused as incomplete)."""
    cases = list(generate(SEED, len(baselines())))
    outcomes: dict[str, Outcome] = {}
    run_campaign(iter(cases), jobs=2, timeout=120,
                 report=lambda case, outcome: outcomes.__setitem__(case.base, outcome))
    expected = {base: Outcome("done") for base in baselines()}
    expected["launch"] = Outcome("refused", "5 junk.ova is not a readable OVA")
    expected["launch seed"] = Outcome("refused", "2 junk.iso is not a readable ISO 9660 image")
    expected["ova verify"] = Outcome("refused", "5 vm.ovf lacks a field the appliance needs")
    assert outcomes == expected


def test_a_value_climbing_out_stays_inside_the_case(tmp_path: Path) -> None:
    """`--out ../../etc/shadow` writes the seeds into the case's own directory."""
    argv = ("seed", "--site", "dc1", "--inventory", "examples/inventory.yaml", "--out",
            "../../etc/shadow")
    outcomes: list[Outcome] = []
    run_campaign(iter([Case(0, "he-build", "seed site", argv)]), jobs=1, timeout=120,
                 report=lambda _case, outcome: outcomes.append(outcome), scratch_parent=tmp_path)
    assert outcomes == [Outcome("done")]
    assert list(tmp_path.iterdir()) == []


def test_no_he_launch_case_goes_without_a_storage_of_its_own() -> None:
    """he-launch's default storage is the host's (/var/tmp/he-launch): a case that dropped
    --storage would have launched into the host's own site directories, and with
    --prune-images and the test driver (which sees no domain using anything) removed the
    host's images, a running engine's among them."""
    launches = [case for case in generate(SEED, 3000) if case.program == "he-launch"]
    assert launches
    for case in launches:
        assert "--storage" in case.argv, case


def test_the_judge_counts_tracebacks_internal_errors_crashes_and_leaks() -> None:
    def kind(code: int, out: str = "", err: str = "", debug: bool = False,
             argv: tuple[str, ...] = ()) -> str:
        return judge(code, out, err, {SECRET_FILE: SECRET}, debug=debug, argv=argv).kind

    traceback = "Traceback (most recent call last):\n  File ...\nValueError: x\n"
    assert kind(0) == "done"
    assert kind(2, err="he-build: error: no site 'x'\n") == "refused"
    assert kind(1, err="he-build: error: internal error\n") == "internal error"
    assert kind(2, err=traceback) == "internal error"
    assert kind(2, err=traceback, debug=True) == "refused"
    assert kind(1, err=traceback, debug=True) == "internal error"
    assert kind(9) == "internal error"  # not an ExitCode
    assert kind(-11) == "crash"
    assert kind(0, out=f"password: {SECRET}") == "leak"
    assert kind(2, err=f"he-build: error: bad {SECRET!r}") == "leak"
    # Handed the secret's own file as another input (a kickstart, say), a refusal that quotes
    # it leaks it all the same.
    given = ("--kickstart", SECRET_FILE)
    assert kind(2, err=f"line 1: Unknown command: {SECRET}", argv=given) == "leak"
    assert kind(2, err=f"line 1: Unknown command: {SECRET}",
                argv=("--kickstart", "other")) == "leak"
    assert kind(1, err=f"error: {SECRET}", argv=given) == "leak"
    # Under --json, stdout is the one JSON object, and it agrees with the exit code.
    json_argv = ("--json", "seed", "--all")
    assert kind(0, out='{"ok": true}', argv=json_argv) == "done"
    assert kind(2, out='{"ok": false, "exit_code": 2}', argv=json_argv) == "refused"
    assert kind(2, out="", err="usage: he-build ...", argv=json_argv) == "internal error"
    assert kind(2, out='{"ok": false, "exit_code": 5}', argv=json_argv) == "internal error"
    assert kind(0, out='{"entries": []}', argv=json_argv) == "internal error"
    assert kind(0, out='{"$schema": "x"}', argv=("--json", "inventory", "schema")) == "done"
    assert kind(0, out="text", argv=("seed", "--", "--json")) == "done"  # a word, not --json
    # A value's line break printed as it is: its `he-build: error: fake` begins a line.
    forged = "Traceback ...\nInputError: no site a\nhe-build: error: fake\n"
    assert kind(2, err=forged, debug=True) == "forged line"
    assert kind(2, err="he-build: error: no site 'a\\nhe-build: error: fake'\n") == "refused"


def test_a_refusal_is_grouped_by_the_clis_own_error_line_not_a_line_of_the_traceback() -> None:
    # With --debug a traceback comes before the CLI's own error line, which is the one that
    # counts (here one whose message forged a line: the judge calls that a failure of its own).
    err = ("Traceback (most recent call last):\n  File ...\n"
           "builder.errors.InputError: inventory i.yaml has no site a\n"
           "he-build: error: fake (known: dc1)\n"
           "he-build: error: inventory i.yaml has no site a\\x0ahe-build: error: fake\n")
    assert refusal(2, err) == "2 inventory i.yaml has no site a\\x0ahe-build"
    assert refusal(2, "he-build: error: no site 'x'\n") == "2 no site "
    assert refusal(6, "something else\n") == "6 something else"


def test_a_case_whose_stdout_nobody_reads_is_judged_by_its_status_and_stderr(
        tmp_path: Path) -> None:
    """More output than a pipe holds, under --json, to a reader that has gone: done, as long
    as the command neither fails nor prints a traceback (it did both before it dropped such
    output)."""
    case = Case(0, "he-build", "inventory schema", ("inventory", "schema", "--json"),
                closed_stdout=True)
    outcomes: list[Outcome] = []
    run_campaign(iter([case]), jobs=1, timeout=120,
                 report=lambda _case, outcome: outcomes.append(outcome), scratch_parent=tmp_path)
    assert outcomes == [Outcome("done")]
    cases = list(generate(SEED, 1000))
    assert 50 < sum(case.closed_stdout for case in cases) < 150
    assert 20 < sum(case.closed_stderr for case in cases) < 80
    assert all(case.closed_stdout for case in cases if case.closed_stderr)


def test_a_case_nobody_hears_at_all_is_judged_by_its_status(tmp_path: Path) -> None:
    """A refusal under --debug with neither stdout nor stderr read: its status stands (it was
    1, an internal error, when the traceback's write failed)."""
    case = Case(0, "he-build", "seed site",
                ("--debug", "seed", "--site", "nope", "--inventory", "examples/inventory.yaml",
                 "--out", "out"), closed_stdout=True, closed_stderr=True)
    outcomes: list[Outcome] = []
    run_campaign(iter([case]), jobs=1, timeout=120,
                 report=lambda _case, outcome: outcomes.append(outcome), scratch_parent=tmp_path)
    assert [outcome.kind for outcome in outcomes] == ["refused"]
