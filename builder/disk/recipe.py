"""The validated recipe handed to a backend, and the helper backends validate options with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from builder.console import counted
from builder.errors import InputError
from builder.inventory.problems import (
    LineProblem,
    in_line_order,
    located,
    model_problems,
    pydantic_message,
)
from builder.inventory.source import Path_
from builder.model import ApplianceMeta, PackageNames

ModelT = TypeVar("ModelT", bound=BaseModel)

@dataclass(frozen=True)
class Recipe:
    """A validated recipe: which backend, what it is called, the backend's own options, and how
    its RPMs are named."""

    name: str
    path: Path
    backend: str
    meta: ApplianceMeta
    options: Mapping[str, Any]
    # The file as read (builder.inventory.source): the line of each problem comes from it.
    source: Any = field(compare=False, repr=False)
    package: PackageNames = field(default_factory=PackageNames)

    def problem(self, path: Path_, message: str) -> LineProblem:
        """`FILE:LINE: field: message` for the value at `path` (from the recipe's top)."""
        return located(self.path, self.source, path, message)


def invalid_recipe(path: Path, problems: Sequence[str]) -> InputError:
    return InputError(f"recipe {path} has {counted(len(problems), 'problem')}",
                      problems=list(problems))


def options_problems(model: type[BaseModel], path: Path, source: Any) -> list[LineProblem]:
    """The problems of the `options:` mapping of the recipe `source` (read from `path`)
    against a backend's options model, each at its line."""
    options = source.get("options", {}) if isinstance(source, Mapping) else None
    try:
        model.model_validate(options)
    except ValidationError as exc:
        return model_problems(path, source, exc.errors(include_url=False),
                              partial(pydantic_message, fields=model.model_fields),
                              prefix=("options",))
    return []


def validate_options(model: type[ModelT], recipe: Recipe) -> ModelT:
    """Validate a backend's `options` mapping against its pydantic model."""
    try:
        return model.model_validate(dict(recipe.options))
    except ValidationError as exc:
        problems = options_problems(model, recipe.path, recipe.source)
        raise invalid_recipe(recipe.path, in_line_order(problems)) from exc
