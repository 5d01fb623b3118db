"""user-data, meta-data, network-config and the runner, parsed back from their rendered text."""

from __future__ import annotations

import os
import stat
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from builder.errors import InputError
from builder.repro import stable_mac
from builder.seed import runner
from builder.seed.answers import render_answers
from builder.seed.build import render_seed
from builder.seed.passwords import derive_salt, hash_root_password
from tests.fixtures.passwords import openssl_sha512_crypt, verify_sha512_crypt
from tests.fixtures.seeds import SSH_KEY, Secrets, dhcp_site, static_site


def user_data(site_seed: Any) -> dict[str, Any]:
    text = site_seed.user_data
    assert text.startswith("#cloud-config\n")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def files_by_path(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in document["write_files"]}


def test_dhcp_user_data_carries_identity_access_and_the_runner() -> None:
    seed = render_seed(dhcp_site(), Secrets())
    doc = user_data(seed)
    assert doc["hostname"] == "engine"
    assert doc["fqdn"] == "engine.dc1.example.com"
    assert doc["manage_etc_hosts"] is False
    assert doc["ssh_pwauth"] is True
    assert doc["disable_root"] is False
    assert doc["ssh_authorized_keys"] == [SSH_KEY]
    assert doc["timezone"] == "Europe/Paris"
    assert doc["ntp"] == {"enabled": True, "servers": ["ntp.dc1.example.com"]}
    assert doc["runcmd"] == [["/bin/sh", runner.RUNNER_PATH]]
    users = doc["chpasswd"]["users"]
    assert doc["chpasswd"]["expire"] is False
    assert [(u["name"], u["type"]) for u in users] == [("root", "hash")]
    assert verify_sha512_crypt("root-secret-1", users[0]["password"])
    assert "root-secret-1" not in seed.user_data


def test_write_files_modes_and_contents() -> None:
    site = dhcp_site()
    files = files_by_path(user_data(render_seed(site, Secrets())))
    assert {p: f["permissions"] for p, f in files.items()} == {
        "/etc/hosts": "0644",
        "/root/heanswers.conf": "0600",
        runner.RUNNER_PATH: "0700",
        "/etc/cloud/cloud.cfg.d/90-he-nocloud.cfg": "0644",
    }
    assert files["/root/heanswers.conf"]["content"] == render_answers(site, "admin-secret-1")
    assert files[runner.RUNNER_PATH]["content"] == runner.render_runner()
    datasources = yaml.safe_load(files["/etc/cloud/cloud.cfg.d/90-he-nocloud.cfg"]["content"])
    assert datasources == {"datasource_list": ["NoCloud", "None"]}


def test_etc_hosts_for_dhcp_and_static_sites() -> None:
    dhcp_hosts = files_by_path(user_data(render_seed(dhcp_site(), Secrets())))["/etc/hosts"]
    assert dhcp_hosts["content"] == (
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
        "192.0.2.11 host1.dc1.example.com host1\n"
    )
    static_hosts = files_by_path(user_data(render_seed(static_site(), Secrets())))["/etc/hosts"]
    assert static_hosts["content"].splitlines()[2:] == [
        "198.51.100.10 engine.dc2.example.net engine",
        "2001:db8:2::10 engine.dc2.example.net engine",
    ]


def test_root_hash_is_reproducible_and_salted_per_site() -> None:
    first = hash_root_password("dc1", "pw")
    assert first == hash_root_password("dc1", "pw")
    assert first != hash_root_password("dc2", "pw")
    assert first != hash_root_password("dc1", "pw2")
    salt = derive_salt("dc1")
    assert first == f"$6${salt}${first.rsplit('$', 1)[1]}"
    # OpenSSL's SHA-512 crypt gives the same string for the same salt and default rounds.
    assert first == openssl_sha512_crypt("pw", salt)


