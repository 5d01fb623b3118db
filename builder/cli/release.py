"""`he-build release`: build, boot-test, gate and publish a release from pipelines/release.yaml,
every stage cached by its inputs; `--plan` shows what would run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from builder.atomic import check_directory_target
from builder.cli.handler import CommandResult, Subcommands, a_path
from builder.console import counted, text_table

if TYPE_CHECKING:
    from builder.console import Console
    from builder.pipeline.release import ReleaseRun
    from builder.pipeline.stages import PlannedStage

DEFAULT_RELEASE_FILE = "release.yaml"


def register(subparsers: Subcommands, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "release", parents=[parent], help="build, boot-test, gate and publish a release",
        description="Build the release a release file declares: disk, OVAs, RPM, smoke seed, "
                    "boot smoke test, gates, SBOM, signed yum repository, provenance, "
                    "SHA256SUMS; then swap the publish directory in at once. Stages whose "
                    "inputs did not change are reused from the stage store "
                    "($HE_BUILDER_CACHE, else ~/.cache/he-builder).")
    parser.add_argument("--file", type=a_path, default=None, metavar="FILE",
                        help="the release file (default: the bundled pipelines/release.yaml)")
    parser.add_argument("--publish", type=a_path, default=None, metavar="DIR",
                        help="the publish directory (default: the release file's `publish`)")
    parser.add_argument("--plan", action="store_true",
                        help="print each stage's cache key and whether it would run; run "
                             "nothing")
    parser.set_defaults(handler=run_release_command)


def default_release_file() -> Path:
    from builder.resources import data_path  # noqa: PLC0415

    return data_path("pipelines", DEFAULT_RELEASE_FILE)


def run_release_command(args: argparse.Namespace, console: Console) -> CommandResult:
    # The release machinery imports libvirt, libguestfs and the signing code: only this
    # command pays for them.
    from builder.pipeline import release as pipeline  # noqa: PLC0415
    from builder.pipeline.stages import StageFailedError  # noqa: PLC0415
    from builder.pipeline.store import usable_cache_root  # noqa: PLC0415
    from builder.release.config import load_release  # noqa: PLC0415

    env = dict(os.environ)
    release = load_release(args.file or default_release_file())
    ctx = pipeline.release_context(release, publish=args.publish,
                                   cache_root=usable_cache_root(env), env=env)
    check_directory_target(ctx.publish, "the publish directory")
    if args.plan:
        plan = pipeline.plan_release(ctx)
        data = {"ok": True, "file": str(release.path), "publish": str(ctx.publish),
                "stages": pipeline.describe_plan(plan)}
        return CommandResult(data=data, text=plan_table(plan))
    try:
        done = pipeline.run_release(ctx, console)
    except StageFailedError as exc:
        raise pipeline.release_failed(exc) from exc
    data = {"ok": True, "file": str(release.path), "publish": str(done.publish),
            "signed_by": done.signed_by, "stages": pipeline.describe_results(done.results),
            "files": [{"name": n, "size": s, "sha256": d} for n, s, d in done.files]}
    return CommandResult(data=data, text=results_text(done))


def plan_table(plan: list[PlannedStage]) -> str:
    rows = [("STAGE", "NEEDS", "ACTION", "KEY")]
    rows += [(p.name, ",".join(p.needs) or "-", p.action,
              p.key or "(after its inputs are built)") for p in plan]
    return text_table(rows)


def results_text(done: ReleaseRun) -> str:
    from builder.pipeline.stages import results_table  # noqa: PLC0415

    reused = sum(1 for r in done.results if r.reused)
    signed = f", signed by key {done.signed_by}" if done.signed_by else ""
    stages, files = counted(len(done.results), "stage"), counted(len(done.files), "file")
    return (text_table(results_table(done.results)) +
            f"\n\n{reused} of {stages} reused; published {done.publish} ({files}){signed}")
