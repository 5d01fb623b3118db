"""The guest's real programs judge our seeds: Debian's cloud-init 22.4 (its schema check and its
network-config parser), NetworkManager's nmcli (the NIC's keyfile) and OpenSSH's sshd (the root
login drop-in). The same schema check judges the cloud-init configuration the appliances carry
(the debian-test image's files, the kickstart's %post): at boot, cloud-init before 23.4 (this
22.4 among them) validates it merged with the seed's user-data, and warns "Invalid cloud-config
provided" if any part is refused; later releases validate the user-data alone.

None of them is installed on the host (NetworkManager would take over the host's network):
their packages are fetched with `apt-get download` into the cache (once), unpacked with
`dpkg-deb -x`, and run from the unpacked tree (cloud-init by the system python3 with PYTHONPATH
pointing into it, nmcli with LD_LIBRARY_PATH for libnm, sshd as it is).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from builder.disk.debian_standin import DebianTestBackend, appliance_files
from builder.disk.registry import create_backend, load_recipe
from builder.inventory.fields import parse, to_json
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.inventory.models import Site
from builder.inventory.secrets import resolve_secrets
from builder.pipeline.store import default_cache_root
from builder.seed.master import RenderedSeed, render_seed
from builder.seed.network import NM_KEYFILE
from builder.seed.userdata import SSHD_DROP_IN
from tests.fixtures.golden import GOLDEN_DIR
from tests.fixtures.seeds import Secrets

pytestmark = pytest.mark.integration

# Interpreter packages are the host's own; everything else cloud-init needs is unpacked.
SKIP_PACKAGES = {"python3", "python3-minimal"}
TEST_PACKAGES = ".test-packages"
UNPACKED = ".unpacked"  # inside a root: its packages are all unpacked
CloudInit = Callable[..., subprocess.CompletedProcess[str]]


def _cache_root(name: str, env: Mapping[str, str] = os.environ) -> Path:
    """Where the packages of one consumer are kept, once per machine: in a dot-directory of the
    stage cache's root, which `he-build cache` neither lists nor prunes (an unpacked root bears
    its package's date, years old: a prune would take it for an entry unused for years)."""
    return default_cache_root(env) / TEST_PACKAGES / name


def _unpack_packages(cache: Path, packages: Callable[[], list[str]]) -> Path:
    """The packages `packages()` names, downloaded and unpacked once into `cache/root` (one
    unpacker across pytest-xdist workers). The mark of a finished unpacking lies inside the
    root: a root that was removed is unpacked again."""
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / "root"
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / UNPACKED).exists():
            debs = cache / "debs"
            debs.mkdir(exist_ok=True)
            subprocess.run(["apt-get", "download", *packages()], cwd=debs, check=True,
                           capture_output=True)
            for deb in sorted(debs.glob("*.deb")):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            (root / UNPACKED).touch()
    return root


def test_he_build_cache_neither_lists_nor_prunes_the_unpacked_packages(tmp_path: Path) -> None:
    """`he-build cache prune` took a consumer's unpacked root for an entry unused since its
    package was built; the tests then found the root gone."""
    env = {**os.environ, "HE_BUILDER_CACHE": str(tmp_path)}
    root = _cache_root("openssh-server-deb", env) / "root"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/sshd").write_text("")
    (root / UNPACKED).touch()
    for path in (root / "usr/sbin", root / "usr", root):
        os.utime(path, (0, 0))  # dpkg-deb -x gives them the package's dates
    entry = tmp_path / "seed" / "0123abcd"  # a stage's entry, which a prune does remove
    entry.mkdir(parents=True)

    def he_build_cache(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "builder.cli.he_build", "--json", "cache",
                               *args], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    assert [e["path"] for e in he_build_cache("list")["entries"]] == [str(entry)]
    assert [e["path"] for e in he_build_cache("prune", "--unused-for", "0")["removed"]] == [
        str(entry)]
    assert (root / "usr/sbin/sshd").is_file()


