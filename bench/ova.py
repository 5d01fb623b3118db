"""The gzip oVirt OVA against `tar -cSf - | gzip -1` and `tar -cSf - | pigz -1` of the same qcow2,
in one run. Goal: faster than pigz -1, with an OVA at most 2% larger than pigz's output.

Ours writes the whole OVA: OVF, PAX tar, the SHA-256 of every member and the manifest, the gzip
stream, and the OVA's own SHA-1 and SHA-256 (for the RPM); the references only tar and
compress. The qcow2 is converted once per run (timed apart). Also measured: what a host pays to
read each result (`zcat | wc --bytes`, the Ansible role's space check).

    .venv/bin/python -m bench.ova [--disk RAW] [--compress none|zlib|zstd] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import run_bench
from builder.console import Console
from builder.disk.registry import load_recipe
from builder.model import BuiltDisk
from builder.ova.pack import Compression, convert_disk, disk_method, write_ova
from builder.pipeline.appliance import build_disk_cached
from builder.pipeline.store import default_cache_root


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best_of(rounds: int, action: Callable[[], object]) -> float:
    return min(timed(action) for _ in range(rounds))


def tar_into(compressor: list[str], source: Path, dest: Path) -> None:
    """`tar -cSf - -C DIR FILE | COMPRESSOR > DEST`, without a shell."""
    with dest.open("wb") as out:
        tar = subprocess.Popen(["tar", "-cSf", "-", "-C", str(source.parent), source.name],
                               stdout=subprocess.PIPE)
        assert tar.stdout is not None
        subprocess.run(compressor, stdin=tar.stdout, stdout=out, check=True)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar failed")


def zcat_wc(path: Path) -> None:
    """The Ansible role's space check: `zcat OVA | wc --bytes`."""
    zcat = subprocess.Popen(["zcat", str(path)], stdout=subprocess.PIPE)
    assert zcat.stdout is not None
    subprocess.run(["wc", "--bytes"], stdin=zcat.stdout, capture_output=True, check=True)
    zcat.stdout.close()
    zcat.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--disk", type=Path, help="raw disk (default: the debian-test disk)")
    parser.add_argument("--compress", choices=("none", "zlib", "zstd"), default="zlib")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("tar", "gzip", "pigz", "zcat"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (scripts/setup.sh installs it)")
    env = dict(os.environ)
    recipe = load_recipe("debian-test")
    disk = (BuiltDisk(args.disk, "raw", recipe.meta, "bench") if args.disk
            else build_disk_cached(recipe, default_cache_root(env), Console(), env)[0])
    compression: Compression = args.compress
    with tempfile.TemporaryDirectory(prefix="bench-ova-", dir=Path.home()) as tmp:
        work = Path(tmp)
        qcow2 = work / "disk.qcow2"
        convert_s = timed(lambda: convert_disk(disk, qcow2, compression))
        quiet = Console(err=Path(os.devnull).open("w"))  # noqa: SIM115
        outputs = {"ours": work / "ours.ova", "gzip -1": work / "gzip.tar.gz",
                   "pigz -1": work / "pigz.tar.gz"}
        times = {
            "ours": best_of(args.rounds, lambda: write_ova(
                recipe.meta, qcow2, outputs["ours"], layout="ovirt", console=quiet, mtime=0,
                method=disk_method(compression))),
            "gzip -1": best_of(args.rounds, lambda: tar_into(["gzip", "-1"], qcow2,
                                                             outputs["gzip -1"])),
            "pigz -1": best_of(args.rounds, lambda: tar_into(["pigz", "-1"], qcow2,
                                                             outputs["pigz -1"])),
        }
        sizes = {name: path.stat().st_size for name, path in outputs.items()}
        reads = {name: best_of(args.rounds, lambda p=path: zcat_wc(p))  # type: ignore[misc]
                 for name, path in outputs.items()}
        qcow2_size = qcow2.stat().st_size
    print(f"disk: {disk.path} -> qcow2 ({compression} clusters, {qcow2_size / 2**20:.1f} MiB) "
          f"in {convert_s:.2f} s; {os.cpu_count()} CPUs")
    print(f"{'':10} {'write':>8} {'size':>12} {'zcat|wc':>8}")
    for name in outputs:
        print(f"{name:10} {times[name]:7.2f}s {sizes[name] / 2**20:9.1f} MiB "
              f"{reads[name]:7.2f}s")
    pigz = "pigz -1"
    print(f"ours vs pigz -1: time {times['ours'] / times[pigz]:.2f}x (goal < 1), size "
          f"{(sizes['ours'] / sizes[pigz] - 1) * 100:+.2f}% (goal <= +2%)")
    print(f"ours vs gzip -1: time {times['ours'] / times['gzip -1']:.2f}x, size "
          f"{(sizes['ours'] / sizes['gzip -1'] - 1) * 100:+.2f}%")


if __name__ == "__main__":
    run_bench(main)
