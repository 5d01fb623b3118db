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
    # The options laid over the file's from the command line: their problems name the flag.
    overrides: frozenset[str] = frozenset()

    def problem(self, path: Path_, message: str) -> LineProblem:
        """`FILE:LINE: field: message` for the value at `path` (from the recipe's top)."""
        return located(self.path, self.source, path, message)


def invalid_recipe(path: Path, problems: Sequence[str]) -> InputError:
    return InputError(f"recipe {path} has {counted(len(problems), 'problem')}",
                      problems=list(problems))


def option_flag(key: str) -> str:
    """The command-line flag that lays option `key` over a recipe's (repo_url: --repo-url)."""
    return f"--{key.replace('_', '-')}"


def flag_problem(key: str, message: str) -> LineProblem:
    """A problem with option `key` given on the command line: named by its flag (no line)."""
    return 0, f"{option_flag(key)}: {message}"


def option_problem(recipe: Recipe, path: Path_, message: str) -> LineProblem:
    """A problem with the option at `path` (under `options:`): at its line in the recipe, or
    named by its flag when the command line gave it."""
    key = str(path[0])
    if key in recipe.overrides:
        return flag_problem(key, message)
    return recipe.problem(("options", *path), message)


def refused_option(recipe: Recipe, path: Path_, message: str) -> InputError:
    """The problem of one option (see option_problem), told as refused_options does."""
    return refused_options(recipe.path, [option_problem(recipe, path, message)])


def refused_options(path: Path, problems: Sequence[LineProblem]) -> InputError:
    """The problems of a recipe's options, some at their line in the recipe at `path`, some
    named by the flag that gave the value (line 0): the header counts them under the recipe
    only when the recipe holds them all, and a flag's lone problem is the error itself."""
    texts = in_line_order(problems)
    from_flags = sum(1 for line, _ in problems if line == 0)
    if from_flags == 0:
        return invalid_recipe(path, texts)
    if from_flags == len(texts) == 1:
        return InputError(texts[0])
    where = ("the command line has" if from_flags == len(texts)
             else f"recipe {path} and the command line have")
    return InputError(f"{where} {counted(len(texts), 'problem')}", problems=texts)


def options_problems(model: type[BaseModel], path: Path, source: Any,
                     options: Mapping[str, Any] | None = None,
                     overrides: frozenset[str] = frozenset()) -> list[LineProblem]:
    """The problems of a recipe's options (`options`, else the `options:` mapping of `source`,
    the recipe read from `path`) against a backend's options model: each at its line, or at
    its flag for an option given on the command line (`overrides`)."""
    if options is None:
        options = source.get("options", {}) if isinstance(source, Mapping) else None
    try:
        model.model_validate(options)
    except ValidationError as exc:
        message = partial(pydantic_message, fields=model.model_fields)
        errors = exc.errors(include_url=False)
        flagged = [error for error in errors if error["loc"] and error["loc"][0] in overrides]
        from_file = [error for error in errors if error not in flagged]
        return [*(flag_problem(str(error["loc"][0]), message(error)) for error in flagged),
                *model_problems(path, source, from_file, message, prefix=("options",))]
    return []


def validate_options(model: type[ModelT], recipe: Recipe) -> ModelT:
    """Validate a backend's `options` mapping against its pydantic model."""
    try:
        return model.model_validate(dict(recipe.options))
    except ValidationError as exc:
        problems = options_problems(model, recipe.path, recipe.source, recipe.options,
                                    recipe.overrides)
        raise refused_options(recipe.path, problems) from exc
