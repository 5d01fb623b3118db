"""The stage table: keys from inputs and upstream digests, reuse, exact reruns, plans, failures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from builder.console import Console, text_table
from builder.errors import InputError, IntegrityError
from builder.pipeline.stages import (
    RECORD,
    Built,
    Stage,
    StageContext,
    StageFailedError,
    ordered,
    plan_stages,
    results_table,
    run_stages,
)
from builder.pipeline.store import StageCache


class Table:
    """Three stages a -> b -> c whose inputs and outputs a test can change between runs."""

    def __init__(self) -> None:
        self.options: dict[str, Any] = {"a": 1, "b": 1, "c": 1}
        self.outputs: dict[str, bytes] = {"a": b"A", "b": b"B", "c": b"C"}
        self.builds: list[str] = []

    def stage(self, name: str, needs: tuple[str, ...]) -> Stage:
        def inputs() -> Mapping[str, Any]:
            return {"option": self.options[name]}

        def build(ctx: StageContext) -> Built:
            self.builds.append(name)
            seen = b"".join(Path(ctx.upstream[n].artifact("out").path).read_bytes()
                            for n in needs)
            out = ctx.work_dir / f"{name}.bin"
            out.write_bytes(self.outputs[name] + seen)
            return Built(files={"out": out}, facts={"built_from": sorted(ctx.upstream)})

        return Stage(name=name, needs=needs, inputs=inputs, build=build)

    def stages(self) -> list[Stage]:
        return [self.stage("a", ()), self.stage("b", ("a",)), self.stage("c", ("b",))]


def run(table: Table, store: StageCache) -> dict[str, Any]:
    return run_stages(table.stages(), store, Console(), {})


def test_a_first_run_builds_every_stage_and_a_second_reuses_them(tmp_path: Path) -> None:
    table, store = Table(), StageCache(tmp_path)
    first = run(table, store)
    assert table.builds == ["a", "b", "c"]
    assert [r.reused for r in first.values()] == [False, False, False]
    assert Path(first["c"].artifact("out").path).read_bytes() == b"CBA"
    assert first["b"].facts == {"built_from": ["a"]}
    second = run(table, store)
    assert table.builds == ["a", "b", "c"]
    assert all(r.reused for r in second.values())
    assert {n: r.key for n, r in second.items()} == {n: r.key for n, r in first.items()}


def test_a_changed_input_reruns_exactly_the_stages_downstream(tmp_path: Path) -> None:
    table, store = Table(), StageCache(tmp_path)
    run(table, store)
    table.builds.clear()
    table.options["b"] = 2
    table.outputs["b"] = b"B2"
    results = run(table, store)
    assert table.builds == ["b", "c"]
    assert [r.reused for r in results.values()] == [True, False, False]


def test_an_upstream_that_rebuilds_the_same_bytes_leaves_downstream_reused(
    tmp_path: Path,
) -> None:
    table, store = Table(), StageCache(tmp_path)
    run(table, store)
    table.builds.clear()
    table.options["a"] = 2  # a new key for a, but the same output bytes
    results = run(table, store)
    assert table.builds == ["a"]
    assert results["b"].reused and results["c"].reused


def test_the_plan_shows_keys_and_actions_without_building(tmp_path: Path) -> None:
    table, store = Table(), StageCache(tmp_path)
    plan = plan_stages(table.stages(), store)
    assert [(p.name, p.action) for p in plan] == [("a", "run"), ("b", "run"), ("c", "run")]
    assert plan[0].key is not None and plan[1].key is None and plan[2].key is None
    assert table.builds == []
    results = run(table, store)
    table.options["c"] = 5
    plan = plan_stages(table.stages(), store)
    assert [(p.name, p.action) for p in plan] == [("a", "reuse"), ("b", "reuse"), ("c", "run")]
    assert [p.key for p in plan[:2]] == [results["a"].key, results["b"].key]
    assert plan[2].key not in (None, results["c"].key)
    assert table.builds == ["a", "b", "c"]


def test_a_failing_stage_is_named_keeps_its_exit_code_and_leaves_no_entry(
    tmp_path: Path,
) -> None:
    table, store = Table(), StageCache(tmp_path)
    stages = table.stages()

    def broken(ctx: StageContext) -> Built:
        (ctx.work_dir / "half.bin").write_bytes(b"half")
        raise InputError("the recipe is wrong")

    stages[1] = Stage(name="b", needs=("a",), inputs=stages[1].inputs, build=broken)
    with pytest.raises(StageFailedError) as caught:
        run_stages(stages, store, Console(), {})
    assert caught.value.stage == "b"
    assert caught.value.exit_code == InputError.exit_code
    assert caught.value.message == "stage b failed: the recipe is wrong"
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    assert list((tmp_path / "a").glob(f"*/{RECORD}"))


def test_a_damaged_record_is_an_integrity_error_naming_the_entry(tmp_path: Path) -> None:
    table, store = Table(), StageCache(tmp_path)
    results = run(table, store)
    record = store.entry("b", results["b"].key) / RECORD
    record.write_text("{not json")
    with pytest.raises(IntegrityError, match="the b stage's store entry"):
        run(table, store)


def test_order_follows_needs_and_refuses_cycles_and_unknown_needs() -> None:
    table = Table()
    a, b, c = table.stages()
    assert [s.name for s in ordered([c, b, a])] == ["a", "b", "c"]
    loop: Callable[[StageContext], Built] = a.build
    with pytest.raises(ValueError, match="depends on itself"):
        ordered([Stage("x", ("y",), a.inputs, loop), Stage("y", ("x",), a.inputs, loop)])
    with pytest.raises(ValueError, match="unknown stage"):
        ordered([Stage("x", ("nope",), a.inputs, loop)])


def test_the_table_has_a_row_per_artifact(tmp_path: Path) -> None:
    results = run(Table(), StageCache(tmp_path))
    text = text_table(results_table(results.values()))
    lines = text.splitlines()
    assert lines[0].split() == ["STAGE", "RESULT", "TIME", "ARTIFACT", "SHA256"]
    assert [line.split()[0] for line in lines[1:]] == ["a", "b", "c"]
    assert all(" ran " in line for line in lines[1:])
