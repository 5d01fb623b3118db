"""The validated recipe handed to a backend, and the helper backends validate options with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from builder.errors import InputError
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
    package: PackageNames = field(default_factory=PackageNames)


def problem_line(err: Mapping[str, Any]) -> str:
    """One pydantic error as `field.path: message`."""
    where = ".".join(str(part) for part in err["loc"]) or "(top level)"
    return f"{where}: {err['msg']}"


def validate_options(model: type[ModelT], recipe: Recipe) -> ModelT:
    """Validate a backend's `options` mapping against its pydantic model."""
    try:
        return model.model_validate(dict(recipe.options))
    except ValidationError as exc:
        problems = [f"options.{problem_line(dict(err))}" for err in exc.errors()]
        raise InputError(f"recipe {recipe.path} is invalid", problems=problems) from exc
