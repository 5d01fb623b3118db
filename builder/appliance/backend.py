"""The contract every disk-building backend (kickstart, customize, debian-test) meets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from builder.console import Console

DiskFormat = Literal["raw", "qcow2"]


@dataclass(frozen=True)
class ApplianceMeta:
    """What the OVF and the RPM say about the appliance."""

    name: str
    version: str
    release: str
    memory_mib: int
    vcpus: int
    description: str


@dataclass(frozen=True)
class BuiltDisk:
    """A finished disk image, and the hash of the inputs that produced it."""

    path: Path
    format: DiskFormat
    meta: ApplianceMeta
    cache_key: str


@dataclass(frozen=True)
class BuildContext:
    """Per-build state: where to stage, where the stage cache lives, whom to tell."""

    work_dir: Path
    cache_dir: Path
    console: Console
    env: Mapping[str, str]


class DiskBackend(Protocol):
    """Builds one appliance disk; `cache_key` hashes every input, never the output."""

    name: str

    def cache_key(self) -> str: ...

    def build_disk(self, ctx: BuildContext) -> BuiltDisk: ...
