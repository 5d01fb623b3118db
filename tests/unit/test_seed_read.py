"""The one reader of a seed (builder.seed.read): the FQDN and the NIC's MAC from the manifest
he-build wrote beside the ISO (checked against the ISO) or from the ISO itself, and the answer
file's password lines (for he-launch's overlay scan) from the ISO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from builder.errors import IntegrityError
from builder.seed.iso import write_iso
from builder.seed.master import render_seed, write_site_seed
from builder.seed.read import password_lines, read_seed, read_seed_facts
from builder.seed.runner import SEED_ANSWERS
from tests.fixtures.seeds import Secrets, dhcp_site, static_site


def iso_of(files: list[tuple[str, bytes]], path: Path) -> Path:
    write_iso(path, files, epoch=0)
    return path


def test_a_static_seed_says_its_fqdn_mac_and_password_lines(tmp_path: Path) -> None:
    seed = render_seed(static_site(), Secrets(admin_password="pa ss w0rd#;"))
    facts = read_seed_facts(iso_of(seed.iso_files(), tmp_path / "seed.iso"))
    assert facts.fqdn == "engine.dc2.example.net"
    assert facts.mac == "00:16:3e:00:02:10"
    assert facts.secret_lines == (b"OVESETUP_CONFIG/adminPassword=str:pa ss w0rd#;",)
    assert "w0rd" not in repr(facts)  # never shown, not even in a traceback


def test_a_dhcp_seed_s_mac_comes_from_its_networkmanager_profile(tmp_path: Path) -> None:
    site = dhcp_site(network={"mode": "dhcp", "mac": "00:16:3e:aa:bb:cc"})
    seed = render_seed(site, Secrets())
    assert seed.network_config is None
    facts = read_seed_facts(iso_of(seed.iso_files(), tmp_path / "seed.iso"))
    assert facts.mac == "00:16:3e:aa:bb:cc"


def test_an_older_seed_with_the_answer_file_in_user_data_is_read_too(tmp_path: Path) -> None:
    answers = "[environment:default]\nOVESETUP_CONFIG/adminPassword=str:Old-seed-pw\n"
    user_data = "#cloud-config\n" + yaml.safe_dump({
        "fqdn": "engine.old.example.com",
        "write_files": [{"path": SEED_ANSWERS, "content": answers, "permissions": "0600"}]})
    iso = iso_of([("user-data", user_data.encode()), ("meta-data", b"instance-id: x\n")],
                 tmp_path / "seed.iso")
    facts = read_seed_facts(iso)
    assert facts.fqdn == "engine.old.example.com" and facts.mac is None
    assert facts.secret_lines == (b"OVESETUP_CONFIG/adminPassword=str:Old-seed-pw",)


def test_password_lines_are_the_typed_password_keys_only() -> None:
    text = ("[environment:default]\n"
            "OVESETUP_CONFIG/adminPassword=str:a=b:c\n"
            "OVESETUP_DB/password=str:db-secret\n"
            "OVESETUP_DWH_DB/password=none:None\n"
            "OVESETUP_CONFIG/fqdn=str:engine.example.com\n"
            "OVESETUP_X/passwordLength=int:12\n"
            "OVESETUP_Y/password=str:\n")
    assert password_lines(text) == (b"OVESETUP_CONFIG/adminPassword=str:a=b:c",
                                    b"OVESETUP_DB/password=str:db-secret")


def test_a_seed_from_he_build_is_read_from_its_manifest(tmp_path: Path) -> None:
    written = write_site_seed(static_site(), Secrets(), tmp_path, env={"SOURCE_DATE_EPOCH": "0"})
    manifest = json.loads((written.directory / "manifest.json").read_text())
    assert manifest["fqdn"] == "engine.dc2.example.net"
    assert manifest["mac"] == "00:16:3e:00:02:10"
    facts = read_seed(written.iso)
    assert (facts.fqdn, facts.mac) == (manifest["fqdn"], manifest["mac"])
    assert facts.secret_lines == read_seed_facts(written.iso).secret_lines != ()


def test_an_iso_its_manifest_does_not_describe_is_refused(tmp_path: Path) -> None:
    written = write_site_seed(static_site(), Secrets(), tmp_path, env={"SOURCE_DATE_EPOCH": "0"})
    other = render_seed(dhcp_site(), Secrets())
    iso_of(other.iso_files(), written.iso)
    with pytest.raises(IntegrityError, match=r"is not the ISO its manifest\.json describes"):
        read_seed(written.iso)


def test_a_lone_iso_is_read_itself(tmp_path: Path) -> None:
    seed = render_seed(static_site(), Secrets())
    facts = read_seed(iso_of(seed.iso_files(), tmp_path / "seed.iso"))
    assert (facts.fqdn, facts.mac) == ("engine.dc2.example.net", "00:16:3e:00:02:10")
