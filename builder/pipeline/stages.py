"""The stage table: each stage declares its inputs, the stages it needs and how it builds.

A stage's key hashes what goes into it: its declared inputs (options, tool versions), its own
version, the builder's version and the SHA-256 of every artifact of the stages it needs, never
its own output. A stage whose key is in the store is reused; otherwise it builds into a private
directory that becomes the store entry, with its record written last, only when it succeeded.
So a changed input reruns exactly the stages downstream of it, a stage whose upstream rebuilt
the same bytes is still reused, and a run killed at any moment leaves no half entry behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from builder import __version__
from builder.atomic import write_atomic
from builder.console import Console
from builder.errors import BuilderError, IntegrityError
from builder.model import Artifact
from builder.pipeline.store import StageCache, hash_inputs
from builder.sparse import sha256_sparse

RECORD = "stage.json"
RECORD_FORMAT = 1


@dataclass(frozen=True)
class StageResult:
    """What a stage left in the store: its key, artifacts and recorded facts."""

    stage: str
    key: str
    reused: bool
    seconds: float
    artifacts: Mapping[str, Artifact]
    facts: Mapping[str, Any] = field(default_factory=dict)

    def artifact(self, name: str) -> Artifact:
        try:
            return self.artifacts[name]
        except KeyError:
            raise IntegrityError(f"stage {self.stage} recorded no artifact {name!r}") from None

    def digests(self) -> dict[str, str]:
        return {name: art.sha256 for name, art in sorted(self.artifacts.items())}


@dataclass(frozen=True)
class Built:
    """What a stage's build returns: its files (inside the work directory) by name, the
    SHA-256 of those it already hashed while writing, and facts for the stages after it."""

    files: Mapping[str, Path]
    digests: Mapping[str, str] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageContext:
    """What a stage's build may use: its private work directory (its outputs go there), the
    results of the stages it needs, the console and the environment."""

    work_dir: Path
    upstream: Mapping[str, StageResult]
    console: Console
    env: Mapping[str, str]


@dataclass(frozen=True)
class Stage:
    """One row of the table. `inputs` must be cheap (it runs on every run, reuse or not);
    `version` is bumped when the build's code changes what it makes."""

    name: str
    needs: tuple[str, ...]
    inputs: Callable[[], Mapping[str, Any]]
    build: Callable[[StageContext], Built]
    version: str = "1"
    title: str = ""


Action = Literal["reuse", "run"]


@dataclass(frozen=True)
class PlannedStage:
    """What a run would do with one stage; the key is unknown while an upstream must run."""

    name: str
    needs: tuple[str, ...]
    key: str | None
    action: Action


class StageFailedError(BuilderError):
    """A stage's build failed: the message names the stage, the exit code is the cause's."""

    def __init__(self, stage: str, cause: BuilderError) -> None:
        super().__init__(f"stage {stage} failed: {cause.message}", hint=cause.hint)
        self.stage = stage
        self.cause = cause
        self.exit_code = cause.exit_code


def ordered(stages: Sequence[Stage]) -> list[Stage]:
    """The stages in an order where every stage comes after those it needs (table order kept
    where it already is one); an unknown need or a cycle is a programming error."""
    by_name = {stage.name: stage for stage in stages}
    if len(by_name) != len(stages):
        raise ValueError("two stages have the same name")
    done: dict[str, Stage] = {}
    visiting: set[str] = set()

    def visit(stage: Stage) -> None:
        if stage.name in done:
            return
        if stage.name in visiting:
            raise ValueError(f"stage {stage.name} depends on itself")
        visiting.add(stage.name)
        for need in stage.needs:
            if need not in by_name:
                raise ValueError(f"stage {stage.name} needs an unknown stage {need}")
            visit(by_name[need])
        visiting.discard(stage.name)
        done[stage.name] = stage

    for stage in stages:
        visit(stage)
    return list(done.values())


def stage_key(stage: Stage, inputs: Mapping[str, Any],
              upstream: Mapping[str, StageResult]) -> str:
    return hash_inputs({
        "stage": stage.name, "version": stage.version, "builder": __version__,
        "inputs": inputs,
        "upstream": {name: upstream[name].digests() for name in sorted(stage.needs)},
    })


def run_stages(stages: Sequence[Stage], store: StageCache, console: Console,
               env: Mapping[str, str]) -> dict[str, StageResult]:
    """Run the table in dependency order, reusing every stage whose key is stored."""
    results: dict[str, StageResult] = {}
    for stage in ordered(stages):
        results[stage.name] = run_stage(stage, results, store, console, env)
    return results


