"""Golden kickstart: the kickstart-centos9 recipe rendered as its backend renders it (bundled
template, the recipe's mirrors and repositories), with a fixed root password hash."""

from __future__ import annotations

from dataclasses import replace

from builder.disk.kickstart_install import from_recipe
from builder.disk.registry import load_recipe
from tests.fixtures.golden import GoldenFiles
from tests.fixtures.golden_inputs import KICKSTART_RECIPE, kickstart_root_hash

GOLDEN_NAME = f"kickstart/{KICKSTART_RECIPE}.ks"


def golden_names() -> set[str]:
    """Every golden file this module checks (tests/unit/test_golden_files.py uses it)."""
    return {GOLDEN_NAME}


def render() -> str:
    """The recipe's own options plus a root password hash (the recipe leaves root locked)."""
    recipe = load_recipe(KICKSTART_RECIPE)
    options = {**recipe.options, "root_password_hash": kickstart_root_hash()}
    return from_recipe(replace(recipe, options=options), env={}).kickstart


def test_kickstart_matches_golden(golden: GoldenFiles) -> None:
    golden.check(GOLDEN_NAME, render())
