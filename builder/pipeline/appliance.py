"""The appliance pipeline: recipe -> disk -> OVA or qcow2 -> RPM, each stage cached by its
inputs.

Formats (`he-build appliance --format`):
- `ovirt`: the gzip OVA in oVirt's layout and the RPM hosted-engine-setup and the Ansible role
  find through /etc/ovirt-hosted-engine/10-appliance.conf;
- `qcow2`: the RPM oVirt 4.5.7 ships (a plain qcow2, 10-appliance-<distro>.conf);
- `ovf`: a standard OVF 1.1 OVA for virt-v2v and other importers, and no RPM (hosted-engine
  cannot open that layout, so an RPM announcing it to hosted-engine would be a trap).
"""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.console import Console
from builder.disk.backend import BuildContext
from builder.disk.registry import Recipe, create_backend
from builder.gpg import AgentKey, SigningKey, check_key_signs, key_inputs
from builder.model import ApplianceFormat, BuiltDisk
from builder.ova import pack_ova
from builder.ova.digests import FileDigests, file_digests
from builder.ova.pack import Compression, OvaLayout, check_source, convert_disk
from builder.pipeline.stages import (
    Built,
    Stage,
    StageContext,
    StageResult,
    run_stages,
    stages_to_run,
)
from builder.pipeline.store import StageCache, link_or_copy
from builder.repro import build_time, source_date_epoch
from builder.rpm import PayloadChoice, RpmImage, build_rpm
from builder.rpm.metadata import ImageKind, rpm_layout
from builder.rpm.spec import templates_digest
from builder.run import tool_version
from builder.virt.qemu_img import qemu_img_version

# Bumped when a stage's output changes in a way its other inputs cannot see.
DISK_FORMAT = "2"  # the stage table's entry layout
OVA_FORMAT = "4"  # gzip oVirt layout, manifest last, BiosType, XSD-valid standard OVF,
# the disk's populated size from its length (reproducible)
QCOW2_FORMAT = "2"
RPM_FORMAT = "5"  # discovery file, README, metadata v2, provides, stored payload, signer fact
# The Ansible role boots appliances of this version and later under UEFI (he_vm_boot_flags).
ROLE_UEFI_FROM = (4, 5, 1)


@dataclass(frozen=True)
class Published:
    """One output of the pipeline as published into --out, described the same way for every
    stage."""

    stage: str
    path: Path
    size: int
    sha256: str
    reused: bool
    # The RPM's: the fingerprint of the key that signed it, None when it is not signed.
    signed_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        described = {"stage": self.stage, "path": str(self.path), "size": self.size,
                     "sha256": self.sha256, "cache": "hit" if self.reused else "built"}
        return described | ({"signed_by": self.signed_by} if self.stage == "rpm" else {})


@dataclass(frozen=True)
class BuildOptions:
    """What `he-build appliance` lets the user choose beyond the recipe."""

    compression: Compression = "zlib"
    payload: PayloadChoice = "speed"
    format: ApplianceFormat = "ovirt"
    sign_key: SigningKey | AgentKey | None = None


@dataclass(frozen=True)
class ApplianceBuild:
    """The published artifacts, in pipeline order (disk, then ova or qcow2, then rpm)."""

    artifacts: tuple[Published, ...]

    def get(self, stage: str) -> Published:
        for artifact in self.artifacts:
            if artifact.stage == stage:
                return artifact
        raise LookupError(f"this build made no {stage}")

    @property
    def disk(self) -> Published:
        return self.get("disk")

    @property
    def ova(self) -> Published:
        return self.get("ova")

    @property
    def rpm(self) -> Published:
        return self.get("rpm")


