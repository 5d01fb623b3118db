"""`Count`, the integer field of the pydantic models read from YAML (recipe, recipe options,
release file): pydantic, like Python, takes true for 1, so `vcpus: yes` would be one vCPU."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from builder.inventory.problems import type_message


def refuse_flag(value: Any) -> Any:
    """`value` unchanged, unless it is true or false (yes, on...): no number anyone meant."""
    if isinstance(value, bool):
        raise ValueError(type_message("int_type", value))
    return value


Count = Annotated[int, BeforeValidator(refuse_flag)]
