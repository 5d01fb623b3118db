"""Recipes: a small YAML file naming a disk backend and its options, validated before any work."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from builder.disk import customize, debian_standin, kickstart_install
from builder.disk.backend import DiskBackend
from builder.disk.recipe import Recipe, problem_line
from builder.errors import InputError
from builder.inventory.source import duplicate_problems, read_yaml_file
from builder.model import ApplianceMeta, PackageNames
from builder.resources import bundled_recipes

__all__ = ["BACKENDS", "Recipe", "create_backend", "load_recipe"]

MAX_RECIPE_BYTES = 1 << 20


class _MetaModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._+-]*$")
    version: str = Field(pattern=r"^[0-9][A-Za-z0-9._+~]*$")
    release: str = Field(pattern=r"^[0-9][A-Za-z0-9._+~]*$")
    memory_mib: int = Field(ge=512, le=1 << 22)
    vcpus: int = Field(ge=1, le=512)
    description: str = Field(min_length=1, max_length=500)
    firmware: Literal["bios", "uefi"] = "bios"


PACKAGE_NAME = r"^[a-z0-9][a-z0-9._+-]*$"
# The words the Ansible role greps for in the discovery file (`grep path`, `grep sha1sum`):
# a summary holding one would be read instead of the real line.
ROLE_GREP_WORDS = ("path", "sha1sum")


class _RpmModel(BaseModel):
    """The `rpm:` section: names and texts of the appliance RPMs (defaults: oVirt's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default=PackageNames.name, pattern=PACKAGE_NAME, max_length=100)
    distro: str = Field(default=PackageNames.distro, pattern=r"^[a-z][a-z0-9]*$", max_length=30)
    provides: tuple[str, ...] | None = Field(default=None, max_length=10)
    # At most 79 characters once " (qcow2)" is appended (rpmlint's summary-too-long).
    summary: str = Field(default=PackageNames.summary, min_length=1, max_length=71,
                         pattern=r"^[A-Z0-9][^\n]*[^.\s]$")
    license: str = Field(default=PackageNames.license, pattern=r"^[A-Za-z0-9.+() -]+$",
                         max_length=200)

    @field_validator("provides")
    @classmethod
    def _names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        bad = [name for name in value or () if not re.match(PACKAGE_NAME, name)]
        if bad:
            raise ValueError(f"not RPM package names: {', '.join(bad)}")
        return value

    @field_validator("summary")
    @classmethod
    def _greppable(cls, value: str) -> str:
        found = [word for word in ROLE_GREP_WORDS if word in value]
        if found:
            raise ValueError(f"must not contain {found[0]!r}: the Ansible role finds the "
                             f"discovery file's lines with `grep {found[0]}`")
        return value

    def names(self) -> PackageNames:
        provides = self.provides if self.provides is not None else (
            f"{self.name}-{self.distro}",)
        return PackageNames(name=self.name, distro=self.distro, provides=provides,
                            summary=self.summary, license=self.license)


class _RecipeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    appliance: _MetaModel
    rpm: _RpmModel = Field(default_factory=_RpmModel)
    options: dict[str, Any] = Field(default_factory=dict)


BackendFactory = Callable[[Recipe, Mapping[str, str]], DiskBackend]

# Each backend module offers `from_recipe(recipe, env) -> DiskBackend`, validating its own
# options; `env` is where secret references (env:NAME) are resolved.
BACKENDS: dict[str, BackendFactory] = {
    "customize": customize.from_recipe,
    "debian-test": debian_standin.from_recipe,
    "kickstart": kickstart_install.from_recipe,
}


def resolve_recipe_path(name_or_path: str) -> Path:
    """A bundled name (`debian-test`) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_file():
            raise InputError(f"recipe file not found: {name_or_path}")
        return candidate
    bundled = bundled_recipes()
    if name_or_path not in bundled:
        raise InputError(f"no such recipe: {name_or_path}",
                         hint=f"bundled recipes: {', '.join(bundled)}")
    return bundled[name_or_path]


def load_recipe(name_or_path: str) -> Recipe:
    """Read, parse and validate a recipe; every problem is reported before any work starts."""
    path = resolve_recipe_path(name_or_path)
    raw = read_yaml_file(path, what="recipe", limit=MAX_RECIPE_BYTES,
                         hint="a recipe is a YAML file")
    model = _validate(path, raw)
    if model.backend not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise InputError(f"recipe {path}: unknown backend {model.backend!r} (known: {known})")
    meta = ApplianceMeta(**model.appliance.model_dump())
    return Recipe(path.stem, path, model.backend, meta, model.options, model.rpm.names())


def _validate(path: Path, raw: object) -> _RecipeModel:
    """The recipe's model; InputError listing its keys given twice and its invalid fields."""
    problems = duplicate_problems(path, raw)
    try:
        model = _RecipeModel.model_validate(raw)
    except ValidationError as exc:
        problems += [problem_line(dict(err)) for err in exc.errors()]
        raise InputError(f"recipe {path} is invalid", problems=problems) from exc
    if problems:
        raise InputError(f"recipe {path} is invalid", problems=problems)
    return model


def create_backend(recipe: Recipe, env: Mapping[str, str] | None = None) -> DiskBackend:
    """The backend the recipe names, built from its options (which it validates); `env`
    resolves the recipe's environment references (none: an empty environment)."""
    return BACKENDS[recipe.backend](recipe, env or {})
