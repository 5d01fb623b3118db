"""Boot time of appliance disks under TCG: domain started -> the guest's first report, and ->
engine-setup's exit status, under BIOS and UEFI.

The first `--disk` is the reference (e.g. a disk built from an older tree), booted under BIOS
only (an older disk may have no EFI system partition): every other disk, under each firmware, is
printed as a ratio against it, measured in the same run. Each disk boots with the same seed
(the example inventory's DHCP site `dc1`) and no NIC, so only the image differs.

    flock /work/locks/vm.lock .venv/bin/python -m bench.appliance_boot \\
        --disk /var/tmp/old.raw [--disk NEW.raw] [--firmware bios --firmware uefi] [--runs 2]

Without a second --disk, the debian-test recipe's disk is built (or taken from the stage cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench import run_bench
from bench.launch import seed_for
from builder.console import Console
from builder.disk.registry import load_recipe
from builder.inventory.load import DEFAULT_INVENTORY
from builder.pipeline.appliance import build_disk_cached
from builder.pipeline.store import default_cache_root
from tests.fixtures.boot import Firmware, GuestRun, boot_and_report

Sample = tuple[float, float]  # (first report, exit status) in seconds after the domain started


def recipe_disk() -> Path:
    built, _ = build_disk_cached(load_recipe("debian-test"), default_cache_root(os.environ),
                                 Console(), dict(os.environ))
    return built.path


def measure(uri: str, disk: Path, firmware: Firmware, seed: Path, work: Path) -> Sample:
    run: GuestRun = boot_and_report(uri, name="he-bench-appliance-boot", disk=disk, seed=seed,
                                    firmware=firmware, work=work)
    if run.report.final_exit_code() != 0:
        raise RuntimeError(f"{disk} ({firmware}): engine-setup status "
                           f"{run.report.final_exit_code()}")
    return run.first_report_s, run.exit_status_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disk", type=Path, action="append", default=[])
    parser.add_argument("--firmware", choices=["bios", "uefi"], action="append", default=[])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--uri", default="qemu:///system")
    args = parser.parse_args()
    disks = args.disk if len(args.disk) >= 2 else [*args.disk, recipe_disk()]
    firmwares: list[Firmware] = args.firmware or ["bios"]
    results: dict[tuple[int, str], list[Sample]] = {}
    # Round-robin: the machine's load drifts, so each round boots every disk once.
    reference: list[Firmware] = ["bios"]
    plan = [(index, firmware) for index in range(len(disks))
            for firmware in (reference if index == 0 else firmwares)]
    with tempfile.TemporaryDirectory(prefix="he-bench-boot-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        root.chmod(0o711)
        seed = seed_for(DEFAULT_INVENTORY, "dc1", root / "seeds")
        for _ in range(args.runs):
            for index, firmware in plan:
                sample = measure(args.uri, disks[index], firmware, seed, root / f"disk{index}")
                results.setdefault((index, firmware), []).append(sample)
                print(f"disk {index} {firmware}: first report {sample[0]:.1f} s, exit "
                      f"status {sample[1]:.1f} s", flush=True)
    report(disks, firmwares, results)
    return 0


def report(disks: list[Path], firmwares: list[Firmware],
           results: dict[tuple[int, str], list[Sample]]) -> None:
    """Medians per disk and firmware; ratios against disk 0 under BIOS."""
    ref = statistics.median(s[0] for s in results[(0, "bios")])
    for firmware in firmwares:
        for index, disk in enumerate(disks):
            samples = results.get((index, firmware))
            if not samples:
                continue  # disk 0 boots under BIOS only
            first = statistics.median(s[0] for s in samples)
            status = statistics.median(s[1] for s in samples)
            print(f"{firmware} disk {index} ({disk}): first report {first:.1f} s, exit status "
                  f"{status:.1f} s (median of {len(samples)}); ratio to disk 0: "
                  f"{first / ref:.2f}")


if __name__ == "__main__":
    run_bench(main)
