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

import json
import re
import shutil
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.atomic import write_atomic
from builder.console import Console
from builder.disk.backend import BuildContext
from builder.disk.registry import Recipe, create_backend
from builder.model import ApplianceFormat, BuiltDisk
from builder.ova import pack_ova
from builder.ova.digests import FileDigests, file_digests, known_digests, store_digests
from builder.ova.pack import Compression, OvaLayout, check_source, convert_disk
from builder.pipeline.store import StageCache, hash_inputs, link_or_copy, tool_version
from builder.repro import build_time, sha256_file, source_date_epoch
from builder.rpm import PayloadChoice, RpmImage, build_rpm
from builder.rpm.metadata import rpm_layout
from builder.rpm.rpmbuild import payload_for
from builder.rpm.spec import templates_digest
from builder.sparse import sha256_sparse

DISK_META = "disk.json"
# Bumped when a stage's output changes in a way its other inputs cannot see.
OVA_FORMAT = "2"  # gzip oVirt layout, manifest last, BiosType, XSD-valid standard OVF
QCOW2_FORMAT = "1"
RPM_FORMAT = "3"  # discovery file, README, metadata v2, provides, stored payload
# The Ansible role boots appliances of this version and later under UEFI (he_vm_boot_flags).
ROLE_UEFI_FROM = (4, 5, 1)


@dataclass(frozen=True)
class Artifact:
    """One output of the pipeline, described the same way for every stage."""

    stage: str
    path: Path
    size: int
    sha256: str
    cache_hit: bool

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "path": str(self.path), "size": self.size,
                "sha256": self.sha256, "cache": "hit" if self.cache_hit else "built"}


@dataclass(frozen=True)
class BuildOptions:
    """What `he-build appliance` lets the user choose beyond the recipe."""

    compression: Compression = "zlib"
    payload: PayloadChoice = "speed"
    format: ApplianceFormat = "ovirt"
    sign_key: Path | None = None


@dataclass(frozen=True)
class ApplianceBuild:
    """The published artifacts, in pipeline order (disk, then ova or qcow2, then rpm)."""

    artifacts: tuple[Artifact, ...]

    def get(self, stage: str) -> Artifact:
        for artifact in self.artifacts:
            if artifact.stage == stage:
                return artifact
        raise LookupError(f"this build made no {stage}")

    @property
    def disk(self) -> Artifact:
        return self.get("disk")

    @property
    def ova(self) -> Artifact:
        return self.get("ova")

    @property
    def rpm(self) -> Artifact:
        return self.get("rpm")


@dataclass(frozen=True)
class StageOutput:
    """A cached stage's file, the key of its entry, and whether it was there already."""

    path: Path
    key: str
    hit: bool


def build_disk_cached(
    recipe: Recipe, cache_root: Path, console: Console, env: Mapping[str, str]
) -> tuple[BuiltDisk, bool]:
    """The recipe's disk from the stage cache, or built by its backend and stored there."""
    backend = create_backend(recipe, env)
    cache = StageCache(cache_root, notify=console.note)
    key = backend.cache_key()
    hit = cache.lookup("disk", key)
    if hit is not None:
        console.note(f"disk: cache hit ({key})")
        return _load_disk(hit, recipe, key), True
    console.step(f"building the disk with the {recipe.backend} backend")
    with cache.store("disk", key) as entry:
        ctx = BuildContext(entry / "work", cache_root, console, env)
        ctx.work_dir.mkdir()
        built = backend.build_disk(ctx)
        final_name = f"disk.{built.format}"
        shutil.move(built.path, entry / final_name)
        shutil.rmtree(ctx.work_dir, ignore_errors=True)
        (entry / DISK_META).write_text(json.dumps({"file": final_name, "format": built.format}))
    return _load_disk(cache.entry("disk", key), recipe, key), False


def _load_disk(entry: Path, recipe: Recipe, key: str) -> BuiltDisk:
    meta = json.loads((entry / DISK_META).read_text())
    return BuiltDisk(entry / meta["file"], meta["format"], recipe.meta, key)


def ova_key(disk: BuiltDisk, compression: Compression, layout: OvaLayout,
            env: Mapping[str, str]) -> str:
    return hash_inputs({
        "disk": disk.cache_key, "meta": asdict(disk.meta), "compression": compression,
        "layout": layout, "epoch": source_date_epoch(env),
        "qemu_img": tool_version("qemu-img", "--version"),
        # The gzip stream's deflated parts are zlib's bytes.
        "zlib": zlib.ZLIB_RUNTIME_VERSION if layout == "ovirt" else None,
        "ova_format": OVA_FORMAT,
    })


def build_ova_cached(
    disk: BuiltDisk, layout: OvaLayout, *, options: BuildOptions, cache_root: Path,
    console: Console, env: Mapping[str, str],
) -> StageOutput:
    cache = StageCache(cache_root, notify=console.note)
    key = ova_key(disk, options.compression, layout, env)
    name = f"{disk.meta.name}-{disk.meta.version}-{disk.meta.release}.ova"
    hit = cache.lookup("ova", key)
    if hit is not None:
        console.note(f"ova: cache hit ({key})")
        return StageOutput(hit / name, key, True)
    archive = "gzip" if layout == "ovirt" else "plain tar"
    console.step(f"packing the OVA ({layout} layout, {archive}, {options.compression} qcow2)")
    with cache.store("ova", key) as entry:
        pack_ova(disk, entry / name, layout=layout, compression=options.compression,
                 console=console, mtime=build_time(env), work_dir=entry)
    return StageOutput(cache.entry("ova", key) / name, key, False)


