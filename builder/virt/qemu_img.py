"""The one qemu-img wrapper: what an image is, create, convert, map. Callers decide what a
file qemu-img cannot read means for them (bad input, a tampered artifact...)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from builder.run import require_tool, run, tool_version

ImageFormat = Literal["raw", "qcow2"]
Compression = Literal["none", "zlib", "zstd"]


@dataclass(frozen=True)
class ImageInfo:
    """What `qemu-img info` says about a file."""

    format: str
    virtual_size: int
    actual_size: int
    backing_file: str | None


def qemu_img() -> str:
    return require_tool("qemu-img", package="qemu-utils")


def qemu_img_version() -> str:
    """qemu-img's version line: a stage whose bytes qemu-img writes names it in its key."""
    return tool_version("qemu-img", "--version")


def image_info(path: Path, *, fmt: ImageFormat | None = None) -> ImageInfo | None:
    """The image's facts, or None when qemu-img cannot read it (as `fmt`, when given)."""
    argv = [qemu_img(), "info", "--output=json", *(["-f", fmt] if fmt else []), str(path)]
    done = run(argv, check=False)
    if done.returncode != 0:
        return None
    info: dict[str, Any] = json.loads(done.text)
    return ImageInfo(str(info["format"]), int(info["virtual-size"]),
                     int(info.get("actual-size", 0)), info.get("backing-filename"))


def backing_chain(path: Path) -> list[Path] | None:
    """`path` and every file under it (its backing file, that one's...), or None when
    qemu-img cannot read the chain. Read with -U: a running VM's disk stays readable."""
    argv = [qemu_img(), "info", "--output=json", "--backing-chain", "-U", str(path)]
    done = run(argv, check=False)
    if done.returncode != 0:
        return None
    layers: list[dict[str, Any]] = json.loads(done.text)
    return [path.parent / str(layer["filename"]) for layer in layers]


def create_image(path: Path, *, size_bytes: int | None = None, backing: Path | None = None,
                 backing_format: str | None = None) -> None:
    """A new qcow2 (compat 1.1): empty of `size_bytes`, or an overlay on `backing`. A file
    already at `path` keeps its mode (qemu-img writes over it)."""
    argv = [qemu_img(), "create", "-q", "-f", "qcow2", "-o", "compat=1.1"]
    if backing is not None:
        argv += ["-F", backing_format or "qcow2", "-b", str(backing.resolve())]
    argv.append(str(path))
    if size_bytes is not None:
        argv.append(str(size_bytes))
    run(argv)


def convert_image(source: Path, source_format: str, dest: Path, dest_format: ImageFormat, *,
                  compression: Compression = "none") -> None:
    """A standalone copy (no backing file; zero clusters stay holes). qcow2 output is compat
    1.1, its clusters compressed as asked. No -W: out-of-order writes would make the file
    differ from run to run."""
    argv = [qemu_img(), "convert", "-f", source_format, "-O", dest_format]
    if dest_format == "qcow2":
        options = "compat=1.1"
        if compression != "none":
            options += f",compression_type={compression}"
            argv.append("-c")
        argv += ["-o", options, "-m", "4"]
    run([*argv, str(source), str(dest)])


def has_data(path: Path, fmt: ImageFormat) -> bool:
    """Whether any cluster of the image holds data (`qemu-img map`)."""
    done = run([qemu_img(), "map", "--output=json", "-f", fmt, str(path)])
    return any(extent.get("data") for extent in json.loads(done.text))
