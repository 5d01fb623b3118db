"""The JSON Schema of the inventory file (defaults + sites), from the Site record's fields."""

from __future__ import annotations

from typing import Any

from builder.inventory.fields import json_schema
from builder.inventory.models import SITE_NAME_PATTERN, Site

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def render_schema() -> dict[str, Any]:
    """For editors: a site entry is a Site without `name` (its key) and with only `fqdn` required,
    since the defaults may supply the rest; the defaults are a Site without name/fqdn/instance_id.
    """
    site = json_schema(Site)
    defs: dict[str, Any] = site.pop("$defs", {})
    fields = {key: value for key, value in site["properties"].items() if key != "name"}
    entry = {**site, "title": "Site", "properties": fields, "required": ["fqdn"],
             "description": "One site's engine VM; fields it leaves out come from defaults."}
    defaults = {**site, "title": "Defaults", "description": "Merged under every site.",
                "properties": {
                    key: value for key, value in fields.items()
                    if key not in ("fqdn", "instance_id")
                }}
    defaults.pop("required", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "he-build inventory",
        "type": "object",
        "additionalProperties": False,
        "required": ["sites"],
        "properties": {
            "defaults": {"$ref": "#/$defs/Defaults"},
            "sites": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": SITE_NAME_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/Site"},
            },
        },
        "$defs": {**defs, "Defaults": defaults, "Site": entry},
    }
