"""Loading a generated inventory of 1,000 sites, against PyYAML's C loader alone on the same file.

    .venv/bin/python -m bench.inventory_load [--sites 1000] [--rounds 7]

Ours: `load_inventory` (bounded read, YAML built from libyaml's events with the line of every
key, defaults merged, every field checked, cross-site checks). Reference: `yaml.load(text,
Loader=yaml.CSafeLoader)`, which only parses. Rounds alternate between the two; times are CPU
time of this process (steadier than wall time on a shared machine). Prints the best and median
of each and the ratio of the best.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bench import run_bench
from builder.inventory.load import load_inventory

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f "
       "op@example.com")


def inventory_text(count: int) -> str:
    """Half DHCP, half static (IPv4 + IPv6), each with a hosts entry and an extra answer."""
    lines = ["defaults:", "  ntp_servers: [0.pool.ntp.org]", "  root_password: env:ROOT",
             "  admin_password: env:ADMIN", "  ssh_keys:", f"    - {KEY}",
             "  engine: {configure_dwh: true}", "sites:"]
    for index in range(count):
        name, net = f"site{index:04d}", f"10.{index // 250}.{index % 250}"
        lines += [f"  {name}:", f"    fqdn: engine.{name}.example.com", "    hosts_entries:",
                  f"      - ip: {net}.2", f"        names: [host1.{name}.example.com, host1]"]
        if index % 2:
            lines += ["    network:", "      mode: static", "      ipv4:",
                      f"        address: {net}.10/24", f"        gateway: {net}.1",
                      "      ipv6:", f"        address: 2001:db8:{index:x}::10/64",
                      f"        gateway: 2001:db8:{index:x}::1", "      dns_servers: [10.0.0.53]",
                      f"      search_domains: [{name}.example.com]"]
        lines += ["    extra_answers:",
                  "      OVESETUP_CONFIG/sanWipeAfterDelete: {type: bool, value: false}"]
    return "\n".join(lines) + "\n"


def timed(actions: list[Callable[[], object]], rounds: int) -> list[list[float]]:
    """CPU seconds of each action per round, the actions alternating within every round."""
    for action in actions:
        action()  # warm up: imports, caches
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(rounds):
        for action, spent in zip(actions, times, strict=True):
            start = time.process_time()
            action()
            spent.append(time.process_time() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="he-bench-inventory-") as tmp:
        path = Path(tmp) / "inventory.yaml"
        text = inventory_text(args.sites)
        path.write_text(text)
        ours, theirs = timed([lambda: load_inventory(path),
                              lambda: yaml.load(text, Loader=yaml.CSafeLoader)], args.rounds)
    size = len(text.encode()) / 1024
    print(f"sites: {args.sites} ({size:.0f} KiB), rounds: {args.rounds}, CPU time")
    print(f"load_inventory          : best {1000 * min(ours):7.1f} ms, "
          f"median {1000 * statistics.median(ours):7.1f} ms")
    print(f"yaml.load (CSafeLoader) : best {1000 * min(theirs):7.1f} ms, "
          f"median {1000 * statistics.median(theirs):7.1f} ms")
    print(f"ratio (best)            : {min(ours) / min(theirs):7.2f}x the parse alone")


if __name__ == "__main__":
    run_bench(main)
