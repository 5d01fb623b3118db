"""he-launch --inventory: the seed rendered on the spot follows the same `file:` secret policy
as `he-build seed` (one function, the inventory's directory as the base)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from builder.errors import InputError
from builder.launch.site_seed import render_site_seed
from builder.seed.answers import check_answers

ENV = {"SOURCE_DATE_EPOCH": "0", "ADMIN_PW": "admin-pw"}


def inventory(tmp_path: Path, root_ref: str) -> Path:
    path = tmp_path / "site" / "inventory.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(f"""\
        sites:
          dc1:
            fqdn: engine.dc1.example.com
            root_password: "{root_ref}"
            admin_password: env:ADMIN_PW
        """))
    return path


def test_relative_secret_is_read_from_the_inventory_directory(tmp_path: Path) -> None:
    path = inventory(tmp_path, "file:root-pw")
    (path.parent / "root-pw").write_text("root\n")
    (path.parent / "root-pw").chmod(0o600)
    (tmp_path / "work").mkdir()  # the launcher's work directory, made before the seed
    plan = render_site_seed(path, "dc1", tmp_path / "work", env=ENV)
    assert plan.iso.is_file() and plan.fqdn == "engine.dc1.example.com"
    answers = (tmp_path / "work" / "seed" / "dc1" / "heanswers.conf").read_text()
    assert check_answers(answers).environment["OVESETUP_CONFIG/adminPassword"] == "admin-pw"


def test_secret_outside_needs_allow_secrets_from(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "root-pw").write_text("root\n")
    (vault / "root-pw").chmod(0o600)
    path = inventory(tmp_path, f"file:{vault / 'root-pw'}")
    with pytest.raises(InputError) as info:
        render_site_seed(path, "dc1", tmp_path / "work", env=ENV)
    assert "allow its directory with --allow-secrets-from DIR" in info.value.problems[0]
    assert not (tmp_path / "work").exists()
    (tmp_path / "work").mkdir()
    plan = render_site_seed(path, "dc1", tmp_path / "work", env=ENV, allow_secrets_from=[vault])
    assert plan.iso.is_file()
