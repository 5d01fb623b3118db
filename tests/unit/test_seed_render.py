"""user-data, meta-data, network-config and the runner, parsed back from their rendered text."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
import sys
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from builder.errors import InputError
from builder.inventory.problems import InvalidFields
from builder.inventory.syntax import CONTROL_RE
from builder.repro import stable_mac
from builder.resources import SEED_RUNNER_TEMPLATE
from builder.seed import protocol, runner
from builder.seed.answers import render_answers
from builder.seed.documents import dump_yaml
from builder.seed.master import render_seed
from builder.seed.network import NM_KEYFILE, NM_PROFILE, render_nm_keyfile
from builder.seed.passwords import derive_salt, hash_root_password
from builder.seed.userdata import SSHD_DROP_IN, build_user_data, render_user_data
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
    assert doc["ssh_pwauth"] is False  # root_ssh: key, the default
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
        NM_KEYFILE: "0600",
        SSHD_DROP_IN: "0600",
        runner.RUNNER_PATH: "0700",
        "/etc/cloud/cloud.cfg.d/90-he-nocloud.cfg": "0644",
    }
    assert files[NM_KEYFILE]["content"] == render_nm_keyfile(site)
    assert files[runner.RUNNER_PATH]["content"] == runner.render_runner()
    datasources = yaml.safe_load(files["/etc/cloud/cloud.cfg.d/90-he-nocloud.cfg"]["content"])
    assert datasources == {"datasource_list": ["NoCloud", "None"]}


def test_the_answer_file_is_its_own_file_on_the_seed_never_in_user_data() -> None:
    """cloud-init keeps user-data on the engine's disk; the answer file stays beside it."""
    site = dhcp_site()
    seed = render_seed(site, Secrets())
    assert "admin-secret-1" not in seed.user_data + seed.meta_data
    iso_files = dict(seed.iso_files())
    assert iso_files[runner.ANSWERS_ON_SEED] == render_answers(site, "admin-secret-1").encode()
    assert sorted(iso_files) == ["heanswers.conf", "meta-data", "user-data"]


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


def test_the_control_character_pattern_is_unicodes_control_surrogate_and_separator_ones() -> None:
    """The pattern the inventory and the seed's render-time check share: categories Cc and
    Cs, and the line and paragraph separators (Zl, Zp), exactly."""
    differ = [code for code in range(sys.maxunicode + 1)
              if bool(CONTROL_RE.search(chr(code)))
              != (unicodedata.category(chr(code)) in ("Cc", "Cs", "Zl", "Zp"))]
    assert differ == []


def test_ssh_key_with_a_hidden_second_line_is_refused() -> None:
    """The inventory refuses it first (tests/unit/test_inventory_problems.py)."""
    with pytest.raises(InvalidFields, match="control character U\\+000A"):
        dhcp_site(ssh_keys=[SSH_KEY + "\nssh-ed25519 AAAAintruder"])


def test_ntp_server_must_be_a_host_name_or_address() -> None:
    """The inventory refuses it first (tests/unit/test_inventory_problems.py)."""
    with pytest.raises(InvalidFields, match="not a host name or IP address"):
        dhcp_site(ntp_servers=["pool.ntp.org iburst"])


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


def keyfile(site: Any) -> configparser.ConfigParser:
    """The NetworkManager keyfile of `site` as user-data carries it (an INI-like file)."""
    files = files_by_path(user_data(render_seed(site, Secrets())))
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(files[NM_KEYFILE]["content"])
    return parser


def test_static_site_keyfile_matches_the_mac_and_carries_both_families() -> None:
    profile = keyfile(static_site())
    assert dict(profile["connection"]) == {
        "id": NM_PROFILE, "uuid": profile["connection"]["uuid"], "type": "ethernet",
        "autoconnect": "true", "zone": "public"}
    assert dict(profile["ethernet"]) == {"mac-address": "00:16:3E:00:02:10"}
    assert dict(profile["ipv4"]) == {
        "method": "manual", "address1": "198.51.100.10/24", "gateway": "198.51.100.1",
        "dns": "198.51.100.53;", "dns-search": "dc2.example.net;example.net;"}
    assert dict(profile["ipv6"]) == {
        "method": "manual", "address1": "2001:db8:2::10/64", "gateway": "2001:db8:2::1",
        "dns": "2001:db8:2::53;"}
    # Reproducible: the profile's uuid is derived from the site, not random.
    assert keyfile(static_site())["connection"]["uuid"] == profile["connection"]["uuid"]


