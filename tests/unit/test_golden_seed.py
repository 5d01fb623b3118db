"""Golden files of everything `he-build seed` writes for the example inventory (dc1 DHCP, dc2
static): each site's directory, the DHCP/DNS records, the set's index, and every file the
user-data writes into the engine VM. Regenerate: `pytest ... --regen-golden` (tests/golden/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from builder.seed import runner
from builder.seed.dhcp import build_dhcp_export
from builder.seed.master import ISO_NAME, build_seeds
from builder.seed.network import NM_KEYFILE
from builder.seed.userdata import DATASOURCE_CONFIG_PATH, SSHD_DROP_IN
from tests.fixtures.golden import GoldenFiles
from tests.fixtures.golden_inputs import SITES, SOURCE_DATE_EPOCH, example_sites, site_secrets

# What each site directory holds, seed.iso aside (binary: manifest.json pins its SHA-256).
SITE_FILES = {
    "dc1": ("heanswers.conf", "manifest.json", "meta-data", "user-data"),
    "dc2": ("heanswers.conf", "manifest.json", "meta-data", "network-config", "user-data"),
}
DHCP_FILES = ("dhcpd.conf", "dnsmasq.conf", "records.zone")
# Guest path of each file user-data writes -> its golden file ({site} filled in). The runner
# is the same script for every site: one golden file.
GUEST_FILES = {
    "/etc/hosts": "seed/{site}/guest/hosts",
    NM_KEYFILE: "seed/{site}/guest/hosted-engine.nmconnection",
    SSHD_DROP_IN: "seed/{site}/guest/00-he-root-login.conf",
    runner.RUNNER_PATH: "seed/he-run-engine-setup",
    DATASOURCE_CONFIG_PATH: "seed/{site}/guest/90-he-nocloud.cfg",
}
INDEX = "generation.json"


def golden_names() -> set[str]:
    """Every golden file this module checks (tests/unit/test_golden_files.py uses it)."""
    names = {f"seed/{site}/{name}" for site, files in SITE_FILES.items() for name in files}
    names |= {f"seed/dhcp/{name}" for name in DHCP_FILES}
    names |= {pattern.format(site=site) for pattern in GUEST_FILES.values() for site in SITES}
    return names | {f"seed/{INDEX}"}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT after one `he-build seed --all --dhcp-export` of the example, in-process: the
    inventory's sites, marker secrets, SOURCE_DATE_EPOCH fixed."""
    sites = example_sites()
    out = tmp_path_factory.mktemp("golden-seeds") / "out"
    build_seeds([(site, site_secrets(name)) for name, site in sites.items()], out,
                epoch=SOURCE_DATE_EPOCH, whole_set=True,
                dhcp=build_dhcp_export(list(sites.values())))
    return out


def write_files(published: Path, site: str) -> dict[str, str]:
    document: dict[str, Any] = yaml.safe_load((published / site / "user-data").read_text())
    return {entry["path"]: entry["content"] for entry in document["write_files"]}


def test_the_example_has_the_sites_the_golden_files_are_made_of() -> None:
    sites = example_sites()
    assert tuple(sites) == SITES
    assert [sites[name].network.mode for name in SITES] == ["dhcp", "static"]


@pytest.mark.parametrize("site", SITES)
def test_a_site_directory_holds_exactly_the_files_with_golden_copies(
    published: Path, site: str,
) -> None:
    written = sorted(path.name for path in (published / site).iterdir())
    assert written == sorted((*SITE_FILES[site], ISO_NAME))


@pytest.mark.parametrize(("site", "name"),
                         [(site, name) for site, files in SITE_FILES.items() for name in files])
def test_site_file_matches_golden(published: Path, golden: GoldenFiles, site: str,
                                  name: str) -> None:
    golden.check(f"seed/{site}/{name}", (published / site / name).read_bytes())


@pytest.mark.parametrize("name", DHCP_FILES)
def test_dhcp_export_matches_golden(published: Path, golden: GoldenFiles, name: str) -> None:
    assert sorted(path.name for path in (published / "dhcp").iterdir()) == sorted(DHCP_FILES)
    golden.check(f"seed/dhcp/{name}", (published / "dhcp" / name).read_bytes())


def test_the_set_index_matches_golden(published: Path, golden: GoldenFiles) -> None:
    golden.check(f"seed/{INDEX}", (published / ".he-seeds" / "current" / INDEX).read_bytes())


@pytest.mark.parametrize("site", SITES)
def test_user_data_writes_exactly_the_files_with_golden_copies(published: Path,
                                                               site: str) -> None:
    assert sorted(write_files(published, site)) == sorted(GUEST_FILES)


@pytest.mark.parametrize(("site", "path"),
                         [(site, path) for site in SITES for path in GUEST_FILES])
def test_guest_file_matches_golden(published: Path, golden: GoldenFiles, site: str,
                                   path: str) -> None:
    golden.check(GUEST_FILES[path].format(site=site), write_files(published, site)[path])
