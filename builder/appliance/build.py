"""The appliance pipeline: recipe -> disk -> OVA -> RPM, each stage cached by its inputs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.appliance.backend import BuildContext, BuiltDisk
from builder.appliance.recipes import Recipe, create_backend
from builder.atomic import write_atomic
from builder.cache import StageCache, hash_inputs, link_or_copy, tool_version
from builder.console import Console
from builder.ova import OvaLayout, pack_ova
from builder.ova.pack import Compression
from builder.ova.sparse import sha256_sparse
from builder.repro import sha256_file, source_date_epoch
from builder.rpm import PayloadChoice, build_rpm
from builder.rpm.spec import spec_template_digest

DISK_META = "disk.json"


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

    compression: Compression = "zstd"
    payload: PayloadChoice = "speed"
    layout: OvaLayout = "ovirt"
    sign_key: Path | None = None


@dataclass(frozen=True)
class ApplianceBuild:
    disk: Artifact
    ova: Artifact
    rpm: Artifact

    def artifacts(self) -> tuple[Artifact, ...]:
        return (self.disk, self.ova, self.rpm)


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


def build_ova_cached(
    disk: BuiltDisk, options: BuildOptions, cache_root: Path, console: Console,
    env: Mapping[str, str],
) -> tuple[Path, bool]:
    cache = StageCache(cache_root, notify=console.note)
    key = hash_inputs({
        "disk": disk.cache_key, "meta": disk.meta.__dict__, "compression": options.compression,
        "layout": options.layout, "epoch": source_date_epoch(env),
        "qemu_img": tool_version("qemu-img", "--version"), "ova_format": "1",
    })
    name = f"{disk.meta.name}-{disk.meta.version}-{disk.meta.release}.ova"
    hit = cache.lookup("ova", key)
    if hit is not None:
        console.note(f"ova: cache hit ({key})")
        return hit / name, True
    console.step(f"packing the OVA ({options.layout} layout, {options.compression} qcow2)")
    with cache.store("ova", key) as entry:
        pack_ova(disk, entry / name, layout=options.layout, compression=options.compression,
                 console=console, env=env, work_dir=entry)
    return cache.entry("ova", key) / name, False


def build_rpm_cached(
    *, disk: BuiltDisk, ova: Path, ova_key: str, options: BuildOptions, cache_root: Path,
    console: Console, env: Mapping[str, str],
) -> tuple[Path, bool]:
    cache = StageCache(cache_root, notify=console.note)
    key = hash_inputs({
        "ova": ova_key, "meta": disk.meta.__dict__, "payload": options.payload,
        "sign_key": sha256_file(options.sign_key) if options.sign_key else None,
        "epoch": source_date_epoch(env), "rpmbuild": tool_version("rpmbuild", "--version"),
        "spec": spec_template_digest(), "rpm_format": "2",
    })
    hit = cache.lookup("rpm", key)
    if hit is not None:
        console.note(f"rpm: cache hit ({key})")
        return next(hit.glob("*.rpm")), True
    console.step(f"wrapping the RPM (payload for {options.payload})")
    with cache.store("rpm", key) as entry:
        built = build_rpm(ova, disk.meta, entry, payload=options.payload,
                          sign_key=options.sign_key, console=console, env=env)
    return cache.entry("rpm", key) / built.name, False


def build_appliance(
    recipe: Recipe, *, out_dir: Path, options: BuildOptions, cache_root: Path, console: Console,
    env: Mapping[str, str],
) -> ApplianceBuild:
    """disk -> OVA -> RPM, reusing cached stages; the results are published into `out_dir`."""
    disk, disk_hit = build_disk_cached(recipe, cache_root, console, env)
    ova, ova_hit = build_ova_cached(disk, options, cache_root, console, env)
    rpm, rpm_hit = build_rpm_cached(disk=disk, ova=ova, ova_key=ova.parent.name,
                                    options=options, cache_root=cache_root, console=console,
                                    env=env)
    # The disk is copied (sparse): people boot it, and a hard link would let that write into
    # the cache. The OVA and the RPM are only read, so they are hard links.
    return ApplianceBuild(
        disk=publish("disk", disk.path, out_dir / f"{recipe.meta.name}.{disk.format}",
                     disk_hit, console, link=False),
        ova=publish("ova", ova, out_dir / ova.name, ova_hit, console),
        rpm=publish("rpm", rpm, out_dir / rpm.name, rpm_hit, console),
    )


def publish(stage: str, cached: Path, final: Path, hit: bool, console: Console, *,
            link: bool = True) -> Artifact:
    console.note(f"{stage}: {final}")
    digest = cached_digest(cached)
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
    return {"ok": True, "artifacts": [a.as_dict() for a in build.artifacts()]}
