"""The command_json filter on what a command's standard output can hold (no Ansible run: the
fleet deploy tests run it inside the role)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import pytest

from tests.fleet.ansible_env import COLLECTION_SRC


def command_json() -> Callable[[Any], dict[str, Any]]:
    path = COLLECTION_SRC / "plugins" / "filter" / "command_json.py"
    spec = importlib.util.spec_from_file_location("command_json_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: Callable[[Any], dict[str, Any]] = module.FilterModule().filters()["command_json"]
    return found


@pytest.mark.parametrize(("stdout", "expected"), [
    ('{"exit_status": 0, "url": "https://e/"}\n', {"exit_status": 0, "url": "https://e/"}),
    ('  \n{"error": "no such domain"}', {"error": "no such domain"}),
    ("", {}),
    (None, {}),
    ("Traceback (most recent call last):", {}),
    ('{"exit_status": 0, "url": "https://e', {}),  # killed while printing
    ("[1, 2]", {}),
    ('"text"', {}),
])
def test_command_json_is_the_printed_object_or_empty(stdout: str | None,
                                                     expected: dict[str, Any]) -> None:
    assert command_json()(stdout) == expected
