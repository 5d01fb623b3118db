"""Root passwords hashed while the inventory loads (builder.seed.ahead): each loaded site
comes back with the very hash its seed would make, or without one (then the seed hashes it
and reports a password that cannot be hashed, as before); the command's seeds are the same
bytes either way. A batch too small for a pool starts no thread (tests/test_import_rules.py
checks that a two-site run does not even import concurrent.futures)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.errors import InputError
from builder.inventory.load import load_inventory
from builder.inventory.secrets import SiteSecrets
from builder.seed.ahead import HashesAhead
from builder.seed.master import POOL_THRESHOLD, build_seeds, render_seed
from builder.seed.passwords import HashedSecrets, hash_root_password

EPOCH = "1700000000"


def write_inventory(directory: Path, count: int, *, root: str = "env:ROOT_PW",
                    admin: str = "env:ADMIN_PW") -> Path:
    lines = ["sites:"]
    for index in range(count):
        lines += [f"  s{index:03d}:", f"    fqdn: engine.s{index:03d}.example.com",
                  f"    root_password: {root}", f"    admin_password: {admin}"]
    path = directory / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


ENV = {"ROOT_PW": "r00t pw", "ADMIN_PW": "adm'in pw"}


def test_a_loaded_site_carries_the_hash_its_seed_would_make(tmp_path: Path) -> None:
    with HashesAhead(ENV) as ahead:
        inventory = load_inventory(write_inventory(tmp_path, POOL_THRESHOLD + 2),
                                   on_site=ahead.site_loaded)
        ahead.stop(finish=True)
    plain = SiteSecrets("r00t pw", "adm'in pw")
    for site in inventory.sites.values():
        secrets = ahead.secrets_of(site)
        assert isinstance(secrets, HashedSecrets)
        assert secrets.root_password == "r00t pw" and secrets.admin_password == "adm'in pw"
        assert secrets.root_hash == hash_root_password(site.name, "r00t pw")
        assert "r00t" not in repr(secrets) and "$6$" not in str(secrets)
        assert render_seed(site, secrets) == render_seed(site, plain)


def test_a_batch_too_small_for_a_pool_is_hashed_by_its_seeds(tmp_path: Path) -> None:
    with HashesAhead(ENV) as ahead:
        inventory = load_inventory(write_inventory(tmp_path, POOL_THRESHOLD - 1),
                                   on_site=ahead.site_loaded)
        ahead.stop(finish=True)
    found = [ahead.secrets_of(site) for site in inventory.sites.values()]
    assert found == [SiteSecrets("r00t pw", "adm'in pw")] * (POOL_THRESHOLD - 1)


def test_stop_drops_the_hashes_not_begun(tmp_path: Path) -> None:
    """400 sites queued in well under a millisecond each, 400 crypts of over a millisecond
    each: once stopped, most were never hashed, and every hash made is right."""
    inventory = load_inventory(write_inventory(tmp_path, 400))
    ahead = HashesAhead(ENV)
    for site in inventory.sites.values():
        ahead.site_loaded(site, inventory.secret_files)
    ahead.stop()
    found = {site.name: ahead.secrets_of(site) for site in inventory.sites.values()}
    made = {name: s for name, s in found.items() if isinstance(s, HashedSecrets)}
    assert len(made) < 400
    assert all(isinstance(s, SiteSecrets) for name, s in found.items() if name not in made)
    assert all(s.root_hash == hash_root_password(name, "r00t pw") for name, s in made.items())


def test_a_site_not_wanted_or_asked_for_at_a_prompt_is_left_to_the_usual_path(
    tmp_path: Path,
) -> None:
    with HashesAhead(ENV, wanted={"s001"}) as ahead:
        inventory = load_inventory(write_inventory(tmp_path, 2), on_site=ahead.site_loaded)
    assert ahead.secrets_of(inventory.sites["s000"]) is None
    assert ahead.secrets_of(inventory.sites["s001"]) is not None
    prompted = tmp_path / "prompted"
    prompted.mkdir()
    with HashesAhead(ENV) as ahead:
        inventory = load_inventory(write_inventory(prompted, 1, root="prompt"),
                                   on_site=ahead.site_loaded)
    assert ahead.secrets_of(inventory.sites["s000"]) is None


def test_a_password_that_cannot_be_hashed_is_reported_by_the_seed(tmp_path: Path) -> None:
    env = {**ENV, "ROOT_PW": "x" * 600}  # over libxcrypt's 511 bytes
    with HashesAhead(env) as ahead:
        inventory = load_inventory(write_inventory(tmp_path, POOL_THRESHOLD),
                                   on_site=ahead.site_loaded)
        ahead.stop(finish=True)
    for site in inventory.sites.values():
        secrets = ahead.secrets_of(site)
        assert isinstance(secrets, SiteSecrets)  # not hashed: the thread's hash failed
        with pytest.raises(InputError, match=f"site {site.name}: root_password"):
            render_seed(site, secrets)


def test_the_command_writes_the_seeds_the_library_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 sites (a process pool's batch) through `he-build seed --all`, hashed ahead where the
    load left time, and through build_seeds with plain secrets: the same bytes."""
    path = write_inventory(tmp_path, 20)
    for name, value in {**ENV, "SOURCE_DATE_EPOCH": EPOCH}.items():
        monkeypatch.setenv(name, value)
    assert main(["seed", "--all", "--inventory", str(path), "--out",
                 str(tmp_path / "cli")]) == 0
    inventory = load_inventory(path)
    jobs = [(site, SiteSecrets("r00t pw", "adm'in pw")) for site in inventory.sites.values()]
    build_seeds(jobs, tmp_path / "lib", epoch=int(EPOCH))
    for site in inventory.sites:
        for file in sorted((tmp_path / "lib" / site).iterdir()):
            assert (tmp_path / "cli" / site / file.name).read_bytes() == file.read_bytes()


