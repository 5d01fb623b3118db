"""The seed ISO as the system's own tools see it: isoinfo (genisoimage) and blkid (util-linux)."""

from __future__ import annotations

import subprocess

import pytest

from builder.seed.master import SeedArtifacts, write_site_seed
from tests.fixtures.seeds import Secrets, static_site

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> SeedArtifacts:
    out = tmp_path_factory.mktemp("seeds")
    return write_site_seed(static_site(), Secrets(), out, env={"SOURCE_DATE_EPOCH": "1700000000"})


def tool(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_isoinfo_sees_the_label_joliet_and_rock_ridge(seed: SeedArtifacts) -> None:
    info = tool("isoinfo", "-d", "-i", str(seed.iso))
    assert "Volume id: cidata" in info.splitlines()
    assert "Joliet with UCS level 3 found" in info
    assert "Rock Ridge signatures version 1 found" in info


@pytest.mark.parametrize("namespace", [["-R"], ["-J"]])
def test_isoinfo_extracts_each_file_by_its_long_name(seed: SeedArtifacts,
                                                     namespace: list[str]) -> None:
    listing = tool("isoinfo", *namespace, "-f", "-i", str(seed.iso)).split()
    assert sorted(listing) == ["/heanswers.conf", "/meta-data", "/network-config", "/user-data"]
    for name in ("user-data", "meta-data", "network-config", "heanswers.conf"):
        data = subprocess.run(["isoinfo", *namespace, "-i", str(seed.iso), "-x", f"/{name}"],
                              capture_output=True, check=True).stdout
        assert data == (seed.directory / name).read_bytes()


def test_blkid_sees_an_iso9660_labelled_cidata(seed: SeedArtifacts) -> None:
    probe = tool("blkid", "-p", "-o", "export", str(seed.iso))
    fields = dict(line.split("=", 1) for line in probe.splitlines() if "=" in line)
    assert fields["TYPE"] == "iso9660"
    assert fields["LABEL"] == "cidata"
    # blkid's UUID of an ISO is its modification date: pinned to SOURCE_DATE_EPOCH.
    assert fields["UUID"] == "2023-11-14-22-13-20-00"