@pytest.mark.parametrize(("password", "message"), [
    ("", "site dc1: root_password: is empty"),
    ("a\x00b", "site dc1: root_password: contains a NUL character, which crypt cannot hash"),
])
def test_unhashable_root_passwords_are_refused(password: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        render_seed(dhcp_site(), Secrets(root_password=password))
    assert info.value.message == message


def test_ssh_key_with_a_hidden_second_line_is_refused() -> None:
    site = dhcp_site(ssh_keys=[SSH_KEY + "\nssh-ed25519 AAAAintruder"])
    with pytest.raises(InputError) as info:
        render_seed(site, Secrets())
    assert info.value.message == "site dc1: ssh_keys[0]: contains a line break"


def test_ntp_server_must_be_a_host_name_or_address() -> None:
    with pytest.raises(InputError) as info:
        render_seed(dhcp_site(ntp_servers=["pool.ntp.org iburst"]), Secrets())
    assert info.value.message == "site dc1: ntp_servers[0]: not a host name or IP address"


def test_static_network_config_v2() -> None:
    seed = render_seed(static_site(), Secrets())
    assert seed.network_config is not None
    assert yaml.safe_load(seed.network_config) == {
        "version": 2,
        "ethernets": {"eth0": {
            "match": {"macaddress": "00:16:3e:00:02:10"},
            "set-name": "eth0",
            "dhcp4": False,
            "dhcp6": False,
            "addresses": ["198.51.100.10/24", "2001:db8:2::10/64"],
            "gateway4": "198.51.100.1",
            "gateway6": "2001:db8:2::1",
            "nameservers": {"addresses": ["198.51.100.53", "2001:db8:2::53"],
                            "search": ["dc2.example.net", "example.net"]},
        }},
    }


def test_dhcp_site_has_no_network_config_and_a_derived_mac() -> None:
    seed = render_seed(dhcp_site(), Secrets())
    assert seed.network_config is None
    assert seed.mac == stable_mac("dc1")


def test_meta_data_has_instance_id_and_host_name() -> None:
    seed = render_seed(dhcp_site(), Secrets())
    assert yaml.safe_load(seed.meta_data) == {"instance-id": seed.instance_id,
                                              "local-hostname": "engine"}


def test_instance_id_changes_with_content_and_only_then() -> None:
    base = render_seed(dhcp_site(), Secrets()).instance_id
    assert render_seed(dhcp_site(), Secrets()).instance_id == base
    changed = [
        render_seed(dhcp_site(timezone="UTC"), Secrets()),
        render_seed(dhcp_site(), Secrets(admin_password="other")),
        render_seed(dhcp_site(), Secrets(root_password="other")),
        render_seed(dhcp_site(fqdn="engine2.dc1.example.com"), Secrets()),
    ]
    ids = {seed.instance_id for seed in changed}
    assert base not in ids and len(ids) == len(changed)


def test_instance_id_follows_what_the_seed_holds() -> None:
    # A DHCP site's MAC is on the NIC, not in the seed: the seed, and so its id, stay the same.
    moved = dhcp_site(network={"mode": "dhcp", "mac": "00:16:3e:00:00:01"})
    assert render_seed(moved, Secrets()).instance_id == render_seed(dhcp_site(),
                                                                    Secrets()).instance_id
    # A static site's MAC is in network-config: the id changes with it.
    static = static_site()
    net = static.network.model_copy(update={"mac": "00:16:3e:00:00:02"})
    assert (render_seed(static.model_copy(update={"network": net}), Secrets()).instance_id
            != render_seed(static, Secrets()).instance_id)


def test_pinned_instance_id_is_honoured() -> None:
    seed = render_seed(dhcp_site(instance_id="iid-dc1-pinned"), Secrets())
    assert seed.instance_id == "iid-dc1-pinned"
    assert yaml.safe_load(seed.meta_data)["instance-id"] == "iid-dc1-pinned"


def test_runner_holds_no_site_values() -> None:
    first = render_seed(dhcp_site(), Secrets())
    second = render_seed(static_site(), Secrets(admin_password="x", root_password="y"))
    script = files_by_path(user_data(first))[runner.RUNNER_PATH]["content"]
    assert script == files_by_path(user_data(second))[runner.RUNNER_PATH]["content"]
    assert "example" not in script and "admin-secret" not in script


def _runner_for_test(tmp: Path, port: str, engine_setup: Path) -> Path:
    """The shipped template rendered with paths inside `tmp` (the real ones are /root, /dev)."""
    source = resources.files("builder.seed").joinpath("data", runner.TEMPLATE).read_text()
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(source).render(
        port=port, answers=tmp / "heanswers.conf", appliance_answers=tmp / "appliance-answers",
        fallback_log=tmp / "fallback.log", network_tag=runner.NETWORK_TAG,
        engine_setup=engine_setup, success=runner.SUCCESS, fail=runner.FAIL,
        rc_prefix=runner.RC_PREFIX, network_wait=runner.NETWORK_WAIT_SECONDS,
    )
    script = tmp / "runner.sh"
    script.write_text(text)
    return script


def _stand_in_engine_setup(tmp: Path, rc: int) -> Path:
    # engine-setup cannot exist here: a stand-in that prints its arguments and exits with rc.
    path = tmp / "engine-setup"
    path.write_text(f'#!/bin/sh\necho "engine-setup $*"\necho "to stderr" >&2\nexit {rc}\n')
    path.chmod(stat.S_IRWXU)
    return path


def _run_runner_on_a_pty(script: Path) -> list[str]:
    """Run the script with a pty slave as its 'virtio port' (a character device, like one)."""
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        text = script.read_text().replace("__PORT__", port)
        script.write_text(text)
        subprocess.run(["/bin/sh", str(script)], check=False, timeout=60)
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return b"".join(chunks).decode().replace("\r", "").splitlines()


@pytest.mark.parametrize(("rc", "verdict"), [(0, runner.SUCCESS), (3, runner.FAIL)])
def test_runner_reports_network_output_verdict_and_code(tmp_path: Path, rc: int,
                                                        verdict: str) -> None:
    answers = tmp_path / "heanswers.conf"
    answers.write_text("[environment:default]\n")
    (tmp_path / "appliance-answers").write_text("")
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, rc))
    lines = _run_runner_on_a_pty(script)
    network = [line for line in lines if line.startswith(runner.NETWORK_TAG + " ")]
    assert network, lines
    assert lines[len(network):] == [
        f"engine-setup --offline --config-append={tmp_path}/appliance-answers "
        f"--config-append={answers}",
        "to stderr",
        verdict,
        f"{runner.RC_PREFIX}{rc}",
    ]
    assert not answers.exists()


def test_runner_skips_a_missing_appliance_answer_file(tmp_path: Path) -> None:
    answers = tmp_path / "heanswers.conf"
    answers.write_text("")
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, 0))
    lines = _run_runner_on_a_pty(script)
    assert f"engine-setup --offline --config-append={answers}" in lines


def test_runner_without_a_channel_logs_to_a_file(tmp_path: Path) -> None:
    script = _runner_for_test(tmp_path, str(tmp_path / "no-such-port"),
                              _stand_in_engine_setup(tmp_path, 0))
    subprocess.run(["/bin/sh", str(script)], check=True, timeout=60)
    log = (tmp_path / "fallback.log").read_text().splitlines()
    assert log[-2:] == [runner.SUCCESS, f"{runner.RC_PREFIX}0"]
