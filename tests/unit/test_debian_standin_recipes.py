"""Recipes: bundled names, validation before any work, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.disk.debian_standin import DebianTestBackend
from builder.disk.recipe import refused_options
from builder.disk.registry import BACKENDS, MAX_RECIPE_BYTES, create_backend, load_recipe
from builder.errors import ExitCode, InputError


def test_bundled_recipe_loads() -> None:
    recipe = load_recipe("debian-test")
    assert recipe.backend == "debian-test"
    assert recipe.meta.name == "ovirt-engine-appliance"
    assert recipe.meta.memory_mib >= 512
    backend = create_backend(recipe)
    assert isinstance(backend, DebianTestBackend)
    assert backend.cache_key() == create_backend(load_recipe("debian-test")).cache_key()


def test_registry_is_a_plain_dict() -> None:
    assert isinstance(BACKENDS, dict) and "debian-test" in BACKENDS


def test_missing_recipe_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no such recipe: nope"):
        load_recipe("nope")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return str(path)


BASE = """backend: {backend}
appliance: {{name: x-appliance, version: "1.0", release: "1", memory_mib: {mem}, vcpus: 2,
            description: d}}
options: {options}
"""


@pytest.mark.parametrize(("backend", "mem", "options", "expected"), [
    ("debian-test", 1024, "{}", None),
    ("nope", 1024, "{}", "unknown backend 'nope'"),
    ("debian-test", 12, "{}", None),
    ("debian-test", 1024, "{disk_size_gib: 0}", None),
    ("debian-test", 1024, "{color: red}", None),
    ("debian-test", 1024, "{extra_packages: ['bad name;rm']}", "not Debian package names"),
])
def test_recipe_validation(tmp_path: Path, backend: str, mem: int, options: str,
                           expected: str | None) -> None:
    path = write(tmp_path, BASE.format(backend=backend, mem=mem, options=options))
    if (backend, mem, options) == ("debian-test", 1024, "{}"):
        assert create_backend(load_recipe(path)).name == "debian-test"
        return
    with pytest.raises(InputError) as info:
        create_backend(load_recipe(path))
    text = info.value.message + " ".join(info.value.problems)
    assert "\n" not in info.value.message
    if expected:
        assert expected in text
    else:
        assert info.value.problems


def test_yaml_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(write(tmp_path, "backend: [unclosed\n"))


# A recipe file is read as the inventory and the release file are (builder.inventory.source):
# bounded, UTF-8 with the line of a bad byte, nesting limited, keys given twice refused. Each
# case runs the real command line, which checks the recipe before it writes anything.
BAD_RECIPES = [
    pytest.param(b"backend: debian-test\nappliance: \xff\n", "is not UTF-8 text",
                 ["{path}:2: byte 0xff is not UTF-8"], id="not-utf-8"),
    pytest.param(b"[" * 5000, "is not valid YAML",
                 ["{path}:1: nested more than 64 levels deep"], id="nested"),
    pytest.param(b"- debian-test\n", "has 1 problem",
                 ["{path}:1: expected a mapping of recipe fields (backend, appliance, rpm, "
                  "options)"], id="a-list"),
    pytest.param(b"backend: debian-test\nbackend: kickstart\n", "has 2 problems",
                 ["{path}:2: backend: given twice (first on line 1)",
                  "{path}:1: appliance: required"], id="key-twice"),
    pytest.param(b"backend: debian-test\noptions:\n  sizes: [1, !!int ten]\n", "is not valid YAML",
                 ["{path}:3: options.sizes[1]: not an integer: 'ten'"], id="tagged-value"),
]


@pytest.mark.parametrize(("data", "error", "problems"), BAD_RECIPES)
def test_a_bad_recipe_file_is_one_input_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, error: str,
        problems: list[str]) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(data)
    target = tmp_path / "ks.cfg"
    code = main(["appliance", "--recipe", str(path), "--render-kickstart", str(target)])
    assert code == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        f"he-build: error: recipe {path} {error}",
        *(f"he-build: {problem.format(path=path)}" for problem in problems)]
    assert sorted(tmp_path.iterdir()) == [path]


def test_an_oversized_recipe_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"#" * MAX_RECIPE_BYTES + b"\n")
    with pytest.raises(InputError) as info:
        load_recipe(str(path))
    assert info.value.message == (f"cannot read recipe {path}: 1,048,577 bytes, larger than "
                                  "the limit of 1,048,576 bytes")
    assert info.value.hint == "a recipe is a YAML file of at most 1,048,576 bytes"


EVERY_SECTION_WRONG = """backend: debian-test
appliance:
  name: x-appliance
  version: v1
  release: "1"
  memory_mib: 1024
  vcpus: 0
  description: d
rpm:
  distros: centos9
options:
  disk_size_gib: lots
  extra_packages: [vim, "b d"]
  mirorr: http://deb.example/debian
"""


def test_every_problem_of_a_recipe_is_told_at_once_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The recipe's own fields and its backend's options are checked together, before any
    work: one run names them all, in the file's order, in words."""
    path = Path(write(tmp_path, EVERY_SECTION_WRONG))
    assert main(["appliance", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"he-build: error: recipe {path} has 6 problems",
        f"he-build: {path}:4: appliance.version: must start with a digit, then letters, "
        "digits and ._+~ only: 'v1'",
        f"he-build: {path}:7: appliance.vcpus: must be at least 1, got 0",
        f"he-build: {path}:10: rpm.distros: unknown field; did you mean 'distro'?",
        f"he-build: {path}:12: options.disk_size_gib: expected an integer, got 'lots'",
        f"he-build: {path}:13: options.extra_packages: not Debian package names: b d",
        f"he-build: {path}:14: options.mirorr: unknown field; did you mean 'mirror'?",
    ]
    assert sorted(tmp_path.iterdir()) == [path]


def test_an_unknown_backend_is_told_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.format(backend="debian", mem=1024, options="{}"))
    with pytest.raises(InputError) as info:
        load_recipe(path)
    assert info.value.problems == (f"{path}:1: backend: unknown backend 'debian' (known: "
                                   "customize, debian-test, kickstart)",)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "appliance.md"
