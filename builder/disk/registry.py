"""Recipes: a small YAML file naming a disk backend and its options, validated before any work."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from builder.disk import customize, debian_standin, kickstart_install
from builder.disk.backend import DiskBackend
from builder.disk.recipe import Recipe, invalid_recipe, options_problems
from builder.errors import InputError
from builder.inventory.counts import Count
from builder.inventory.problems import (
    LineProblem,
    in_line_order,
    located,
    model_problems,
    pydantic_message,
)
from builder.inventory.source import key_problems, read_yaml_file, text_keys_only
from builder.model import ApplianceMeta, PackageNames
from builder.resources import bundled_recipes

__all__ = ["BACKENDS", "Recipe", "create_backend", "load_recipe"]

MAX_RECIPE_BYTES = 1 << 20
PACKAGE_NAME = r"^[a-z0-9][a-z0-9._+-]*$"
VERSION = r"^[0-9][A-Za-z0-9._+~]*$"
DISTRO = r"^[a-z][a-z0-9]*$"
SUMMARY = r"^[A-Z0-9][^\n]*[^.\s]$"
LICENSE = r"^[A-Za-z0-9.+() -]+$"
# Each pattern's problem in words ({input}: the value given).
RECIPE_PATTERNS = {
    PACKAGE_NAME: "not a package name (lowercase letters, digits and ._+-): {input!r}",
    VERSION: "must start with a digit, then letters, digits and ._+~ only: {input!r}",
    DISTRO: "lowercase letters and digits, starting with a letter: {input!r}",
    SUMMARY: "one line that starts with a capital letter or a digit and does not end with a "
             "period or a space: {input!r}",
    LICENSE: "letters, digits, spaces and .+() only: {input!r}",
}


class _MetaModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=PACKAGE_NAME)
    version: str = Field(pattern=VERSION)
    release: str = Field(pattern=VERSION)
    memory_mib: Count = Field(ge=512, le=1 << 22)
    vcpus: Count = Field(ge=1, le=512)
    description: str = Field(min_length=1, max_length=500)
    firmware: Literal["bios", "uefi"] = "bios"

# The words the Ansible role greps for in the discovery file (`grep path`, `grep sha1sum`):
# a summary holding one would be read instead of the real line.
ROLE_GREP_WORDS = ("path", "sha1sum")


class _RpmModel(BaseModel):
    """The `rpm:` section: names and texts of the appliance RPMs (defaults: oVirt's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default=PackageNames.name, pattern=PACKAGE_NAME, max_length=100)
    distro: str = Field(default=PackageNames.distro, pattern=DISTRO, max_length=30)
    provides: tuple[str, ...] | None = Field(default=None, max_length=10)
    # At most 79 characters once " (qcow2)" is appended (rpmlint's summary-too-long).
    summary: str = Field(default=PackageNames.summary, min_length=1, max_length=71,
                         pattern=SUMMARY)
    license: str = Field(default=PackageNames.license, pattern=LICENSE,
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


@dataclass(frozen=True)
class BackendEntry:
    """A backend's options model (checked with the rest of the recipe, before any work) and
    its `from_recipe(recipe, env) -> DiskBackend`, which makes the backend; `env` is where
    secret references (env:NAME) are resolved."""

    options: type[BaseModel]
    make: BackendFactory


BACKENDS: dict[str, BackendEntry] = {
    "customize": BackendEntry(customize.CustomizeOptions, customize.from_recipe),
    "debian-test": BackendEntry(debian_standin.DebianTestOptions, debian_standin.from_recipe),
    "kickstart": BackendEntry(kickstart_install.KickstartOptions, kickstart_install.from_recipe),
}
# What a misspelt key of the recipe's own sections is compared with.
RECIPE_FIELDS = frozenset({*_RecipeModel.model_fields, *_MetaModel.model_fields,
                           *_RpmModel.model_fields})


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
    """Read, parse and validate a recipe, its backend's options included; every problem is
    reported at once, each at its line, before any work starts."""
    path = resolve_recipe_path(name_or_path)
    raw = read_yaml_file(path, what="recipe", limit=MAX_RECIPE_BYTES,
                         hint="a recipe is a YAML file")
    model = _validate(path, raw)
    meta = ApplianceMeta(**model.appliance.model_dump())
    return Recipe(name=path.stem, path=path, backend=model.backend, meta=meta,
                  options=model.options, source=raw, package=model.rpm.names())


def _validate(path: Path, raw: Any) -> _RecipeModel:
    """The recipe's model; InputError listing its keys given twice or not text, then its
    invalid fields in line order."""
    problems = key_problems(path, raw)
    raw = text_keys_only(raw)
    if not isinstance(raw, dict):
        raise invalid_recipe(path, [*problems, f"{path}:1: expected a mapping of recipe "
                                               "fields (backend, appliance, rpm, options)"])
    model: _RecipeModel | None = None
    found: list[LineProblem] = []
    try:
        model = _RecipeModel.model_validate(raw)
    except ValidationError as exc:
        found += model_problems(path, raw, exc.errors(include_url=False), _recipe_message)
    found += _backend_problems(path, raw)
    problems += in_line_order(found)
    if problems or model is None:
        raise invalid_recipe(path, problems)
    return model


def _recipe_message(error: Mapping[str, Any]) -> str:
    return pydantic_message(error, fields=RECIPE_FIELDS, patterns=RECIPE_PATTERNS)


def _backend_problems(path: Path, raw: Mapping[str, Any]) -> list[LineProblem]:
    """An unknown backend, or the problems of the options for the backend named."""
    backend = raw.get("backend")
    if not isinstance(backend, str):
        return []  # the model says what is wrong with it
    if backend not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        return [located(path, raw, ("backend",),
                        f"unknown backend {backend!r} (known: {known})")]
    if not isinstance(raw.get("options", {}), dict):
        return []  # the model says so
    return options_problems(BACKENDS[backend].options, path, raw)


def create_backend(recipe: Recipe, env: Mapping[str, str] | None = None) -> DiskBackend:
    """The backend the recipe names, built from its options (which it validates); `env`
    resolves the recipe's environment references (none: an empty environment)."""
    return BACKENDS[recipe.backend].make(recipe, env or {})
