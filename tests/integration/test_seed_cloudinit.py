"""Debian's real cloud-init 22.4 judges our seeds: its schema check and its network-config parser.

cloud-init is not installed on the host: its package and its Python dependencies are fetched
with `apt-get download` into the cache (once), unpacked with `dpkg-deb -x`, and run by the
system python3 with PYTHONPATH pointing into the unpacked tree.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.inventory.secrets import resolve_secrets
from builder.seed.build import RenderedSeed, render_seed

pytestmark = pytest.mark.integration

# Interpreter packages are the host's own; everything else cloud-init needs is unpacked.
SKIP_PACKAGES = {"python3", "python3-minimal"}
CloudInit = Callable[..., subprocess.CompletedProcess[str]]


def _cache_root() -> Path:
    base = os.environ.get("HE_BUILDER_CACHE") or str(Path.home() / ".cache" / "he-builder")
    return Path(base) / "cloud-init-deb"


def _python_dependencies() -> list[str]:
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
         "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", "cloud-init"],
        capture_output=True, text=True, check=True).stdout
    names = {line.strip() for line in out.splitlines() if not line.startswith(" ")}
    return sorted(n for n in names if n.startswith("python3-") and n not in SKIP_PACKAGES)


def _unpack_cloud_init(cache: Path) -> Path:
    root = cache / "root"
    if (cache / "complete").exists():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "cloud-init", *_python_dependencies()], cwd=debs,
                   check=True, capture_output=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (cache / "complete").touch()
    return root


@pytest.fixture(scope="session")
def cloud_init() -> Iterator[CloudInit]:
    """Run Debian's `cloud-init` CLI (22.4) from an unpacked copy of its package."""
    cache = _cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one unpacker across pytest-xdist workers
        root = _unpack_cloud_init(cache)
    env = {**os.environ, "PYTHONPATH": str(root / "usr/lib/python3/dist-packages")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/usr/bin/python3", str(root / "usr/bin/cloud-init"), *args],
                              env=env, capture_output=True, text=True, check=False)

    version = run("--version")
    assert version.returncode == 0 and "22.4" in version.stdout + version.stderr, version
    yield run


@pytest.fixture(scope="module")
def example_seeds() -> dict[str, RenderedSeed]:
    inventory = load_inventory(DEFAULT_INVENTORY)
    return {
        name: render_seed(site, resolve_secrets(site, base_dir=inventory.path.parent,
                                                env={}, prompt=None))
        for name, site in inventory.sites.items()
    }


@pytest.mark.parametrize("site", ["dc1", "dc2"])
def test_cloud_init_schema_accepts_user_data(cloud_init: CloudInit,
                                             example_seeds: dict[str, RenderedSeed],
                                             site: str, tmp_path: Path) -> None:
    path = tmp_path / "user-data"
    path.write_text(example_seeds[site].user_data)
    result = cloud_init("schema", "--config-file", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_cloud_init_schema_rejects_a_broken_config(cloud_init: CloudInit,
                                                   tmp_path: Path) -> None:
    # The check above would be worthless if this cloud-init accepted anything.
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\nchpasswd:\n  users:\n  - name: root\n    type: bogus\n")
    result = cloud_init("schema", "--config-file", str(path))
    assert result.returncode != 0
    assert "chpasswd.users.0" in result.stdout + result.stderr


@pytest.mark.parametrize(("distro", "kind", "expected"), [
    ("debian", "eni", ["address 198.51.100.10/24", "gateway 198.51.100.1",
                       "address 2001:db8:2::10/64", "gateway 2001:db8:2::1",
                       "dns-nameservers 198.51.100.53 2001:db8:2::53",
                       "dns-search dc2.example.net example.net",
                       'ATTR{address}=="00:16:3e:00:02:10", NAME="eth0"']),
    ("centos", "sysconfig", ["IPADDR=198.51.100.10", "GATEWAY=198.51.100.1",
                             "IPV6ADDR=2001:db8:2::10/64", "IPV6_DEFAULTGW=2001:db8:2::1",
                             "HWADDR=00:16:3e:00:02:10", "DNS1=198.51.100.53"]),
    ("centos", "network-manager", ["address1=198.51.100.10/24", "gateway=198.51.100.1",
                                   "address1=2001:db8:2::10/64", "gateway=2001:db8:2::1",
                                   "mac-address=00:16:3E:00:02:10"]),
    ("ubuntu", "netplan", ["198.51.100.10/24", "2001:db8:2::10/64",
                           "macaddress: 00:16:3e:00:02:10", "gateway6: 2001:db8:2::1"]),
])
def test_cloud_init_renders_the_static_network_config(
    cloud_init: CloudInit, example_seeds: dict[str, RenderedSeed], tmp_path: Path,
    distro: str, kind: str, expected: list[str],
) -> None:
    config = example_seeds["dc2"].network_config
    assert config is not None
    source = tmp_path / "network-config"
    source.write_text(config)
    out = tmp_path / "out"
    result = cloud_init("devel", "net-convert", "--network-data", str(source), "--kind", "yaml",
                        "--directory", str(out), "--distro", distro, "--output-kind", kind)
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
    missing = [text for text in expected if text not in rendered]
    assert not missing, rendered
