"""`he-build seed` on the bundled example inventory, through main() as a user runs it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.errors import ExitCode


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["seed", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_all_sites_with_dhcp_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, "--all", "--out", str(tmp_path), "--dhcp-export")
    assert code == ExitCode.OK
    sites = data["sites"]
    assert isinstance(sites, list)
    assert [s["site"] for s in sites] == ["dc1", "dc2"]
    for site in sites:
        for entry in site["files"]:
            assert Path(entry["path"]).is_file()
    assert sorted(p.name for p in (tmp_path / "dhcp").iterdir()) == [
        "dhcpd.conf", "dnsmasq.conf", "records.zone"]
    dhcp = data["dhcp"]
    assert isinstance(dhcp, dict)
    assert "dhcp-host=00:16:3e:" in dhcp["dnsmasq"]
    assert "engine.dc2.example.net. IN A 198.51.100.10" in dhcp["zone"]


def test_text_table_has_one_row_a_site_with_mac_iso_and_its_checksum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["seed", "--all", "--out", str(tmp_path)]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SITE", "MAC", "ISO", "SHA256"]
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == ["dc1", "dc2"]
    for site, mac, iso, digest in rows:
        manifest = json.loads((tmp_path / site / "manifest.json").read_text())
        assert (mac, iso) == (manifest["mac"], str(tmp_path / site / "seed.iso"))
        assert digest == hashlib.sha256(Path(iso).read_bytes()).hexdigest()


def test_unknown_site_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--site", "nope", "--out", str(tmp_path)]) == ExitCode.BAD_INPUT
    assert "has no site nope" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_secrets_never_reach_the_output(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    secrets_dir = Path(__file__).resolve().parents[2] / "examples" / "secrets"
    secrets = [p.read_text().strip() for p in secrets_dir.glob("dc*-password")]
    main(["seed", "--all", "--out", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert secrets and not any(s in captured.out + captured.err for s in secrets)


def test_a_site_run_publishes_a_new_set_keeping_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, first = run_json(capsys, "--all", "--out", str(tmp_path))
    assert code == ExitCode.OK and first["generation"] == 1 and first["set"] == ["dc1", "dc2"]
    dc2_iso = (tmp_path / "dc2" / "seed.iso").stat().st_ino
    assert main(["seed", "--site", "dc1", "--out", str(tmp_path), "--json"]) == ExitCode.OK
    captured = capsys.readouterr()
    second = json.loads(captured.out)
    assert second["generation"] == 2 and second["set"] == ["dc1", "dc2"]
    assert [s["site"] for s in second["sites"]] == ["dc1"]
    assert (tmp_path / "dc2" / "seed.iso").stat().st_ino == dc2_iso
    assert f"published {tmp_path}: generation 2, 2 sites (1 rendered, 1 unchanged)" in (
        captured.err)


def test_an_out_that_is_not_ours_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "photos").mkdir()
    assert main(["seed", "--all", "--out", str(tmp_path)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"he-build: error: --out {tmp_path}: not empty and not made by he-build seed "
                   "(photos); choose another --out or empty it (he-build leaves it alone)"]
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]
