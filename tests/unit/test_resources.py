"""builder.resources from the checkout (the editable install), and the appliance options that
read it without building: `--list-recipes`, `--render-kickstart FILE`."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from builder import resources
from builder.cli.he_build import main
from builder.disk.kickstart_install import from_recipe
from builder.disk.registry import load_recipe
from builder.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
KICKSTART_RECIPE = REPO / "pipelines" / "recipes" / "kickstart-centos9.yaml"


def test_the_checkout_answers_with_its_top_level_files() -> None:
    assert resources.KICKSTART_DIR == REPO / "kickstarts"
    assert resources.RECIPE_DIR == REPO / "pipelines" / "recipes"
    assert resources.EXAMPLE_INVENTORY == REPO / "examples" / "inventory.yaml"
    assert resources.EXAMPLE_SECRETS == REPO / "examples" / "secrets"
    assert resources.OVF_SCHEMA_DIR == REPO / "ovf" / "xsd"
    assert resources.appliance_file("ovirt-engine-answers").read_bytes() == (
        REPO / "builder" / "data" / "appliance" / "ovirt-engine-answers").read_bytes()
    assert resources.SEED_RUNNER_TEMPLATE.is_file()


def test_every_shipped_tree_is_a_link_to_the_top_level() -> None:
    for tree in ("kickstarts", "ovf", "pipelines", "examples"):
        link = resources.DATA_DIR / tree
        assert link.is_symlink() and link.resolve() == REPO / tree


def test_list_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["appliance", "--list-recipes"]) == ExitCode.OK
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    expected = sorted((REPO / "pipelines" / "recipes").glob("*.yaml"))
    assert rows == [[path.stem, str(path)] for path in expected]
    assert main(["appliance", "--list-recipes", "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert data["recipes"] == [{"name": p.stem, "path": str(p)} for p in expected]


def test_render_kickstart_defaults_to_the_kickstart_recipe(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "ks.cfg"
    assert main(["appliance", "--render-kickstart", str(target)]) == ExitCode.OK
    assert capsys.readouterr().out.strip() == f"{target}: the kickstart of recipe kickstart-centos9"
    assert target.read_text() == from_recipe(load_recipe("kickstart-centos9"), {}).kickstart
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not (tmp_path / "out").exists()


def test_render_kickstart_dash_writes_to_stdout_and_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`-` is stdout (`./-` names a file); with --json the kickstart is the document's
    `content`. The command runs from tmp_path, so a file named `-` would show there."""
    expected = from_recipe(load_recipe("kickstart-centos9"), {}).kickstart
    monkeypatch.chdir(tmp_path)
    argv = ["appliance", "--render-kickstart", "-"]
    assert main(argv) == ExitCode.OK
    assert capsys.readouterr().out == expected
    assert main([*argv, "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert (data["kickstart"], data["content"]) == ("-", expected)
    assert list(tmp_path.iterdir()) == []


def test_render_kickstart_applies_the_kickstart_flags(tmp_path: Path) -> None:
    own = tmp_path / "own.ks"
    own.write_text("text\nrootpw --lock\npoweroff\n")
    target = tmp_path / "ks.cfg"
    assert main(["appliance", "--kickstart", str(own), "--render-kickstart", str(target)]) == (
        ExitCode.OK)
    assert target.read_text() == own.read_text()


@pytest.mark.parametrize(("line", "problem"), [
    ('rootpw "my s3cret', "line 2: No closing quotation"),
    ("rootpw --plaintext my s3cret", "line 2: Unexpected arguments to rootpw command (the "
                                     "arguments are not shown: the rootpw command can hold a "
                                     "password)"),
], ids=["unbalanced-quote", "password-with-a-space"])
def test_a_kickstart_pykickstart_refuses_is_one_error_line_without_its_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, problem: str) -> None:
    """An unbalanced quote was an internal error (shlex's ValueError); a password's words
    were quoted back."""
    own = tmp_path / "own.ks"
    own.write_text(f"text\n{line}\npoweroff\n")
    argv = ["appliance", "--kickstart", str(own), "--render-kickstart", "-"]
    assert main(argv) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"he-build: error: --kickstart {own}: kickstart rejected by pykickstart: {problem}"]
    assert "s3cret" not in captured.out + captured.err


