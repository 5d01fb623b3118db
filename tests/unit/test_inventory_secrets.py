"""Secret references: env:NAME, file:PATH (relative to the inventory), prompt; and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import InputError
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.inventory.models import Site
from builder.inventory.secrets import SiteSecrets, resolve_secrets


def make_site(root: str, admin: str = "env:ADMIN_PW") -> Site:
    return Site(name="dc1", fqdn="engine.dc1.example.com", root_password=root,
                admin_password=admin)


def test_env_references() -> None:
    env = {"ROOT_PW": "r00t pw", "ADMIN_PW": "adm'in"}
    secrets = resolve_secrets(make_site("env:ROOT_PW"), base_dir=Path("/nonexistent"), env=env,
                              prompt=None)
    assert secrets == SiteSecrets(root_password="r00t pw", admin_password="adm'in")


@pytest.mark.parametrize("env", [{}, {"ROOT_PW": ""}], ids=["unset", "empty"])
def test_env_reference_unset_or_empty(env: dict[str, str]) -> None:
    with pytest.raises(InputError) as info:
        resolve_secrets(make_site("env:ROOT_PW"), base_dir=Path("/"), env=env, prompt=None)
    assert info.value.message == "site dc1: root_password: environment variable ROOT_PW is not set"


def test_file_reference_is_relative_to_the_inventory_and_loses_one_newline(
    tmp_path: Path,
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "root").write_text("pw with # and 'quotes'\n\n")
    (tmp_path / "admin").write_text("admin")
    site = make_site("file:secrets/root", "file:admin")
    secrets = resolve_secrets(site, base_dir=tmp_path, env={}, prompt=None)
    assert secrets.root_password == "pw with # and 'quotes'\n"
    assert secrets.admin_password == "admin"


def test_file_reference_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("abs\n")
    site = make_site(f"file:{tmp_path / 'pw'}", f"file:{tmp_path / 'pw'}")
    assert resolve_secrets(site, base_dir=Path("/elsewhere"), env={}, prompt=None).root_password \
        == "abs"


def test_file_reference_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        resolve_secrets(make_site("file:nope"), base_dir=tmp_path, env={}, prompt=None)
    assert info.value.message == (
        f"site dc1: root_password: cannot read {tmp_path / 'nope'}: No such file or directory")


@pytest.mark.parametrize("content", ["", "\n"], ids=["empty", "newline only"])
def test_file_reference_empty(tmp_path: Path, content: str) -> None:
    (tmp_path / "pw").write_text(content)
    with pytest.raises(InputError) as info:
        resolve_secrets(make_site("file:pw"), base_dir=tmp_path, env={}, prompt=None)
    assert info.value.message == f"site dc1: root_password: file {tmp_path / 'pw'} is empty"


def test_file_reference_not_text(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError) as info:
        resolve_secrets(make_site("file:pw"), base_dir=tmp_path, env={}, prompt=None)
    assert info.value.message == (
        f"site dc1: root_password: cannot read {tmp_path / 'pw'}: not UTF-8 text")


def test_file_reference_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        resolve_secrets(make_site("file:."), base_dir=tmp_path, env={}, prompt=None)
    assert info.value.message == (
        f"site dc1: root_password: cannot read {tmp_path}: Is a directory")


def test_prompt_reference_asks_with_a_label() -> None:
    asked: list[str] = []

    def answer(label: str) -> str:
        asked.append(label)
        return "typed"

    site = make_site("prompt", "prompt")
    secrets = resolve_secrets(site, base_dir=Path("/"), env={}, prompt=answer)
    assert secrets == SiteSecrets(root_password="typed", admin_password="typed")
    assert asked == ["site dc1: root password", "site dc1: engine admin password"]


def test_prompt_without_a_terminal() -> None:
    with pytest.raises(InputError) as info:
        resolve_secrets(make_site("prompt"), base_dir=Path("/"), env={"ADMIN_PW": "x"},
                        prompt=None)
    assert info.value.message == "site dc1: root_password: 'prompt' needs a terminal"
    assert info.value.hint == "run it interactively, or use env:NAME or file:PATH"


def test_empty_prompt_answer() -> None:
    with pytest.raises(InputError, match="site dc1: root_password: the answer is empty"):
        resolve_secrets(make_site("prompt"), base_dir=Path("/"), env={}, prompt=lambda _: "")


def test_repr_never_shows_values() -> None:
    secrets = SiteSecrets(root_password="hunter2", admin_password="swordfish")
    for text in (repr(secrets), str(secrets), f"{secrets}", repr([secrets])):
        assert "hunter2" not in text and "swordfish" not in text


def test_bundled_example_secrets_resolve() -> None:
    inv = load_inventory(DEFAULT_INVENTORY)
    for site in inv.sites.values():
        secrets = resolve_secrets(site, base_dir=inv.base_dir, env={}, prompt=None)
        assert secrets.root_password.startswith("demo-only-")
        assert secrets.admin_password != secrets.root_password