def test_a_family_the_site_does_not_configure_is_disabled() -> None:
    v4 = static_site(network={"mode": "static", "ipv4": {"address": "192.0.2.10/24"},
                              "dns_servers": ["192.0.2.53"], "search_domains": ["example.net"]})
    assert dict(keyfile(v4)["ipv4"]) == {"method": "manual", "address1": "192.0.2.10/24",
                                         "dns": "192.0.2.53;", "dns-search": "example.net;"}
    assert dict(keyfile(v4)["ipv6"]) == {"method": "disabled"}
    v6 = static_site(network={"mode": "static", "ipv6": {"address": "2001:db8::10/64"},
                              "dns_servers": ["2001:db8::53"], "search_domains": ["example.net"]})
    assert dict(keyfile(v6)["ipv4"]) == {"method": "disabled"}
    assert dict(keyfile(v6)["ipv6"]) == {"method": "manual", "address1": "2001:db8::10/64",
                                         "dns": "2001:db8::53;", "dns-search": "example.net;"}


def test_dhcp_site_keyfile_asks_dhcp_on_the_derived_mac() -> None:
    profile = keyfile(dhcp_site())
    assert profile["ethernet"]["mac-address"] == stable_mac("dc1").upper()
    assert dict(profile["ipv4"]) == {"method": "auto"}
    assert dict(profile["ipv6"]) == {"method": "disabled"}


@pytest.mark.parametrize(("network", "message"), [
    ({"mode": "static", "ipv4": {"address": "192.0.2.10/24"}, "dns_servers": ["2001:db8::53"]},
     "site dc1: network.dns_servers[0]: 2001:db8::53 is IPv6, but the site configures no "
     "IPv6 address"),
    ({"mode": "dhcp", "dns_servers": ["192.0.2.53", "2001:db8::53"]},
     "site dc1: network.dns_servers[1]: 2001:db8::53 is IPv6, but the site configures no "
     "IPv6 address"),
    ({"mode": "static", "ipv6": {"address": "2001:db8::10/64"}, "dns_servers": ["192.0.2.53"]},
     "site dc1: network.dns_servers[0]: 192.0.2.53 is IPv4, but the site configures no "
     "IPv4 address"),
])
def test_a_dns_server_of_an_unconfigured_family_is_refused(network: dict[str, Any],
                                                           message: str) -> None:
    with pytest.raises(InputError) as info:
        render_seed(dhcp_site(network=network), Secrets())
    assert info.value.message == message


@pytest.mark.parametrize(("root_ssh", "pwauth", "permit", "passwords"), [
    ("key", False, "prohibit-password", "no"),
    ("password", True, "yes", "yes"),
])
def test_root_ssh_decides_password_logins(root_ssh: str, pwauth: bool, permit: str,
                                          passwords: str) -> None:
    doc = user_data(render_seed(dhcp_site(root_ssh=root_ssh), Secrets()))
    assert doc["ssh_pwauth"] is pwauth
    drop_in = files_by_path(doc)[SSHD_DROP_IN]["content"].splitlines()
    assert [line for line in drop_in if not line.startswith("#")] == [
        f"PermitRootLogin {permit}", f"PasswordAuthentication {passwords}"]


