# Copyright: he-builder contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible filter plugin: the JSON object a he-builder command printed with --json, or {}."""

from __future__ import annotations

import json


def command_json(stdout):
    """The object `he-launch --json` (or `he-build ... --json`) printed, or {} when its
    standard output holds none: the command failed before printing it, or was killed."""
    text = (stdout or "").strip()
    if not text.startswith("{"):
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


class FilterModule:
    """The collection's filters."""

    def filters(self):
        return {"command_json": command_json}
