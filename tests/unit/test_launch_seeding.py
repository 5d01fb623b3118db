"""What he-launch reads from a seed ISO: the FQDN, the NIC's MAC and the answer file's password
lines (for the overlay scan), from seeds mastered by the project's own ISO writer."""

from __future__ import annotations

from pathlib import Path

import yaml

from builder.launch.seeding import password_lines, read_seed_facts
from builder.seed.iso import write_iso
from builder.seed.master import render_seed
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