@pytest.mark.parametrize("site", [
    dhcp_site(), static_site(), dhcp_site(root_ssh="password", ntp_servers=[], ssh_keys=[]),
    static_site(hosts_entries=[], timezone="America/Argentina/Buenos_Aires",
                ssh_keys=[SSH_KEY, SSH_KEY.replace("operator@", "ünïcode-öperator@")]),
], ids=["dhcp", "static", "password-no-ntp-no-keys", "no-hosts-two-keys"])
def test_user_data_in_parts_is_one_dump_of_the_whole_document(site: Any) -> None:
    root_hash = hash_root_password(site.name, "root-secret-1")
    whole = dump_yaml(build_user_data(site, root_hash=root_hash), header="#cloud-config\n")
    assert render_user_data(site, root_hash=root_hash) == whole


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
    # A DHCP site's MAC is in its NetworkManager profile: the id changes with it.
    moved = dhcp_site(network={"mode": "dhcp", "mac": "00:16:3e:00:00:01"})
    assert render_seed(moved, Secrets()).instance_id != render_seed(dhcp_site(),
                                                                    Secrets()).instance_id
    # A static site's MAC is in network-config too.
    static = static_site()
    net = replace(static.network, mac="00:16:3e:00:00:02")
    assert (render_seed(replace(static, network=net), Secrets()).instance_id
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


# The runner runs here, on the build host, in a scratch directory: guest paths are replaced by
# paths inside it, and the guest's system tools that would act on this host (nmcli, systemctl,
# fstrim, sshd) by stand-ins on PATH that log how they were called. Everything else is real:
# /bin/sh, grep, shred, mktemp, timeout, the pty standing in for the virtio port.
GUEST_TOOLS = {
    "nmcli": """#!/bin/sh
echo "$*" >>"$GUEST/nmcli.log"
case "$*" in
    "connection reload") exit 0 ;;
    *"connection up id "*)
        if [ -n "$NM_UP_ERROR" ]; then echo "$NM_UP_ERROR" >&2; exit 4; fi
        exit 0 ;;
    "-t -f UUID,FILENAME connection show") cat "$GUEST/profiles" 2>/dev/null ;;
esac
exit 0
""",
    "systemctl": '#!/bin/sh\necho "$*" >>"$GUEST/systemctl.log"\n',
    "fstrim": '#!/bin/sh\necho "$*" >>"$GUEST/fstrim.log"\n'
              'echo "/: 1 GiB (1073741824 bytes) trimmed on /dev/vda1"\n',
    "sshd": "#!/bin/sh\n[ \"$1\" = -T ] && printf 'port 22\\npermitrootlogin without-password"
            "\\npasswordauthentication no\\n'\n",
    # The seed CD-ROM: $GUEST/seed-iso stands for its files (when it exists).
    "blkid": '#!/bin/sh\n[ -d "$GUEST/seed-iso" ] && echo /dev/sr0\n',
    "mount": '#!/bin/sh\necho "$*" >>"$GUEST/mount.log"\n'
             'for last; do :; done\ncp "$GUEST/seed-iso/"* "$last/"\n',
    "umount": '#!/bin/sh\nrm -f "$1"/*\n',
}
PASSWORD_LINE = "OVESETUP_CONFIG/adminPassword=str:Sc0tch-on-the-rocks"


def _runner_for_test(tmp: Path, port: str, engine_setup: Path) -> Path:
    """The shipped template rendered with guest paths inside `tmp`."""
    source = SEED_RUNNER_TEMPLATE.read_text()
    for folder in ("cloud/instances", "log", "home", "run"):
        (tmp / folder).mkdir(parents=True, exist_ok=True)
    values = runner.template_values(
        port=port, answers=str(tmp / "heanswers.conf"),
        appliance_answers=str(tmp / "appliance-answers"), fallback_log=str(tmp / "fallback.log"),
        engine_setup=str(engine_setup), nm_keyfile=str(tmp / "hosted-engine.nmconnection"),
        cloud_dir=str(tmp / "cloud"), cloud_disabled=str(tmp / "cloud-init.disabled"),
        scrub_search=f"{tmp / 'log'} {tmp / 'home'}", secret_dir=str(tmp / "run"))
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(source).render(
        **values)
    script = tmp / "runner.sh"
    script.write_text(text)
    tools = tmp / "bin"
    tools.mkdir(exist_ok=True)
    for name, body in GUEST_TOOLS.items():
        (tools / name).write_text(body)
        (tools / name).chmod(0o755)
    return script


def _stand_in_engine_setup(tmp: Path, rc: int) -> Path:
    # engine-setup cannot exist here: a stand-in that prints its arguments and exits with rc.
    path = tmp / "engine-setup"
    path.write_text(f'#!/bin/sh\necho "engine-setup $*"\necho "to stderr" >&2\nexit {rc}\n')
    path.chmod(stat.S_IRWXU)
    return path


def _run_runner_on_a_pty(script: Path, **env: str) -> list[str]:
    """Run the script with a pty slave as its 'virtio port' (a character device, like one)."""
    tmp = script.parent
    environment = {**os.environ, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}",
                   "GUEST": str(tmp), **env}
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        text = script.read_text().replace("__PORT__", port)
        script.write_text(text)
        subprocess.run(["/bin/sh", str(script)], check=False, timeout=60, env=environment)
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