@pytest.mark.parametrize("name", ["dc1-root-password", "dc2-admin-password"])
def test_a_password_file_given_as_the_kickstart_is_refused_without_its_password(
        capsys: pytest.CaptureFixture[str], name: str) -> None:
    """pykickstart names the unknown command of line 1, which in a password file is the
    password: the refusal does not repeat it."""
    secret = REPO / "examples" / "secrets" / name
    argv = ["appliance", "--kickstart", str(secret), "--render-kickstart", "-"]
    assert main(argv) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"he-build: error: --kickstart {secret}: kickstart rejected by pykickstart: line 1: "
        "unknown command (the word is not shown: a file that is not a kickstart may hold a "
        "secret)"]
    password = secret.read_text().splitlines()[0]
    assert password and password not in captured.out + captured.err


@pytest.mark.parametrize("line", ["hunter2 hunter3", "rootpw --plaintext my hunter2"])
def test_debugs_traceback_of_a_refused_kickstart_quotes_no_password_either(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str) -> None:
    """pykickstart's own exception quotes the words: the refusal is not chained to it."""
    own = tmp_path / "own.ks"
    own.write_text(f"text\n{line}\npoweroff\n")
    argv = ["--debug", "appliance", "--kickstart", str(own), "--render-kickstart", "-"]
    assert main(argv) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert "Traceback (most recent call last)" in captured.err
    assert "hunter" not in captured.out + captured.err


@pytest.mark.parametrize("where", ["recipe", "template"])
def test_a_refused_kickstart_is_named_where_its_line_numbers_count(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    """A recipe's own kickstart is named with the recipe; one rendered from a template is the
    rendered text, which --render-kickstart writes (the hint says so)."""
    own = tmp_path / ("own.ks" if where == "recipe" else "own.ks.j2")
    own.write_text("text\nrootpw --plaintext my s3cret\npoweroff\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(KICKSTART_RECIPE.read_text().replace(
        "\noptions:\n", f"\noptions:\n  kickstart: {own.name}\n", 1))
    assert main(["appliance", "--recipe", str(recipe), "--render-kickstart", "-"]) == \
        ExitCode.BAD_INPUT
    err = capsys.readouterr().err.splitlines()
    refusal = ("kickstart rejected by pykickstart: line 2: Unexpected arguments to rootpw "
               "command (the arguments are not shown: the rootpw command can hold a password)")
    if where == "recipe":
        assert err == [f"he-build: error: recipe {recipe}: kickstart {own}: {refusal}"]
    else:
        assert err == [
            f"he-build: error: recipe {recipe}: the kickstart rendered from {own}: {refusal}",
            "he-build: hint: the line numbers are the rendered kickstart's: --render-kickstart "
            "FILE writes it"]


def test_a_kickstart_warning_is_one_printable_log_line(tmp_path: Path) -> None:
    """pykickstart's warning about a duplicate user, whose name holds an escape sequence, as
    he-build prints it: through its log, escaped, one line (not Python's two-line warning)."""
    own = tmp_path / "own.ks"
    own.write_text("text\nuser --name=a\x1b[2J\nuser --name=a\x1b[2J\npoweroff\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "he-build"), "appliance", "--kickstart", str(own),
         "--render-kickstart", str(tmp_path / "ks.cfg")],
        capture_output=True, text=True, check=False)
    assert done.returncode == ExitCode.OK, done.stderr
    assert done.stderr.splitlines() == [
        "WARNING builder.disk.kickstart: kickstart: A user with the name a\\x1b[2J has "
        "already been defined."]


def test_a_bad_value_of_a_kickstart_recipe_is_named_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A value the kickstart template refuses (not one pydantic does): at the recipe's line."""
    text = (KICKSTART_RECIPE).read_text()
    line = text.splitlines().index("  timezone: Etc/UTC") + 1
    path = tmp_path / "r.yaml"
    path.write_text(text.replace("  timezone: Etc/UTC\n", "  timezone: Etc/U TC\n"))
    argv = ["appliance", "--recipe", str(path), "--render-kickstart", "-"]
    assert main(argv) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"he-build: error: recipe {path} has 1 problem",
        f"he-build: {path}:{line}: options.timezone: not a zone name: 'Etc/U TC'"]
    assert captured.out == ""


