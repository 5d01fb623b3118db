"""Seeds for 1,000 generated sites, end to end, against a loop of cloud-localds on the same files.

    .venv/bin/python -m bench.seeds [--sites 1000] [--out DIR]

Ours: render + hash + master (pycdlib) + write every site directory (the `he-build seed` path).
Reference: `cloud-localds [-N network-config] seed.iso user-data meta-data` once per site, on the
files ours rendered, in the same run. Prints both times, ms per site, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.inventory.models import Site
from builder.run import require_tool, run
from builder.seed.master import SeedArtifacts, build_seeds, master_seed

EPOCH = 1700000000


@dataclass(frozen=True)
class BenchSecrets:
    root_password: str
    admin_password: str


def generated_site(index: int) -> Site:
    """Half DHCP, half static (IPv4 + IPv6), all distinct."""
    name = f"site{index:04d}"
    fields: dict[str, Any] = {
        "name": name, "fqdn": f"engine.{name}.example.com",
        "root_password": "env:ROOT", "admin_password": "env:ADMIN",
        "ntp_servers": ["pool.ntp.org"],
        "hosts_entries": [{"ip": f"10.{index // 250}.{index % 250}.2",
                           "names": [f"host1.{name}.example.com"]}],
    }
    if index % 2:
        fields["network"] = {
            "mode": "static",
            "ipv4": {"address": f"10.{index // 250}.{index % 250}.10/24",
                     "gateway": f"10.{index // 250}.{index % 250}.1"},
            "ipv6": {"address": f"2001:db8:{index:x}::10/64", "gateway": f"2001:db8:{index:x}::1"},
            "dns_servers": ["10.0.0.53"], "search_domains": [f"{name}.example.com"],
        }
    return Site.model_validate(fields)


def run_ours(sites: list[Site], out: Path) -> tuple[float, list[SeedArtifacts]]:
    jobs = [(site, BenchSecrets(f"root-{site.name}", f"admin-{site.name}")) for site in sites]
    start = time.perf_counter()
    artifacts = build_seeds(jobs, out, epoch=EPOCH)
    return time.perf_counter() - start, artifacts


def run_in_memory(sites: list[Site]) -> float:
    """Render + hash + master only, one CPU: what a site costs before any disk is involved."""
    start = time.perf_counter()
    for site in sites:
        master_seed(site, BenchSecrets(f"root-{site.name}", f"admin-{site.name}"), epoch=EPOCH)
    return time.perf_counter() - start


def run_cloud_localds(artifacts: list[SeedArtifacts], out: Path) -> float:
    tool = require_tool("cloud-localds", package="cloud-image-utils")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for seed in artifacts:
        argv = [tool]
        network = seed.directory / "network-config"
        if network.exists():
            argv += ["-N", str(network)]
        argv += [str(out / f"{seed.site}.iso"), str(seed.directory / "user-data"),
                 str(seed.directory / "meta-data")]
        run(argv)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write (default: a temporary directory, removed after)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="he-bench-seeds-"))
    try:
        report(args.sites, out)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


def report(count: int, out: Path) -> None:
    sites = [generated_site(i) for i in range(count)]
    sample = sites[: min(count, 200)]
    in_memory = run_in_memory(sample) / len(sample)
    ours, artifacts = run_ours(sites, out / "ours")
    theirs = run_cloud_localds(artifacts, out / "cloud-localds")
    cpus = len(os.sched_getaffinity(0))
    print(f"sites: {count} (half DHCP, half static v4+v6), CPUs: {cpus}, out: {out}")
    print(f"he-build seed path : {ours:8.3f} s  {1000 * ours / count:7.3f} ms/site "
          f"(end to end, on {cpus} CPUs)")
    print(f"  of which in memory, one CPU: {1000 * in_memory:.3f} ms/site "
          "(render + SHA-512 crypt + master)")
    print(f"cloud-localds loop : {theirs:8.3f} s  {1000 * theirs / count:7.3f} ms/site")
    print(f"ratio              : {theirs / ours:8.1f}x faster")


if __name__ == "__main__":
    main()