def readable_root_file(directory: Path) -> Path:
    secret = directory / "root"
    secret.write_text("r00t pw\n")
    secret.chmod(0o644)
    return secret


def warnings_about(secret: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in caplog.messages if f"{secret} is readable by group and others" in m]


@pytest.mark.parametrize(("admin", "code"), [("env:ADMIN_PW", 0), ("env:MISSING", 2),
                                             ("prompt", 2)],
                         ids=["read", "other secret unset", "other secret at a prompt"])
def test_a_secret_file_others_can_read_is_warned_about_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    admin: str, code: int,
) -> None:
    """Whether the sites' other secret is read, unset or asked for at a prompt (no terminal
    here), each file is warned about once, when its site's secrets are used: every site's when
    all can be read, the first site's when it stops the command."""
    secret = readable_root_file(tmp_path)
    path = write_inventory(tmp_path, POOL_THRESHOLD, root="file:root", admin=admin)
    monkeypatch.setenv("ADMIN_PW", "adm'in pw")
    monkeypatch.delenv("MISSING", raising=False)
    with caplog.at_level(logging.WARNING):
        assert main(["seed", "--all", "--inventory", str(path), "--out",
                     str(tmp_path / "out")]) == code
    assert len(warnings_about(secret, caplog)) == (POOL_THRESHOLD if code == 0 else 1)


def test_what_reading_ahead_gave_is_reported_when_the_secrets_are_asked_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    secret = readable_root_file(tmp_path)
    path = write_inventory(tmp_path, 2, root="file:root", admin="env:MISSING")
    with caplog.at_level(logging.WARNING), HashesAhead(ENV) as ahead:
        inventory = load_inventory(path, on_site=ahead.site_loaded)
        ahead.stop()
        assert warnings_about(secret, caplog) == []
        for count, site in enumerate(inventory.sites.values(), start=1):
            with pytest.raises(InputError, match=f"site {site.name}: admin_password: "
                                                 "environment variable MISSING is not set"):
                ahead.secrets_of(site)
            assert len(warnings_about(secret, caplog)) == count


def test_an_inventory_that_does_not_load_warns_about_no_secret_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    secret = readable_root_file(tmp_path)
    path = write_inventory(tmp_path, 3, root="file:root")
    path.write_text(path.read_text().replace("engine.s002.example.com", "not a name"))
    with caplog.at_level(logging.WARNING), HashesAhead(ENV) as ahead, \
            pytest.raises(InputError, match="has 1 problem"):
        load_inventory(path, on_site=ahead.site_loaded)
    assert warnings_about(secret, caplog) == []