def tagged(lines: list[str], tag: str) -> list[str]:
    return [line[len(tag) + 1:] for line in lines if line.startswith(tag + " ")]


TAGS = (protocol.NETWORK_TAG, protocol.SSH_TAG, protocol.SCRUB_TAG)


TRIMMED = "/: 1 GiB (1073741824 bytes) trimmed on /dev/vda1"


def seed_cdrom_with_answers(tmp: Path, text: str) -> None:
    (tmp / "seed-iso").mkdir()
    (tmp / "seed-iso" / runner.ANSWERS_ON_SEED).write_text(text)


@pytest.mark.parametrize(("rc", "verdict"), [(0, protocol.SUCCESS), (3, protocol.FAIL)])
def test_runner_reports_network_output_scrub_verdict_and_code(tmp_path: Path, rc: int,
                                                              verdict: str) -> None:
    seed_cdrom_with_answers(tmp_path, f"[environment:default]\n{PASSWORD_LINE}\n")
    (tmp_path / "appliance-answers").write_text("")
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, rc))
    lines = _run_runner_on_a_pty(script)
    assert tagged(lines, protocol.NETWORK_TAG), lines
    assert tagged(lines, protocol.SSH_TAG) == ["permitrootlogin without-password",
                                             "passwordauthentication no"]
    in_memory = tmp_path / "run" / "he-engine-setup" / "heanswers.conf"
    untagged = [line for line in lines if not line.startswith(TAGS)]
    assert untagged == [
        f"engine-setup --offline --config-append={tmp_path}/appliance-answers "
        f"--config-append={in_memory}",
        "to stderr",
        verdict,
        f"{protocol.RC_PREFIX}{rc}",
    ]
    # The answer file goes from the seed's CD-ROM to memory; after engine-setup, whatever
    # its result, it goes from memory too, and cloud-init is disabled.
    assert tagged(lines, protocol.SCRUB_TAG) == [
        f"answer file read from the seed into {in_memory} (memory)", TRIMMED,
        f"removed {in_memory}", TRIMMED, "cloud-init disabled for later boots"]
    at = {line: i for i, line in enumerate(lines)}
    assert at["to stderr"] < at[f"{protocol.SCRUB_TAG} removed {in_memory}"] < at[verdict]
    assert (tmp_path / "mount.log").read_text().startswith("-o ro /dev/sr0 ")
    assert list((tmp_path / "run").iterdir()) == []  # nothing secret left in memory either
    assert not (tmp_path / "heanswers.conf").exists()  # never on the "disk"
    # cloud-init will not run again once the seed is gone.
    assert (tmp_path / "cloud-init.disabled").exists()
    assert (tmp_path / "systemctl.log").read_text() == (
        "mask " + " ".join(runner.CLOUD_INIT_UNITS) + "\n")
    assert (tmp_path / "fstrim.log").read_text() == "--all --verbose\n" * 2


