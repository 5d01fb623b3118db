"""`he-build inventory check|schema` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.inventory.load import DEFAULT_INVENTORY
from builder.repro import stable_mac

BAD = """\
sites:
  dc1:
    fqdn: engine_dc1
    root_password: prompt
    admin_password: prompt
    vcpus: 0
"""


def test_check_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SITE", "FQDN", "NETWORK", "ADDRESS", "OR", "MAC"]
    assert lines[1].split() == ["dc1", "engine.dc1.example.com", "dhcp", stable_mac("dc1")]
    assert lines[2].split() == ["dc2", "engine.dc2.example.net", "static", "198.51.100.10/24,",
                                "2001:db8:2::10/64"]
    assert lines[3] == f"{DEFAULT_INVENTORY}: 2 sites, no problems"


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["inventory"] == str(DEFAULT_INVENTORY)
    assert [row["site"] for row in data["sites"]] == ["dc1", "dc2"]
    assert data["sites"][1] == {"site": "dc2", "fqdn": "engine.dc2.example.net",
                                "mode": "static", "mac": "00:16:3e:00:02:10",
                                "address": "198.51.100.10/24, 2001:db8:2::10/64"}


def test_check_bad_inventory_exits_2_with_problems_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(BAD)
    assert main(["inventory", "check", "--inventory", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"he-build: error: inventory {path} has 2 problems",
        f"he-build: {path}:3: site dc1: fqdn: not a fully qualified domain name: 'engine_dc1'",
        f"he-build: {path}:6: site dc1: vcpus: must be at least 1, got 0",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yaml"]


def test_check_bad_inventory_json_is_the_only_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(BAD)
    assert main(["--json", "inventory", "check", "--inventory", str(path)]) == 2
    data = json.loads(capsys.readouterr().out)  # the whole of stdout is one JSON document
    assert data["ok"] is False and data["exit_code"] == 2 and data["kind"] == "InputError"
    assert data["problems"] == [
        f"{path}:3: site dc1: fqdn: not a fully qualified domain name: 'engine_dc1'",
        f"{path}:6: site dc1: vcpus: must be at least 1, got 0",
    ]


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"defaults", "sites"}


def test_a_key_with_line_breaks_cannot_forge_output_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(BAD.replace("    vcpus: 0\n",
                                '    "x\\nhe-build: all good\\r\\u2028\\u202e": 1\n'))
    assert main(["inventory", "check", "--inventory", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"he-build: error: inventory {path} has 2 problems",
        f"he-build: {path}:3: site dc1: fqdn: not a fully qualified domain name: 'engine_dc1'",
        f"he-build: {path}:6: site dc1: x\\x0ahe-build: all good\\x0d\\u2028\\u202e: "
        "unknown field",
    ]


def test_check_takes_the_allowed_secret_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = tmp_path / "vault"
    secrets.mkdir()
    path = tmp_path / "inv" / "inventory.yaml"
    path.parent.mkdir()
    path.write_text(BAD.replace("engine_dc1", "engine.dc1.example.com")
                    .replace("    vcpus: 0\n", "")
                    .replace("root_password: prompt", f"root_password: file:{secrets}/pw"))
    assert main(["inventory", "check", "--inventory", str(path)]) == 2
    assert "--allow-secrets-from" in capsys.readouterr().err
    assert main(["inventory", "check", "--inventory", str(path),
                 "--allow-secrets-from", str(secrets)]) == 0
