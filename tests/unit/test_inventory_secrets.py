"""Secret references: env:NAME, file:PATH (the policy: where, what kind, how big), prompt."""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from builder.errors import InputError
from builder.inventory.fields import parse
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.inventory.models import Site
from builder.inventory.problems import InvalidFields
from builder.inventory.secrets import (
    MAX_SECRET_BYTES,
    SecretFiles,
    SecretPathRefused,
    SiteSecrets,
    resolve_secrets,
)
from tests.fixtures.deadline import deadline


def make_site(root: str, admin: str = "env:ADMIN_PW") -> Site:
    return parse(Site, {"name": "dc1", "fqdn": "engine.dc1.example.com", "root_password": root,
                        "admin_password": admin})


def resolve_root(tmp_path: Path, reference: str, *allow: Path) -> str:
    site = make_site(reference)
    return resolve_secrets(site, base_dir=tmp_path / "inv", env={"ADMIN_PW": "a"}, prompt=None,
                           allow_from=allow).root_password


def refusal(tmp_path: Path, reference: str, *allow: Path) -> str:
    with pytest.raises(InputError) as info:
        resolve_root(tmp_path, reference, *allow)
    return info.value.message


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """tmp/inv/ (the inventory's directory, with secrets/root mode 0600) and tmp/outside/pw."""
    (tmp_path / "inv" / "secrets").mkdir(parents=True)
    secret = tmp_path / "inv" / "secrets" / "root"
    secret.write_text("inside\n")
    secret.chmod(0o600)
    (tmp_path / "outside").mkdir()
    outside = tmp_path / "outside" / "pw"
    outside.write_text("outside\n")
    outside.chmod(0o600)
    return tmp_path


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail instead of hanging forever if a read ever blocks (e.g. on a FIFO)."""
    with deadline(10):
        yield


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


def test_inside_the_inventory_directory_is_read(layout: Path) -> None:
    assert resolve_root(layout, "file:secrets/root") == "inside"
    assert resolve_root(layout, f"file:{layout / 'inv' / 'secrets' / 'root'}") == "inside"
    assert resolve_root(layout, "file:secrets/../secrets/root") == "inside"


def test_absolute_path_outside_needs_an_allowed_directory(layout: Path) -> None:
    outside = layout / "outside" / "pw"
    assert refusal(layout, f"file:{outside}") == (
        f"site dc1: root_password: file:{outside}: outside the inventory's directory "
        f"{layout / 'inv'}; allow its directory with --allow-secrets-from DIR")
    assert resolve_root(layout, f"file:{outside}", layout / "outside") == "outside"


def test_relative_path_may_not_climb_out_even_into_an_allowed_directory(layout: Path) -> None:
    assert refusal(layout, "file:../outside/pw", layout / "outside") == (
        f"site dc1: root_password: file:../outside/pw: climbs out of the inventory's directory "
        f"{layout / 'inv'} with '..'; use an absolute path and --allow-secrets-from DIR")


def test_a_symlink_out_of_the_inventory_directory_is_refused(layout: Path) -> None:
    (layout / "inv" / "secrets" / "link").symlink_to(layout / "outside" / "pw")
    (layout / "inv" / "etc").symlink_to("/etc")
    assert refusal(layout, "file:secrets/link") == (
        f"site dc1: root_password: file:secrets/link: outside the inventory's directory "
        f"{layout / 'inv'} (it resolves to {layout / 'outside' / 'pw'}); allow its directory "
        "with --allow-secrets-from DIR")
    assert "resolves to /etc/hostname" in refusal(layout, "file:etc/hostname")
    # Into a directory the operator allowed, a link is fine.
    assert resolve_root(layout, "file:secrets/link", layout / "outside") == "outside"


def test_allowed_directory_is_compared_after_resolving_its_links(layout: Path) -> None:
    (layout / "alias").symlink_to(layout / "outside")
    assert resolve_root(layout, f"file:{layout / 'outside' / 'pw'}", layout / "alias") == \
        "outside"
    assert resolve_root(layout, f"file:{layout / 'alias' / 'pw'}", layout / "outside") == \
        "outside"


def test_tilde_is_never_expanded(layout: Path) -> None:
    with pytest.raises(InvalidFields, match="'~' is not expanded"):
        make_site("file:~/pw")
    files = SecretFiles.create(layout / "inv")
    with pytest.raises(SecretPathRefused, match="'~' is not expanded"):
        files.locate("~root/pw", must_exist=True)


def test_missing_file(layout: Path) -> None:
    assert refusal(layout, "file:nope") == "site dc1: root_password: file:nope: does not exist"


@pytest.mark.parametrize(("make", "kind"), [
    (lambda path: path.mkdir(), "a directory, not a regular file"),
    (os.mkfifo, "a FIFO (named pipe), not a regular file"),
])
def test_only_regular_files_are_read(layout: Path, no_hang: None,
                                     make: Callable[[Path], None], kind: str) -> None:
    target = layout / "inv" / "special"
    make(target)
    assert refusal(layout, "file:special") == \
        f"site dc1: root_password: cannot read {target}: {kind}"


def test_devices_are_refused_without_reading(layout: Path, no_hang: None) -> None:
    assert refusal(layout, "file:/dev/zero", Path("/dev")) == \
        "site dc1: root_password: cannot read /dev/zero: a character device, not a regular file"


def test_size_limit(layout: Path) -> None:
    big = layout / "inv" / "big"
    big.write_text("x" * (MAX_SECRET_BYTES + 1))
    assert refusal(layout, "file:big") == (
        f"site dc1: root_password: cannot read {big}: 4,097 bytes, larger than the limit of "
        "4,096 bytes")
    big.write_text("x" * MAX_SECRET_BYTES)
    assert resolve_root(layout, "file:big") == "x" * MAX_SECRET_BYTES


def test_a_file_others_can_read_gets_a_warning(layout: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    secret = layout / "inv" / "secrets" / "root"
    with caplog.at_level(logging.WARNING):
        resolve_root(layout, "file:secrets/root")
    assert caplog.messages == []
    secret.chmod(0o640)
    with caplog.at_level(logging.WARNING):
        resolve_root(layout, "file:secrets/root")
    secret.chmod(0o604)
    with caplog.at_level(logging.WARNING):
        resolve_root(layout, "file:secrets/root")
    assert caplog.messages == [
        f"site dc1: root_password: {secret} is readable by group (mode 0640): chmod 600 it",
        f"site dc1: root_password: {secret} is readable by others (mode 0604): chmod 600 it",
    ]
    assert "inside" not in " ".join(caplog.messages)


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
        secrets = inv.resolve_secrets(site, env={}, prompt=None)
        assert secrets.root_password.startswith("demo-only-")
        assert secrets.admin_password != secrets.root_password


# ----- the same policy in `inventory check` (no secret is read) -----


def inventory(layout: Path, root: str) -> Path:
    path = layout / "inv" / "inventory.yaml"
    path.write_text(textwrap.dedent(f"""\
        sites:
          dc1:
            fqdn: engine.dc1.example.com
            root_password: "{root}"
            admin_password: env:ADMIN_PW
        """))
    return path


def check_problems(path: Path, *allow: Path) -> list[str]:
    try:
        load_inventory(path, allow_secrets_from=allow)
    except InputError as exc:
        return [line.removeprefix(f"{path}:") for line in exc.problems]
    return []


def test_check_applies_the_policy_with_file_and_line(layout: Path) -> None:
    outside = layout / "outside" / "pw"
    path = inventory(layout, f"file:{outside}")
    assert check_problems(path) == [
        f"4: site dc1: root_password: file:{outside}: outside the inventory's directory "
        f"{layout / 'inv'}; allow its directory with --allow-secrets-from DIR"]
    assert check_problems(path, layout / "outside") == []
    assert check_problems(inventory(layout, "file:../outside/pw"))[0].startswith(
        "4: site dc1: root_password: file:../outside/pw: climbs out of")
    (layout / "inv" / "link").symlink_to(outside)
    assert "(it resolves to" in check_problems(inventory(layout, "file:link"))[0]


def test_check_does_not_need_the_secret_to_exist(layout: Path) -> None:
    """CI can check an inventory whose secrets live only on the deploy host."""
    assert check_problems(inventory(layout, "file:secrets/not-here-yet")) == []


def test_inventory_resolves_with_the_directories_it_was_loaded_with(layout: Path) -> None:
    path = inventory(layout, f"file:{layout / 'outside' / 'pw'}")
    loaded = load_inventory(path, allow_secrets_from=[layout / "outside"])
    secrets = loaded.resolve_secrets(loaded.sites["dc1"], env={"ADMIN_PW": "a"}, prompt=None)
    assert secrets.root_password == "outside"


def test_real_paths_from_the_directory_memo_are_realpaths(layout: Path) -> None:
    """SecretFiles resolves each directory once: what it returns is still os.path.realpath's
    answer, for plain files, missing ones, links at the leaf, links among the directories, and a
    leaf that becomes a link after its directory was remembered."""
    inv = layout / "inv"
    (inv / "alias").symlink_to(inv / "secrets")
    (inv / "secrets" / "leaf").symlink_to(layout / "outside" / "pw")
    (inv / "secrets" / "dangling").symlink_to(layout / "nowhere")
    files = SecretFiles.create(inv)
    names = ["secrets/root", "secrets/missing", "secrets/leaf", "secrets/dangling", "alias/root",
             "alias/leaf", "alias/missing", "secrets/root/below", "nodir/x", "secrets"]
    for _ in range(2):
        for name in names:
            written = os.path.normpath(inv / name)
            assert files.real_path(written, strict=False) == os.path.realpath(written), name
    assert set(files.real_dirs) == {str(inv / "secrets"), str(inv / "alias"), str(inv)}
    (inv / "secrets" / "root").unlink()
    (inv / "secrets" / "root").symlink_to(layout / "outside" / "pw")
    assert files.real_path(str(inv / "secrets" / "root"), strict=True) == \
        str(layout / "outside" / "pw")
    with pytest.raises(SecretPathRefused, match="does not exist"):
        files.real_path(str(inv / "secrets" / "missing"), strict=True)
    with pytest.raises(SecretPathRefused, match="does not exist"):
        files.real_path(str(inv / "alias" / "dangling"), strict=True)
