"""Recipes: bundled names, validation before any work, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.disk.debian_standin import DebianTestBackend
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
    pytest.param(b"backend: debian-test\nbackend: kickstart\n", "is invalid",
                 ["{path}:2: backend: given twice (first on line 1)",
                  "appliance: Field required"], id="key-twice"),
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
