"""The contract every disk-building backend (kickstart, customize, debian stand-in) meets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from builder.console import Console
from builder.model import BuiltDisk


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