def run_stage(stage: Stage, results: Mapping[str, StageResult], store: StageCache,
              console: Console, env: Mapping[str, str]) -> StageResult:
    started = time.monotonic()
    upstream = {name: results[name] for name in stage.needs}
    key = stage_key(stage, stage.inputs(), upstream)
    entry = store.lookup(stage.name, key)
    if entry is not None:
        console.note(f"{stage.name}: reused ({key})")
        return load_result(stage.name, key, entry, reused=True,
                           seconds=time.monotonic() - started)
    console.step(f"{stage.name}: {stage.title or 'building'} ({key})")
    try:
        with store.store(stage.name, key) as work:
            built = stage.build(StageContext(work, upstream, console, env))
            write_record(work, stage.name, key, built)
    except StageFailedError:
        raise
    except BuilderError as exc:
        raise StageFailedError(stage.name, exc) from exc
    return load_result(stage.name, key, store.entry(stage.name, key), reused=False,
                       seconds=time.monotonic() - started)


def write_record(work: Path, stage: str, key: str, built: Built) -> None:
    """The entry's record, written last: artifacts relative to the entry, with digests."""
    files = {}
    for name, path in sorted(built.files.items()):
        relative = path.resolve().relative_to(work.resolve())
        digest = built.digests.get(name) or sha256_sparse(path)
        files[name] = {"path": relative.as_posix(), "size": path.stat().st_size,
                       "sha256": digest}
    record = {"format": RECORD_FORMAT, "stage": stage, "key": key, "files": files,
              "facts": dict(built.facts)}
    write_atomic(work / RECORD, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def load_result(stage: str, key: str, entry: Path, *, reused: bool,
                seconds: float) -> StageResult:
    try:
        record = json.loads((entry / RECORD).read_text(encoding="utf-8"))
        artifacts = {
            name: Artifact(name, entry / item["path"], int(item["size"]), str(item["sha256"]))
            for name, item in record["files"].items()
        }
        facts = dict(record.get("facts", {}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"the {stage} stage's store entry {entry} is damaged: {exc}",
                             hint=f"remove {entry} and run again") from exc
    return StageResult(stage, key, reused, round(seconds, 3), artifacts, facts)


def describe_result(result: StageResult) -> dict[str, Any]:
    """A stage's entry as --json shows it: its artifacts (name, file, size, SHA-256) and the
    facts it recorded for the stages after it (a disk's format, the key that signed)."""
    return {"artifacts": [{"name": name, "file": art.path.name, "size": art.size,
                           "sha256": art.sha256} for name, art in sorted(result.artifacts.items())],
            "facts": dict(result.facts)}


def plan_stages(stages: Sequence[Stage], store: StageCache) -> list[PlannedStage]:
    """Each stage's key and whether a run would reuse or build it, without building anything.
    A stage after one that must run cannot know its key: its inputs' digests do not exist yet."""
    known: dict[str, StageResult] = {}
    plan: list[PlannedStage] = []
    for stage in ordered(stages):
        if not all(need in known for need in stage.needs):
            plan.append(PlannedStage(stage.name, stage.needs, None, "run"))
            continue
        key = stage_key(stage, stage.inputs(), known)
        entry = store.entry(stage.name, key)
        if (entry / RECORD).is_file():
            known[stage.name] = load_result(stage.name, key, entry, reused=True, seconds=0.0)
            plan.append(PlannedStage(stage.name, stage.needs, key, "reuse"))
        else:
            plan.append(PlannedStage(stage.name, stage.needs, key, "run"))
    return plan


def stages_to_run(stages: Sequence[Stage], store: StageCache) -> set[str]:
    """The names of the stages a run would build (the others it would reuse)."""
    return {planned.name for planned in plan_stages(stages, store) if planned.action == "run"}


def results_table(results: Iterable[StageResult]) -> list[tuple[str, str, str, str, str]]:
    """Rows of (stage, reused/ran, duration, artifact, digest): one per artifact."""
    rows = [("STAGE", "RESULT", "TIME", "ARTIFACT", "SHA256")]
    for result in results:
        verdict = "reused" if result.reused else "ran"
        arts: list[Artifact | None] = [*result.artifacts.values()] or [None]
        for index, art in enumerate(arts):
            first = index == 0
            rows.append((result.stage if first else "", verdict if first else "",
                         f"{result.seconds:.1f} s" if first else "",
                         art.path.name if art else "-", art.sha256[:16] if art else "-"))
    return rows