BUNDLED = Path(__file__).resolve().parents[2] / "pipelines" / "recipes" / "debian-test.yaml"
# docs/appliance.md's recipe table, row for row: the row's label, the change it makes to a
# copy of the bundled debian-test recipe, and the line he-build prints.
DOC_ROWS = [
    ("`firmware: efi`", ("  firmware: bios", "  firmware: efi"),
     "he-build: r.yaml:11: appliance.firmware: must be 'bios' or 'uefi', got 'efi'"),
    ("`vcpus: 0`", ("  vcpus: 2", "  vcpus: 0"),
     "he-build: r.yaml:9: appliance.vcpus: must be at least 1, got 0"),
    ("`vcpus: yes`", ("  vcpus: 2", "  vcpus: yes"),
     "he-build: r.yaml:9: appliance.vcpus: expected an integer, got true"),
    ("`distro: CentOS-9`", ("  distro: centos9", "  distro: CentOS-9"),
     "he-build: r.yaml:17: rpm.distro: lowercase letters and digits, starting with a letter: "
     "'CentOS-9'"),
    ("`distros: centos9`", ("  distro: centos9", "  distros: centos9"),
     "he-build: r.yaml:17: rpm.distros: unknown field; did you mean 'distro'?"),
    ("`null: bios` (for `firmware: bios`)", ("  firmware: bios", "  null: bios"),
     "he-build: r.yaml:11: appliance.null: not a field name (field names are text)"),
    ("`provides: [Bad Name]`", ("  provides: [ovirt-engine-appliance-centos9]",
                                "  provides: [Bad Name]"),
     "he-build: r.yaml:21: rpm.provides: not RPM package names: Bad Name"),
    ("`summary: The appliance path`", ("  summary: The oVirt Engine Appliance image",
                                       "  summary: The appliance path"),
     "he-build: r.yaml:22: rpm.summary: must not contain 'path': the Ansible role finds the "
     "discovery file's lines with `grep path`"),
    ("`backend: debian`", ("backend: debian-test", "backend: debian"),
     "he-build: r.yaml:3: backend: unknown backend 'debian' (known: customize, debian-test, "
     "kickstart)"),
    ("`disk_size_gib: lots` (under `options:`)", ("  disk_size_gib: 3", "  disk_size_gib: lots"),
     "he-build: r.yaml:27: options.disk_size_gib: expected an integer, got 'lots'"),
]


@pytest.mark.parametrize(("change", "line"), [row[1:] for row in DOC_ROWS],
                         ids=[row[0] for row in DOC_ROWS])
def test_a_documented_recipe_row(change: tuple[str, str], line: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = BUNDLED.read_text()
    assert text.count(change[0] + "\n") == 1
    path = tmp_path / "r.yaml"
    path.write_text(text.replace(change[0] + "\n", change[1] + "\n"))
    assert main(["appliance", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.replace(str(path), "r.yaml").splitlines() == [
        "he-build: error: recipe r.yaml has 1 problem", line]


def test_the_documented_recipe_table_is_the_tested_one() -> None:
    section = DOCS.read_text().split("Each row is one change to a copy (r.yaml)", 1)[1]
    table = section.split("\n\n", 2)[1]
    cells = [row.strip("| ").split(" | ") for row in table.splitlines()[2:]]
    documented = [(label, _code_span(line)) for label, line in cells]
    assert documented[:-1] == [(label, line) for label, _, line in DOC_ROWS]
    assert documented[-1] == ("a list instead of a mapping", "he-build: r.yaml:1: expected a "
                              "mapping of recipe fields (backend, appliance, rpm, options)")


def _code_span(cell: str) -> str:
    """The text of a Markdown code span: `x`, or ``x`` (which may hold a backquote)."""
    return cell[2:-2].strip() if cell.startswith("``") else cell[1:-1]


def test_option_problems_are_headed_by_where_they_were_given() -> None:
    """Line 0 is a flag's problem (no line in the recipe): one is the error line itself,
    several are the command line's; the recipe's own are counted under the recipe."""
    recipe = Path("/r/ks.yaml")
    flag = (0, "--repo-url: not a URL")
    other_flag = (0, "--install-tree: not an http(s) URL")
    in_file = (12, "/r/ks.yaml:12: options.vcpus: must be at least 1, got 0")

    def told(*problems: tuple[int, str]) -> tuple[str, list[str]]:
        refusal = refused_options(recipe, list(problems))
        return refusal.message, list(refusal.problems)

    assert told(flag) == ("--repo-url: not a URL", [])
    assert told(flag, other_flag) == ("the command line has 2 problems",
                                      [flag[1], other_flag[1]])
    assert told(in_file) == ("recipe /r/ks.yaml has 1 problem", [in_file[1]])
    assert told(in_file, flag) == ("recipe /r/ks.yaml and the command line have 2 problems",
                                   [flag[1], in_file[1]])