def _cloud_init_packages() -> list[str]:
    """cloud-init and the Python modules it needs, the interpreter aside."""
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
         "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", "cloud-init"],
        capture_output=True, text=True, check=True).stdout
    names = {line.strip() for line in out.splitlines() if not line.startswith(" ")}
    return ["cloud-init",
            *sorted(n for n in names if n.startswith("python3-") and n not in SKIP_PACKAGES)]


@pytest.fixture(scope="session")
def cloud_init() -> Iterator[CloudInit]:
    """Run Debian's `cloud-init` CLI (22.4) from an unpacked copy of its package."""
    root = _unpack_packages(_cache_root("cloud-init-deb"), _cloud_init_packages)
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


@pytest.mark.parametrize(("config", "said"), [
    ("chpasswd:\n  users:\n  - name: root\n    type: bogus\n", "chpasswd.users.0"),
    # What the debian-test image once said for "no host keys": refused at every boot.
    ("ssh_genkeytypes: []\n", "ssh_genkeytypes: [] is too short"),
])
def test_cloud_init_schema_rejects_a_broken_config(cloud_init: CloudInit, config: str,
                                                   said: str, tmp_path: Path) -> None:
    # The checks here would be worthless if this cloud-init accepted anything.
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\n" + config)
    result = cloud_init("schema", "--config-file", str(path))
    assert result.returncode != 0
    assert said in result.stdout + result.stderr


CLOUD_CFG_HEREDOC = re.compile(
    r"^cat > /etc/cloud/cloud\.cfg\.d/(\S+) <<'(\w+)'\n(.*?)^\2$", re.M | re.S)


def appliance_cloud_configs() -> dict[str, str]:
    """Every cloud.cfg.d file an appliance ships, by where it comes from and its name."""
    backend = create_backend(load_recipe("debian-test"))
    assert isinstance(backend, DebianTestBackend)
    found = {f"debian-test:{rel}": data.decode()
             for rel, data, _ in appliance_files(backend.meta)
             if rel.startswith("etc/cloud/cloud.cfg.d/")}
    kickstart = (GOLDEN_DIR / "kickstart/kickstart-centos9.ks").read_text()
    for name, _, body in CLOUD_CFG_HEREDOC.findall(kickstart):
        found[f"kickstart:{name}"] = body
    return found


APPLIANCE_CLOUD_CONFIGS = appliance_cloud_configs()


def test_both_appliances_ship_cloud_init_configuration() -> None:
    assert {name.split(":")[0] for name in APPLIANCE_CLOUD_CONFIGS} == {"debian-test",
                                                                        "kickstart"}


