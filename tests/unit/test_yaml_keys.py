"""The YAML reader's keys: one given twice, one that is not text (null, true, 3), and values
shown as YAML writes them (builder.inventory.source)."""

from __future__ import annotations

import math
from pathlib import Path

from builder.inventory.source import (
    LineDict,
    LineList,
    OtherKey,
    dotted,
    key_problems,
    line_of,
    parse_yaml,
    text_keys_only,
    yaml_text,
)

TEXT = """\
a:
  null: 1
  b: [x, {true: 2, c: 3}]
  3: 4
  b: 5
1.5: z
"""


def test_every_key_given_twice_or_not_text_is_told_in_line_order() -> None:
    assert key_problems(Path("f.yaml"), parse_yaml(TEXT)) == [
        "f.yaml:2: a.null: not a field name (field names are text)",
        "f.yaml:3: a.b[1].true: not a field name (field names are text)",
        "f.yaml:4: a.3: not a field name (field names are text)",
        "f.yaml:5: a.b: given twice (first on line 3)",
        "f.yaml:6: 1.5: not a field name (field names are text)",
    ]


def test_the_model_sees_only_text_keys_with_their_lines() -> None:
    tree = parse_yaml(TEXT)
    kept = text_keys_only(tree)
    assert kept == {"a": {"b": ["x", {"c": 3}]}}
    assert isinstance(kept, LineDict) and isinstance(kept["a"]["b"], LineList)
    assert line_of(kept, ("a", "b", 1, "c")) == (3, True)
    assert kept["a"].duplicates == tree["a"].duplicates  # still told once, by key_problems
    assert tree["a"][None] == 1  # the tree read is left as it was


def test_a_key_that_is_not_text_is_no_list_index_in_a_path() -> None:
    assert dotted(("sites", "dc1", OtherKey(1), "x")) == "sites.dc1.1.x"
    assert dotted(("ntp", 1)) == "ntp[1]"
    tree = parse_yaml("a:\n  true: 1\n")
    assert line_of(tree, ("a", OtherKey(True))) == (2, True)


def test_values_are_shown_as_yaml_writes_them() -> None:
    shown = [yaml_text(value) for value in (None, True, False, 3, 1.5, math.inf, -math.inf,
                                             math.nan, "on", [1])]
    assert shown == ["null", "true", "false", "3", "1.5", ".inf", "-.inf", ".nan", "'on'",
                     "[1]"]