def test_the_documented_kickstart_refusal_is_what_he_build_prints(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/appliance-backends.md's example: the bundled recipe with three values changed."""
    docs = (REPO / "docs" / "appliance-backends.md").read_text()
    start = docs.index("  he-build: error: recipe ks.yaml has 3 problems")
    documented = [line.strip() for line in docs[start:docs.index("  ```", start)].splitlines()]
    text = (KICKSTART_RECIPE).read_text()
    for old, new in [("timezone: Etc/UTC", "timezone: Etc/U TC"),
                     ("disk_size_gib: 51", "disk_size_gib: 62"),
                     ("url: http://mirror.stream.centos.org/9-stream/CRB/x86_64/os/", "url: nope")]:
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = tmp_path / "ks.yaml"
    path.write_text(text)
    assert main(["appliance", "--recipe", str(path), "--render-kickstart", "-"]) == 2
    assert capsys.readouterr().err.replace(str(path), "ks.yaml").splitlines() == documented


@pytest.mark.parametrize(("argv", "message"), [
    (["--install-tree", "ftp://mirror.example/os/"],
     "--install-tree: not an http(s) URL: 'ftp://mirror.example/os/'"),
    (["--install-tree", "{tmp}"],
     "--install-tree: {tmp} has no images/pxeboot/vmlinuz, images/pxeboot/initrd.img"),
    (["--kickstart", "{tmp}/missing.ks"], "--kickstart: not found: {tmp}/missing.ks"),
], ids=["url-scheme", "directory-without-pxeboot", "missing-kickstart"])
def test_a_bad_kickstart_flag_is_named_by_its_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    """A flag's value has no line in the recipe: the error line names the flag, and does not
    count it as a problem of the bundled recipe, which the user did not edit."""
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    assert main(["appliance", *argv, "--render-kickstart", "-"]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        f"he-build: error: {message.format(tmp=tmp_path)}"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--recipe", "debian-test"],
     "--render-kickstart: recipe debian-test uses the debian-test backend, not kickstart"),
    (["--recipe", "nope"], "no such recipe: nope"),
])
def test_render_kickstart_refuses_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    target = tmp_path / "ks.cfg"
    assert main(["appliance", *argv, "--render-kickstart", str(target)]) == ExitCode.BAD_INPUT
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == [f"he-build: error: {message}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["missing/ks.cfg", "."])
def test_render_kickstart_needs_a_file_in_an_existing_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    target = tmp_path / where
    assert main(["appliance", "--render-kickstart", str(target)]) == ExitCode.BAD_INPUT
    assert (f"he-build: error: --render-kickstart: {target} is a directory or lies in a "
            "directory that does not exist") in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("out", "message"), [
    ("file", "--out {tmp}/file is not a directory"),
    ("file/sub", "--out {tmp}/file/sub lies under {tmp}/file, which is not a directory"),
    ("a" * 300, "--out {tmp}/" + "a" * 300 + ": File name too long"),
])
def test_an_out_that_can_never_be_a_directory_is_refused_before_any_stage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        out: str, message: str) -> None:
    """Checked before the disk stage, which takes minutes when it is not cached: the (empty)
    cache shows that no stage ran."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
    assert main(["appliance", "--out", str(tmp_path / out)]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        "he-build: error: " + message.format(tmp=tmp_path)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_bad_option_given_on_the_command_line_is_named_by_its_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The value came from --repo-url, not from the recipe file: no line of the file is
    blamed, nor the recipe counted as having a problem."""
    target = tmp_path / "ks.cfg"
    assert main(["appliance", "--repo-url", "ftp://x y", "--render-kickstart",
                 str(target)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("he-build: error: --repo-url: 'ftp://x y' does not match ")
    assert list(tmp_path.iterdir()) == []