def test_runner_scrubs_what_cloud_init_kept_of_an_older_seed_in_place(tmp_path: Path) -> None:
    """A seed from before the answer file had its own file carried it in user-data:
    cloud-init wrote it to /root and kept copies of the user-data."""
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, 0))
    answers = tmp_path / "heanswers.conf"
    answers.write_text(f"[environment:default]\n{PASSWORD_LINE}\n")
    instance = tmp_path / "cloud" / "instances" / "iid-1"
    (instance / "scripts").mkdir(parents=True)
    user_data = f"#cloud-config\nwrite_files:\n- content: |\n    {PASSWORD_LINE}\n"
    copies = dict.fromkeys(("user-data.txt", "user-data.txt.i", "cloud-config.txt",
                            "scripts/runcmd"), user_data)
    copies["obj.pkl"] = "\x80\x04binary" + user_data
    for name, text in copies.items():
        (instance / name).write_text(text)
    (instance / "boot-finished").write_text("done\n")
    # A second name for the raw user-data: shows the bytes were overwritten, not only unlinked.
    (tmp_path / "hardlink").hardlink_to(instance / "user-data.txt")
    log = tmp_path / "log" / "cloud-init.log"
    log.write_text(f"line one\noops {PASSWORD_LINE} logged\nline three\n")
    log.chmod(0o640)
    (tmp_path / "log" / "journal.bin").write_bytes(b"\x00\x01" + PASSWORD_LINE.encode())
    (tmp_path / "log" / "other.log").write_text("nothing secret\n")
    (tmp_path / "appliance-answers").write_text(f"{PASSWORD_LINE}\n")  # the appliance's own
    lines = _run_runner_on_a_pty(script)
    for name in copies:
        assert not (instance / name).exists(), name
    assert (instance / "boot-finished").exists()
    overwritten = (tmp_path / "hardlink").read_bytes()  # shred rounds up to whole blocks
    assert len(overwritten) >= len(user_data) and overwritten.count(0) == len(overwritten)
    # A text file keeps everything but the secret, and its mode; a binary one goes.
    assert log.read_text() == ("line one\noops OVESETUP_CONFIG/adminPassword=none:None logged\n"
                               "line three\n")
    assert log.stat().st_mode & 0o777 == 0o640
    assert not (tmp_path / "log" / "journal.bin").exists()
    assert (tmp_path / "log" / "other.log").exists()
    assert (tmp_path / "appliance-answers").read_text() == f"{PASSWORD_LINE}\n"
    scrub = tagged(lines, protocol.SCRUB_TAG)
    in_memory = tmp_path / "run" / "he-engine-setup" / "heanswers.conf"
    assert scrub[0] == f"answer file moved to {in_memory} (memory)"
    removed = {line for line in scrub if line.startswith("removed ")}
    assert removed == {f"removed {path}" for path in (
        answers, in_memory, tmp_path / "log" / "journal.bin", *(instance / n for n in copies))}
    assert f"redacted the password lines of {log}" in scrub
    assert not list((tmp_path / "log").glob("*.he-redact.*"))
    assert list((tmp_path / "run").iterdir()) == []
    assert lines[-1] == f"{protocol.RC_PREFIX}0"


def test_engine_setup_s_own_record_of_its_answers_is_kept_redacted(tmp_path: Path) -> None:
    """The real engine-setup writes its answers, the admin password included, to
    /var/lib/ovirt-engine/setup/answers/ (mode 0600): the stand-in does what it does."""
    record = tmp_path / "home" / "20250101000000-setup.conf"
    engine_setup = tmp_path / "engine-setup"
    engine_setup.write_text(f"#!/bin/sh\nprintf '[environment:default]\\n{PASSWORD_LINE}\\n"
                            f"OVESETUP_CONFIG/fqdn=str:engine.example.com\\n' >{record}\n")
    engine_setup.chmod(0o700)
    script = _runner_for_test(tmp_path, "__PORT__", engine_setup)
    seed_cdrom_with_answers(tmp_path, f"[environment:default]\n{PASSWORD_LINE}\n")
    lines = _run_runner_on_a_pty(script)
    assert record.read_text() == ("[environment:default]\n"
                                  "OVESETUP_CONFIG/adminPassword=none:None\n"
                                  "OVESETUP_CONFIG/fqdn=str:engine.example.com\n")
    assert f"redacted the password lines of {record}" in tagged(lines, protocol.SCRUB_TAG)