def build_qcow2_cached(
    disk: BuiltDisk, recipe: Recipe, options: BuildOptions, cache_root: Path, console: Console,
) -> StageOutput:
    """The disk as the qcow2 the qcow2 RPM installs (named as oVirt names it)."""
    cache = StageCache(cache_root, notify=console.note)
    name = rpm_layout("qcow2", recipe.meta, recipe.package).image_file
    key = hash_inputs({
        "disk": disk.cache_key, "compression": options.compression, "name": name,
        "qemu_img": tool_version("qemu-img", "--version"), "qcow2_format": QCOW2_FORMAT,
    })
    hit = cache.lookup("qcow2", key)
    if hit is not None:
        console.note(f"qcow2: cache hit ({key})")
        return StageOutput(hit / name, key, True)
    console.step(f"converting the disk to qcow2 ({options.compression} clusters)")
    check_source(disk)
    with cache.store("qcow2", key) as entry:
        convert_disk(disk, entry / name, options.compression)
        store_digests(entry / name, file_digests(entry / name))
    return StageOutput(cache.entry("qcow2", key) / name, key, False)


def build_rpm_cached(
    *, recipe: Recipe, image: RpmImage, image_key: str, options: BuildOptions,
    cache_root: Path, console: Console, env: Mapping[str, str],
) -> StageOutput:
    cache = StageCache(cache_root, notify=console.note)
    payload = payload_for(image, options.payload)
    key = hash_inputs({
        "image": image_key, "kind": image.kind, "meta": asdict(recipe.meta),
        "package": asdict(recipe.package), "payload": payload,
        "sign_key": sha256_file(options.sign_key) if options.sign_key else None,
        "epoch": source_date_epoch(env), "rpmbuild": tool_version("rpmbuild", "--version"),
        "templates": templates_digest(), "rpm_format": RPM_FORMAT,
    })
    hit = cache.lookup("rpm", key)
    if hit is not None:
        console.note(f"rpm: cache hit ({key})")
        return StageOutput(next(hit.glob("*.rpm")), key, True)
    console.step(f"wrapping the {image.kind} in an RPM")
    with cache.store("rpm", key) as entry:
        built = build_rpm(image, recipe.meta, recipe.package, entry, payload=options.payload,
                          sign_key=options.sign_key, console=console, env=env)
    return StageOutput(cache.entry("rpm", key) / built.name, key, False)


def build_appliance(
    recipe: Recipe, *, out_dir: Path, options: BuildOptions, cache_root: Path, console: Console,
    env: Mapping[str, str],
) -> ApplianceBuild:
    """disk -> OVA or qcow2 -> RPM, reusing cached stages; the results are published into
    `out_dir`."""
    disk, disk_hit = build_disk_cached(recipe, cache_root, console, env)
    # The disk is copied (sparse): people boot it, and a hard link would let that write into
    # the cache. The other outputs are only read, so they are hard links.
    published = [publish("disk", disk.path, out_dir / f"{recipe.meta.name}.{disk.format}",
                         disk_hit, console, link=False)]
    if options.format == "qcow2":
        stage, built = "qcow2", build_qcow2_cached(disk, recipe, options, cache_root, console)
        image = RpmImage(built.path, "qcow2", compressed=options.compression != "none",
                         digests=known_digests(built.path))
    else:
        layout: OvaLayout = "ovirt" if options.format == "ovirt" else "ovf"
        stage, built = "ova", build_ova_cached(disk, layout, options=options,
                                               cache_root=cache_root, console=console, env=env)
        image = RpmImage(built.path, "ova", compressed=True, digests=known_digests(built.path))
    published.append(publish(stage, built.path, out_dir / built.path.name, built.hit, console,
                             digests=image.digests))
    if options.format != "ovf":
        note_role_firmware(recipe, console)
        rpm = build_rpm_cached(recipe=recipe, image=image, image_key=built.key, options=options,
                               cache_root=cache_root, console=console, env=env)
        published.append(publish("rpm", rpm.path, out_dir / rpm.path.name, rpm.hit, console))
    return ApplianceBuild(tuple(published))


def note_role_firmware(recipe: Recipe, console: Console) -> None:
    """The Ansible role picks the firmware from the package version, not from our metadata."""
    numbers = tuple(int(n) for n in re.findall(r"\d+", recipe.meta.version)[:3])
    if recipe.meta.firmware == "bios" and numbers >= ROLE_UEFI_FROM:
        console.note(f"note: the Ansible role boots appliance versions >= 4.5.1 under UEFI; "
                     f"this one ({recipe.meta.version}) says firmware: bios")


def publish(stage: str, cached: Path, final: Path, hit: bool, console: Console, *,
            link: bool = True, digests: FileDigests | None = None) -> Artifact:
    console.note(f"{stage}: {final}")
    digest = digests.sha256 if digests is not None else cached_digest(cached)
    link_or_copy(cached, final, link=link)
    return Artifact(stage, final, final.stat().st_size, digest, hit)


def cached_digest(cached: Path) -> str:
    """The SHA-256 of a cached artifact, computed once and kept beside it in its entry."""
    sidecar = cached.with_name(cached.name + ".sha256")
    if sidecar.is_file():
        return sidecar.read_text().strip()
    digest = sha256_sparse(cached)
    write_atomic(sidecar, digest.encode() + b"\n")
    return digest


def describe(build: ApplianceBuild) -> dict[str, Any]:
    return {"ok": True, "artifacts": [a.as_dict() for a in build.artifacts]}
