"""The stage cache: a finished stage is found again by the hash of its inputs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.atomic import staged_dir, staged_file
from builder.ova.sparse import copy_sparse
from builder.run import run

ENV_CACHE = "HE_BUILDER_CACHE"


def default_cache_root(env: Mapping[str, str]) -> Path:
    """`$HE_BUILDER_CACHE`, else `~/.cache/he-builder`."""
    override = env.get(ENV_CACHE)
    if override:
        return Path(override)
    return Path(env.get("HOME", str(Path.home()))) / ".cache" / "he-builder"


def hash_inputs(inputs: Mapping[str, Any]) -> str:
    """A stable hex key for a stage: canonical JSON of its inputs, hashed."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def tool_version(*argv: str) -> str:
    """The first line a tool prints for its version: a tool upgrade invalidates its stages."""
    done = run(argv, check=False)
    text = (done.stdout or done.stderr).decode("utf-8", errors="replace").strip()
    return text.splitlines()[0] if text else f"{argv[0]}: unknown"


def package_version(package: str) -> str:
    """The installed Debian version of `package` (for tools without --version)."""
    done = run(["dpkg-query", "-W", "-f=${Version}", package], check=False)
    return done.text.strip() or "unknown"


@dataclass(frozen=True)
class StageCache:
    """Entries live at `<root>/<stage>/<key>/`; an entry exists only when complete."""

    root: Path

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> Path | None:
        path = self.entry(stage, key)
        return path if path.is_dir() else None

    @contextlib.contextmanager
    def store(self, stage: str, key: str) -> Iterator[Path]:
        """A temp directory that becomes the entry when the block finishes without error."""
        with staged_dir(self.entry(stage, key)) as temp:
            yield temp


def link_or_copy(source: Path, final: Path, *, link: bool = True) -> None:
    """Publish a cached file at `final` atomically: a hard link when allowed and possible,
    else a sparse copy."""
    with staged_file(final, mode=0o644) as temp:
        if link:
            temp.unlink()
            try:
                os.link(source, temp)
            except OSError:
                copy_sparse(source, temp)
        else:
            copy_sparse(source, temp)