def test_runner_activates_the_seed_profile_and_removes_cloud_init_s_copy(
    tmp_path: Path,
) -> None:
    (tmp_path / "heanswers.conf").write_text("")
    keyfile_path = tmp_path / "hosted-engine.nmconnection"
    keyfile_path.write_text(render_nm_keyfile(static_site()))
    rendered = tmp_path / "cloud-init-eth0.nmconnection"
    rendered.write_text("# Generated by cloud-init. Changes will be lost.\n[connection]\n")
    own = tmp_path / "site-vlan.nmconnection"
    own.write_text("[connection]\nid=site-vlan\n")
    (tmp_path / "profiles").write_text(
        f"uuid-he:{keyfile_path}\nuuid-ci:{rendered}\nuuid-own:{own}\nuuid-mem:\n")
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, 0))
    lines = _run_runner_on_a_pty(script)
    network = tagged(lines, protocol.NETWORK_TAG)
    assert network[:2] == [f"profile {NM_PROFILE}: activated",
                           f"profile {NM_PROFILE}: removed cloud-init's profile {rendered}"]
    assert (tmp_path / "nmcli.log").read_text().splitlines() == [
        "connection reload",
        f"--wait {runner.NETWORK_WAIT_SECONDS} connection up id {NM_PROFILE}",
        "-t -f UUID,FILENAME connection show",
        "connection delete uuid uuid-ci",
    ]
    assert lines[-1] == f"{protocol.RC_PREFIX}0"


def test_a_profile_that_does_not_come_up_is_reported_and_engine_setup_still_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "heanswers.conf").write_text("")
    (tmp_path / "hosted-engine.nmconnection").write_text(render_nm_keyfile(dhcp_site()))
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, 0))
    lines = _run_runner_on_a_pty(
        script, NM_UP_ERROR="Error: Connection activation failed: IP configuration could\n"
                            "not be reserved (no available address, timeout, etc.).")
    assert tagged(lines, protocol.NETWORK_TAG)[0] == (
        f"profile {NM_PROFILE}: not activated: Error: Connection activation failed: IP "
        "configuration could not be reserved (no available address, timeout, etc.).")
    assert "connection delete" not in (tmp_path / "nmcli.log").read_text()
    assert lines[-2:] == [protocol.SUCCESS, f"{protocol.RC_PREFIX}0"]


def test_runner_without_a_seed_profile_leaves_networkmanager_alone(tmp_path: Path) -> None:
    (tmp_path / "heanswers.conf").write_text("")
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, 0))
    lines = _run_runner_on_a_pty(script)
    assert not (tmp_path / "nmcli.log").exists()
    assert lines[-1] == f"{protocol.RC_PREFIX}0"


def test_runner_skips_a_missing_appliance_answer_file(tmp_path: Path) -> None:
    answers = tmp_path / "heanswers.conf"
    answers.write_text("")
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, 0))
    lines = _run_runner_on_a_pty(script)
    in_memory = tmp_path / "run" / "he-engine-setup" / "heanswers.conf"
    assert f"engine-setup --offline --config-append={in_memory}" in lines


def test_runner_without_an_answer_file_still_runs_engine_setup(tmp_path: Path) -> None:
    script = _runner_for_test(tmp_path, "__PORT__", _stand_in_engine_setup(tmp_path, 0))
    lines = _run_runner_on_a_pty(script)
    assert tagged(lines, protocol.SCRUB_TAG)[0] == "no answer file in the seed"
    assert lines[-1] == f"{protocol.RC_PREFIX}0"


def test_runner_without_a_channel_logs_to_a_file(tmp_path: Path) -> None:
    script = _runner_for_test(tmp_path, str(tmp_path / "no-such-port"),
                              _stand_in_engine_setup(tmp_path, 0))
    environment = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
                   "GUEST": str(tmp_path)}
    subprocess.run(["/bin/sh", str(script)], check=True, timeout=60, env=environment)
    log = (tmp_path / "fallback.log").read_text().splitlines()
    assert log[-2:] == [protocol.SUCCESS, f"{protocol.RC_PREFIX}0"]