@pytest.mark.parametrize("name", sorted(APPLIANCE_CLOUD_CONFIGS))
def test_cloud_init_schema_accepts_the_appliance_s_own_configuration(
        cloud_init: CloudInit, name: str, tmp_path: Path) -> None:
    path = tmp_path / "cloud.cfg"
    path.write_text("#cloud-config\n" + APPLIANCE_CLOUD_CONFIGS[name])
    result = cloud_init("schema", "--config-file", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


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


@pytest.fixture(scope="session")
def nmcli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Debian 12's nmcli (NetworkManager 1.42) from its unpacked package: `--offline` reads a
    keyfile on stdin, checks it as NetworkManager does, and prints it back normalized."""
    root = _unpack_packages(_cache_root("network-manager-deb"),
                            lambda: ["network-manager", "libnm0"])
    env = {**os.environ, "LD_LIBRARY_PATH": str(root / "usr/lib/x86_64-linux-gnu")}

    def run(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(root / "usr/bin/nmcli"), *args], input=stdin, env=env,
                              capture_output=True, text=True, check=False)
    return run


def written_file(seed: RenderedSeed, path: str) -> str:
    document = yaml.safe_load(seed.user_data)
    content: str = next(f["content"] for f in document["write_files"] if f["path"] == path)
    return content


@pytest.mark.parametrize(("site", "expected"), [
    ("dc1", ["mac-address=00:16:3E:66:A9:EE", "[ipv4]\nmethod=auto",
             "[ipv6]\nmethod=disabled"]),
    ("dc2", ["mac-address=00:16:3E:00:02:10",
             "address1=198.51.100.10/24,198.51.100.1\ndns=198.51.100.53;\n"
             "dns-search=dc2.example.net;example.net;\nmethod=manual",
             "address1=2001:db8:2::10/64,2001:db8:2::1\ndns=2001:db8:2::53;",
             "id=hosted-engine", "zone=public"]),
])
def test_networkmanager_reads_the_nic_s_keyfile(
    nmcli: Callable[..., subprocess.CompletedProcess[str]],
    example_seeds: dict[str, RenderedSeed], site: str, expected: list[str],
) -> None:
    keyfile = written_file(example_seeds[site], NM_KEYFILE)
    # A no-op modification: nmcli parses, verifies and normalizes the profile, then prints it.
    result = nmcli("--offline", "connection", "modify", "connection.id", "hosted-engine",
                   stdin=keyfile)
    assert result.returncode == 0, result.stderr
    missing = [text for text in expected if text not in result.stdout]
    assert not missing, result.stdout


def test_networkmanager_refuses_a_broken_keyfile(
    nmcli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    # The check above would be worthless if this nmcli accepted anything: NetworkManager keeps
    # DNS servers per family, so it refuses one on a disabled family (the seed refuses it first).
    broken = "[connection]\nid=x\ntype=ethernet\n[ipv4]\nmethod=disabled\ndns=192.0.2.53;\n"
    result = nmcli("--offline", "connection", "modify", "connection.id", "x", stdin=broken)
    assert result.returncode != 0
    assert "ipv4.dns: this property is not allowed for 'method=disabled'" in result.stderr


@pytest.fixture(scope="session")
def sshd() -> Path:
    """Debian 12's sshd (OpenSSH 9.2) from its unpacked package: `-T` prints what it applies."""
    return _unpack_packages(_cache_root("openssh-server-deb"),
                            lambda: ["openssh-server"]) / "usr/sbin/sshd"


def sshd_applies(sshd: Path, folder: Path, drop_ins: Mapping[str, str], *,
                 main: str = "") -> dict[str, str]:
    """What `sshd -T` applies (lowercase keyword -> value) when sshd_config is an Include of
    `drop_ins` (name -> text, written into `folder`) followed by `main`, as CentOS Stream 9's
    sshd_config has its Include first."""
    directory = folder / "sshd_config.d"
    directory.mkdir()
    for name, text in drop_ins.items():
        (directory / name).write_text(text)
    config = folder / "sshd_config"
    config.write_text(f"Include {directory}/*.conf\n{main}UsePAM no\n")
    host_key = folder / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                   check=True)
    done = subprocess.run([str(sshd), "-T", "-f", str(config), "-h", str(host_key)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


@pytest.mark.parametrize(("root_ssh", "permit", "passwords"), [
    ("key", "without-password", "no"),  # sshd -T spells prohibit-password so
    ("password", "yes", "yes"),
])
def test_sshd_applies_the_root_login_drop_in_over_the_image_s_own(
    sshd: Path, tmp_path: Path, root_ssh: str, permit: str, passwords: str,
) -> None:
    """sshd_config shaped like CentOS Stream 9's: the Include first; the image also has
    Anaconda's 01-permitrootlogin.conf (PermitRootLogin yes) and a main-file setting."""
    site = load_inventory(DEFAULT_INVENTORY).sites["dc1"]
    seed = render_seed(parse(Site, {**to_json(site), "root_ssh": root_ssh}),
                       Secrets(root_password="r", admin_password="a"))
    applied = sshd_applies(sshd, tmp_path, {
        PurePosixPath(SSHD_DROP_IN).name: written_file(seed, SSHD_DROP_IN),
        "01-permitrootlogin.conf": "PermitRootLogin yes\n",
        "50-redhat.conf": "PasswordAuthentication yes\n",
    }, main="PermitRootLogin no\n")
    assert (applied["permitrootlogin"], applied["passwordauthentication"]) == (permit,
                                                                             passwords)
