"""A fixed-seed sample of random recipes: each bundled recipe with one to three values replaced
by a hostile one (wrong types, huge or non-finite numbers, control characters, braces, nested
values) or a key added or removed. Every outcome is a recipe or an InputError whose lines are
one line each, in words: never another exception, never pydantic's own phrasing."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from builder.disk.registry import load_recipe
from builder.errors import InputError
from builder.resources import bundled_recipes

CASES = 300
SEED = 11
HOSTILE: list[Any] = [
    None, 0, -1, 1 << 70, 3.5, float("nan"), float("inf"), True, "", " ", "x", "a\nb", "\u202e",
    "{x}", "{0}", "%s", [], [1], ["a", None], {}, {"a": 1}, {"op": "write"}, "../../etc",
    "ftp://x", "é" * 300,
]
# What pydantic says in its own words; a recipe problem is said in ours.
PYDANTIC_WORDS = ("Input should", "Value error", "Field required", "Extra inputs",
                  "String should", "_Model")


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, value in items:
        yield from paths(value, (*prefix, key))


def mutated(tree: Any, rng: random.Random) -> Any:
    tree = copy.deepcopy(tree)
    for _ in range(rng.randint(1, 3)):
        where = rng.choice(list(paths(tree)))
        parent = tree
        for part in where[:-1]:
            parent = parent[part]
        roll = rng.random()
        if roll < 0.6:
            parent[where[-1]] = copy.deepcopy(rng.choice(HOSTILE))
        elif isinstance(parent, dict) and roll < 0.8:
            parent[f"{where[-1]}x"] = copy.deepcopy(rng.choice(HOSTILE))
        elif isinstance(parent, dict):
            del parent[where[-1]]
    return tree


def test_random_recipes_load_or_say_what_is_wrong_in_words(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    bases = [yaml.safe_load(path.read_text()) for _, path in sorted(bundled_recipes().items())]
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(CASES):
        path = tmp_path / f"case-{case}.yaml"
        path.write_text(yaml.safe_dump(mutated(rng.choice(bases), rng), allow_unicode=True))
        try:
            load_recipe(str(path))
            outcomes["loaded"] += 1
        except InputError as exc:
            outcomes["refused"] += 1
            for line in (exc.message, *exc.problems):
                assert "\n" not in line, (case, line)
                assert not any(words in line for words in PYDANTIC_WORDS), (case, line)
    print(f"random recipes: {outcomes}")
    assert outcomes["refused"] > CASES // 2 and outcomes["loaded"] > 0