def disk_stage(recipe: Recipe, cache_root: Path, env: Mapping[str, str]) -> Stage:
    """The recipe's disk, built by its backend (whose key covers every input it reads)."""
    backend = create_backend(recipe, env)

    def build(ctx: StageContext) -> Built:
        work = ctx.work_dir / "work"
        work.mkdir()
        built = backend.build_disk(BuildContext(work, cache_root, ctx.console, ctx.env))
        final = ctx.work_dir / f"disk.{built.format}"
        shutil.move(built.path, final)
        shutil.rmtree(work, ignore_errors=True)
        return Built(files={"disk": final}, facts={"format": built.format})

    return Stage("disk", (), lambda: {"backend": recipe.backend, "key": backend.cache_key()},
                 build, version=DISK_FORMAT, title=f"building the disk ({recipe.backend})")


def build_disk_cached(recipe: Recipe, cache_root: Path, console: Console,
                      env: Mapping[str, str]) -> tuple[BuiltDisk, bool]:
    """Only the disk stage (for tests and benchmarks that boot or adapt the disk itself): the
    disk in the store and whether it was reused."""
    result = run_stages([disk_stage(recipe, cache_root, env)],
                        StageCache(cache_root, notify=console.note), console, env)["disk"]
    disk = BuiltDisk(result.artifact("disk").path, result.facts["format"], recipe.meta,
                     result.key)
    return disk, result.reused


def upstream_disk(ctx: StageContext, recipe: Recipe) -> BuiltDisk:
    result = ctx.upstream["disk"]
    return BuiltDisk(result.artifact("disk").path, result.facts["format"], recipe.meta,
                     result.key)


def digests_built(name: str, path: Path, digests: FileDigests) -> Built:
    """A stage's one file, with the SHA-256 and SHA-1 its writer computed on the way."""
    return Built(files={name: path}, digests={name: digests.sha256},
                 facts={"sha1": digests.sha1})


def ova_stage(recipe: Recipe, layout: OvaLayout, options: BuildOptions,
              env: Mapping[str, str]) -> Stage:
    name = f"{recipe.meta.name}-{recipe.meta.version}-{recipe.meta.release}.ova"

    def inputs() -> dict[str, Any]:
        return {"meta": asdict(recipe.meta), "compression": options.compression,
                "layout": layout, "epoch": source_date_epoch(env),
                "qemu_img": qemu_img_version(),
                # The gzip stream's deflated parts are zlib's bytes.
                "zlib": zlib.ZLIB_RUNTIME_VERSION if layout == "ovirt" else None}

    def build(ctx: StageContext) -> Built:
        packed = pack_ova(upstream_disk(ctx, recipe), ctx.work_dir / name, layout=layout,
                          compression=options.compression, console=ctx.console,
                          mtime=build_time(ctx.env), work_dir=ctx.work_dir)
        return digests_built("ova", packed.path, packed.digests)

    archive = "gzip" if layout == "ovirt" else "plain tar"
    return Stage("ova", ("disk",), inputs, build, version=OVA_FORMAT,
                 title=f"packing the OVA ({layout} layout, {archive}, "
                       f"{options.compression} qcow2)")


def qcow2_stage(recipe: Recipe, options: BuildOptions) -> Stage:
    """The disk as the qcow2 the qcow2 RPM installs (named as oVirt names it)."""
    name = rpm_layout("qcow2", recipe.meta, recipe.package).image_file

    def build(ctx: StageContext) -> Built:
        disk = upstream_disk(ctx, recipe)
        check_source(disk)
        convert_disk(disk, ctx.work_dir / name, options.compression)
        return digests_built("qcow2", ctx.work_dir / name, file_digests(ctx.work_dir / name))

    return Stage("qcow2", ("disk",),
                 lambda: {"compression": options.compression, "name": name,
                          "qemu_img": qemu_img_version()},
                 build, version=QCOW2_FORMAT,
                 title=f"converting the disk to qcow2 ({options.compression} clusters)")


def rpm_stage(recipe: Recipe, image_stage: str, options: BuildOptions,
              env: Mapping[str, str]) -> Stage:
    kind: ImageKind = "qcow2" if image_stage == "qcow2" else "ova"
    compressed = kind == "ova" or options.compression != "none"

    def inputs() -> dict[str, Any]:
        return {"kind": kind, "meta": asdict(recipe.meta), "package": asdict(recipe.package),
                "payload": options.payload, "compressed": compressed,
                "sign_key": key_inputs(options.sign_key) if options.sign_key else None,
                "epoch": source_date_epoch(env),
                "rpmbuild": tool_version("rpmbuild", "--version"),
                "templates": templates_digest()}

    def build(ctx: StageContext) -> Built:
        upstream = ctx.upstream[image_stage]
        file = upstream.artifact(image_stage)
        image = RpmImage(file.path, kind, compressed=compressed,
                         digests=FileDigests(file.size, upstream.facts["sha1"], file.sha256))
        built = build_rpm(image, recipe.meta, recipe.package, ctx.work_dir,
                          payload=options.payload, sign_key=options.sign_key,
                          console=ctx.console, env=ctx.env)
        return Built(files={"rpm": built.path}, facts={"signed_by": built.signed_by})

    return Stage("rpm", (image_stage,), inputs, build, version=RPM_FORMAT,
                 title=f"wrapping the {kind} in an RPM")


def appliance_stages(recipe: Recipe, options: BuildOptions, cache_root: Path,
                     env: Mapping[str, str]) -> list[Stage]:
    """The stage table of `he-build appliance --format`: disk, then the OVA (oVirt or
    standard layout) or the qcow2, then the RPM (none for a standard OVA)."""
    stages = [disk_stage(recipe, cache_root, env)]
    if options.format == "qcow2":
        stages.append(qcow2_stage(recipe, options))
    else:
        layout: OvaLayout = "ovirt" if options.format == "ovirt" else "ovf"
        stages.append(ova_stage(recipe, layout, options, env))
    if options.format != "ovf":
        stages.append(rpm_stage(recipe, stages[-1].name, options, env))
    return stages


def build_appliance(
    recipe: Recipe, *, out_dir: Path, options: BuildOptions, cache_root: Path, console: Console,
    env: Mapping[str, str],
) -> ApplianceBuild:
    """Run the appliance's stages, reusing those whose inputs did not change, and publish
    their files into `out_dir`."""
    stages = appliance_stages(recipe, options, cache_root, env)
    if options.format != "ovf":
        note_role_firmware(recipe, console)
    store = StageCache(cache_root, notify=console.note)
    if options.sign_key is not None and "rpm" in stages_to_run(stages, store):
        # Before any stage: a key that cannot sign is one line now, not after the disk build.
        check_key_signs(options.sign_key, env)
    results = run_stages(stages, store, console, env)
    return ApplianceBuild(tuple(publish_result(results[stage.name], recipe, out_dir, console)
                                for stage in stages))


def publish_result(result: StageResult, recipe: Recipe, out_dir: Path,
                   console: Console) -> Published:
    """The stage's file in `out_dir`. The disk is copied (sparse): people boot it, and a hard
    link would let that write into the store. The other outputs are only read: hard links."""
    art = result.artifact(result.stage)
    is_disk = result.stage == "disk"
    final = out_dir / (f"{recipe.meta.name}{art.path.suffix}" if is_disk else art.path.name)
    link_or_copy(art.path, final, link=not is_disk)
    console.note(f"{result.stage}: {final}")
    return Published(result.stage, final, art.size, art.sha256, result.reused,
                     signed_by=result.facts.get("signed_by"))


def note_role_firmware(recipe: Recipe, console: Console) -> None:
    """The Ansible role picks the firmware from the package version, not from our metadata."""
    numbers = tuple(int(n) for n in re.findall(r"\d+", recipe.meta.version)[:3])
    if recipe.meta.firmware == "bios" and numbers >= ROLE_UEFI_FROM:
        console.note(f"note: the Ansible role boots appliance versions >= 4.5.1 under UEFI; "
                     f"this one ({recipe.meta.version}) says firmware: bios")


def describe(build: ApplianceBuild) -> dict[str, Any]:
    return {"ok": True, "artifacts": [a.as_dict() for a in build.artifacts]}
