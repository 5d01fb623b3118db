"""The appliance kickstart: parsed back with pykickstart for RHEL9 and RHEL10 it has what oVirt's
appliance has, it passes ksvalidator, and no value can inject anything.
(tests/integration/test_kickstart_post.py runs its %post scripts.)"""

from __future__ import annotations

import configparser
import logging
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from pykickstart.parser import KickstartParser, Script
from pykickstart.version import makeVersion

from builder.disk.kickstart import (
    MAX_DISK_GIB,
    MIN_DISK_GIB,
    SECRET_COMMANDS,
    KickstartInputs,
    Repo,
    appliance_answers,
    check_finishes,
    ks_arg,
    ks_heredoc,
    render_kickstart,
    validate_kickstart,
)
from builder.disk.registry import load_recipe
from builder.errors import InputError
from builder.release.gates import check_kickstart

HASH = "$6$saltsalt$" + "a" * 86
INPUTS = KickstartInputs(
    install_tree="http://mirror.example/centos/9-stream/BaseOS/x86_64/os/",
    timezone="Europe/Prague",
    root_password_hash=HASH,
    repos=(Repo("ovirt-45", "http://mirror.example/ovirt/4.5/el9/"),),
    extra_packages=("vim-enhanced",),
)
INJECTION = '"\n%post\ntouch /pwned\n%end\n'
VERSIONS = ["RHEL9", "RHEL10"]
ANSWERS_FILE = Path(__file__).resolve().parents[2] / "builder/data/appliance/ovirt-engine-answers"
# cat > PATH <<'DELIMITER' ... DELIMITER, the way the %post scripts write files.
HEREDOC = re.compile(r"^cat > (\S+) <<'(\w+)'\n(.*?)^\2$", re.MULTILINE | re.DOTALL)


def parse(text: str, version: str = "RHEL9") -> Any:
    parser = KickstartParser(makeVersion(version))
    parser.readKickstartFromString(text)
    return parser.handler


def post_scripts(handler: Any) -> dict[str, Script]:
    """The %post scripts by their log file name (ks-post-NAME.log)."""
    return {Path(script.logfile).stem.removeprefix("ks-post-"): script
            for script in handler.scripts if script.logfile}


def written_files(handler: Any) -> dict[str, str]:
    """What the %post scripts write with quoted here-documents, by path."""
    return {match[1]: match[3] for script in handler.scripts
            for match in HEREDOC.finditer(script.script)}


@pytest.fixture(scope="module", params=VERSIONS)
def handler(request: pytest.FixtureRequest) -> Any:
    return parse(render_kickstart(INPUTS), request.param)


def test_rendered_kickstart_has_the_appliance_settings(handler: Any) -> None:
    assert handler.selinux.selinux == 1  # enforcing
    assert handler.timezone.timezone == "Europe/Prague"
    assert handler.rootpw.password == HASH and handler.rootpw.isCrypted
    assert handler.url.url == INPUTS.install_tree
    assert [r.name for r in handler.repo.repoList] == ["ovirt-45"]
    assert {"ovirt-engine", "cloud-init", "vim-enhanced"} <= set(handler.packages.packageList)
    assert set(handler.firewall.services) == {"ssh", "http", "https", "cockpit"}
    assert {"sshd", "qemu-guest-agent", "cloud-init", "cockpit.socket"} <= set(
        handler.services.enabled)
    assert handler.reboot.action is not None  # poweroff: the build waits for the VM to stop


def test_packages_follow_ovirts_appliance(handler: Any) -> None:
    packages = handler.packages
    assert packages.excludeDocs and packages.excludeWeakdeps
    assert {"centos-release-ovirt45", "qemu-guest-agent", "dracut-config-generic", "openscap",
            "openscap-utils", "scap-security-guide", "dracut-fips"} <= set(packages.packageList)
    # Gone since 2019 (qemu-guest-agent replaced it): listing it stops the installation.
    assert not [p for p in packages.packageList if p.startswith("ovirt-guest-agent")]
    assert {"dracut-config-rescue", "linux-firmware"} <= set(packages.excludedList)


def test_the_release_package_is_a_recipe_value() -> None:
    handler = parse(render_kickstart(replace(INPUTS, release_package="ovirt-release-master")))
    assert "ovirt-release-master" in handler.packages.packageList
    assert "centos-release-ovirt45" not in handler.packages.packageList


def test_authselect_minimal_on_el9_and_local_on_el10() -> None:
    assert parse(render_kickstart(INPUTS)).authselect.authselect == "select minimal"
    el10 = render_kickstart(replace(INPUTS, authselect_profile="local"))
    assert parse(el10, "RHEL10").authselect.authselect == "select local"


def test_one_gpt_disk_for_bios_and_uefi(handler: Any) -> None:
    assert handler.clearpart.disklabel == "gpt" and handler.zerombr.zerombr
    assert handler.bootloader.location == "mbr"
    parts = {p.mountpoint: p for p in handler.partition.partitions}
    assert parts["biosboot"].fstype == "biosboot"  # GRUB's core image for BIOS
    assert parts["/boot/efi"].fstype == "efi"  # the EFI system partition for UEFI
    assert not handler.reqpart.reqpart  # it would add only the installer firmware's partition
    assert {"grub2-pc", "grub2-pc-modules", "grub2-efi-x64", "shim-x64"} <= set(
        handler.packages.packageList)
    boot = post_scripts(handler)["boot"]
    assert boot.errorOnFail and boot.inChroot and boot.interp == "/bin/sh"


def test_var_tmp_is_its_own_volume_and_swap_is_8_gib(handler: Any) -> None:
    volumes = {v.mountpoint: v for v in handler.logvol.lvList}
    assert volumes["/var/tmp"].name == "vartmp" and volumes["/var/tmp"].vgname == "ovirt"
    assert volumes["/var/tmp"].fsopts == "nodev,noexec,nosuid"
    assert volumes["swap"].size == 8192
    assert set(volumes) == {"/", "/home", "/tmp", "/var", "/var/tmp", "/var/log",
                            "/var/log/audit", "swap"}


def test_the_disk_minimum_holds_the_layout_and_fits_hosted_engines_disk(handler: Any) -> None:
    parts = {p.mountpoint: p for p in handler.partition.partitions}
    volumes = handler.logvol.lvList
    extent_mib = handler.volgroup.vgList[0].pesize // 1024
    # Each volume is a whole number of extents; the PV keeps one extent for LVM's metadata.
    needed_in_pv = sum(-(-v.size // extent_mib) * extent_mib for v in volumes) + extent_mib
    assert needed_in_pv <= parts["pv.01"].size
    # GPT: 1 MiB before the first partition (alignment), 1 MiB for the backup table.
    needed_mib = sum(p.size for p in parts.values()) + 2
    assert needed_mib <= MIN_DISK_GIB * 1024 < needed_mib + 1024
    # The role copies the appliance onto its 61 GiB engine disk (he_disk_size_GB).
    assert MIN_DISK_GIB <= MAX_DISK_GIB <= 61
    options = load_recipe("kickstart-centos9").options
    assert MIN_DISK_GIB <= options["disk_size_gib"] <= MAX_DISK_GIB


def test_cloud_init_keeps_to_nocloud_and_leaves_the_network_alone(handler: Any) -> None:
    files = written_files(handler)
    appliance = yaml.safe_load(files["/etc/cloud/cloud.cfg.d/42_ovirt_appliance.cfg"])
    assert appliance == {"ssh_pwauth": True, "network": {"config": "disabled"}}
    datasources = yaml.safe_load(files["/etc/cloud/cloud.cfg.d/10_ovirt_appliance_datasource.cfg"])
    assert datasources == {"datasource_list": ["NoCloud", "None"]}


def test_the_answer_file_is_the_one_in_builder_data(handler: Any) -> None:
    written = written_files(handler)["/root/ovirt-engine-answers"]
    assert written == ANSWERS_FILE.read_text(encoding="utf-8") == appliance_answers()
    # Read as otopi reads it: one RawConfigParser, keys as written.
    ours, shipped = configparser.RawConfigParser(), configparser.RawConfigParser()
    ours.optionxform = shipped.optionxform = str  # type: ignore[assignment,method-assign]
    ours.read_string(written)
    shipped.read(ANSWERS_FILE, encoding="utf-8")
    assert {s: dict(ours[s]) for s in ours} == {s: dict(shipped[s]) for s in shipped}
    assert "OVESETUP_DB/database" in ours["environment:default"]


def test_locked_root_when_no_hash() -> None:
    handler = parse(render_kickstart(replace(INPUTS, root_password_hash=None)))
    assert handler.rootpw.lock


@pytest.mark.parametrize("version", VERSIONS)
def test_ksvalidator_accepts_the_rendered_kickstart(tmp_path: Path, version: str) -> None:
    ks = tmp_path / "ks.cfg"
    ks.write_text(render_kickstart(INPUTS))
    # The release gate's run (`ksvalidator -e`: a deprecated command or option is an error
    # too), which keeps ksvalidator's leftover copy of the kickstart out of /tmp.
    result = check_kickstart(ks, version)
    assert result.passed, result.detail
    validate_kickstart(ks.read_text(), version=version)


def test_the_old_weak_deps_spelling_is_gone_in_rhel10(caplog: pytest.LogCaptureFixture) -> None:
    # Why the template says --exclude-weakdeps: RHEL10's syntax refuses --excludeWeakdeps
    # (RHEL9's takes it, with a deprecation warning).
    old = render_kickstart(INPUTS).replace("--exclude-weakdeps", "--excludeWeakdeps")
    with caplog.at_level(logging.WARNING, logger="builder.disk.kickstart"):
        validate_kickstart(old, version="RHEL9")
    assert len(caplog.records) == 1 and "--exclude-weakdeps" in caplog.records[0].getMessage()
    with pytest.raises(InputError, match="excludeWeakdeps"):
        validate_kickstart(old, version="RHEL10")


@pytest.mark.parametrize(
    "field",
    ["install_tree", "timezone", "root_password_hash", "repo_url", "repo_name", "package",
     "release_package", "authselect_profile"],
)
def test_injection_in_every_value_is_refused(field: str) -> None:
    bad = {
        "install_tree": replace(INPUTS, install_tree="http://x/" + INJECTION),
        "timezone": replace(INPUTS, timezone="UTC" + INJECTION),
        "root_password_hash": replace(INPUTS, root_password_hash=HASH + INJECTION),
        "repo_url": replace(INPUTS, repos=(Repo("r", "http://x/" + INJECTION),)),
        "repo_name": replace(INPUTS, repos=(Repo("r" + INJECTION, "http://x/"),)),
        "package": replace(INPUTS, extra_packages=("vim" + INJECTION,)),
        "release_package": replace(INPUTS, release_package="ovirt" + INJECTION),
        "authselect_profile": replace(INPUTS, authselect_profile="minimal" + INJECTION),  # type: ignore[arg-type]
    }[field]
    with pytest.raises(InputError) as info:
        render_kickstart(bad)
    assert info.value.problems and "\n" not in info.value.message


@pytest.mark.parametrize("line_end", ["\n", "\r", "\x0b", "\x85", "\u2028", "\u2029"])
def test_every_line_end_pykickstart_knows_is_refused(line_end: str) -> None:
    # pykickstart (and Anaconda) split lines with str.splitlines(), which knows more line
    # ends than "\n": each would let a value start a new command or section.
    assert len(f"a{line_end}%post".splitlines()) == 2
    with pytest.raises(InputError):
        ks_arg(f"Etc/UTC{line_end}%post")


def test_quotes_and_option_lookalikes_stay_inert() -> None:
    # A value that passed the checks but carries quotes stays one argument of its command.
    value = 'Etc/UTC" --ntpservers=evil'
    text = f"timezone {ks_arg(value)}\n"
    handler = parse(text)
    assert handler.timezone.timezone == 'Etc/UTC" --ntpservers=evil'
    assert not handler.timezone.ntpservers
    assert len(handler.scripts) == 0
    with pytest.raises(InputError):
        ks_arg("--isUtc")


@pytest.mark.parametrize(("text", "problem"), [
    ("a=1\n%end\n%post\ntouch /pwned\n", "starts with %"),
    ("a=1\n  %packages\n", "starts with %"),
    ("a=1\nEOF\ntouch /pwned\n", "is its delimiter"),
    ("a=1\u2028%end\n", "control character"),
    ("a=1\x1b[2J\n", "control character"),
    ("a=1", "must end with a newline"),
])
def test_here_document_text_that_could_escape_is_refused(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=re.escape(problem)):
        ks_heredoc(text, "EOF")
    assert ks_heredoc("a=%s\n\tb=1\n", "EOF") == "a=%s\n\tb=1\n"


@pytest.mark.parametrize(("size", "problem"), [
    (MIN_DISK_GIB - 1, "is below"), (MAX_DISK_GIB + 1, "61 GiB engine disk")])
def test_disk_size_outside_the_layout_and_hosted_engine_is_refused(size: int,
                                                                   problem: str) -> None:
    with pytest.raises(InputError) as info:
        render_kickstart(replace(INPUTS, disk_size_gib=size))
    assert any(p.startswith("disk_size_gib:") and problem in p for p in info.value.problems)


def test_broken_kickstart_is_one_line_input_error() -> None:
    with pytest.raises(InputError) as info:
        validate_kickstart("selinux --enforcing\nbogus-command --x\n")
    assert "\n" not in info.value.message


@pytest.mark.parametrize(("text", "problem"), [
    ('text\nrootpw "unbalanced\npoweroff\n', "line 2: No closing quotation"),
    ("text\ntimezone \\", "line 2: No escaped character"),  # the last line, no line end
])
def test_a_line_shlex_cannot_split_is_refused_at_its_line(text: str, problem: str) -> None:
    # pykickstart splits each command line with shlex and lets its ValueError through.
    with pytest.raises(InputError) as info:
        validate_kickstart(text)
    assert info.value.message == f"kickstart rejected by pykickstart: {problem}"


def test_include_is_left_to_the_installer(tmp_path: Path) -> None:
    """As ksvalidator (without -i): the file %include names is the installer's (often one
    %pre wrote), so it is neither read on this host nor downloaded."""
    here = tmp_path / "part.ks"
    here.write_text("this-host-only-command\n")
    for target in (here, tmp_path / "absent.ks", "http://127.0.0.1:9/part.ks"):
        handler = validate_kickstart(f"text\n%include {target}\npoweroff\n")
        check_finishes(handler)


@pytest.mark.parametrize(("line", "hidden", "shown"), [
    # A password with a space, unquoted: pykickstart quotes its second word.
    ("rootpw --plaintext my s3cret", "s3cret", "Unexpected arguments to rootpw command"),
    ("rootpw 'my s3cret' extra", "extra", "Unexpected arguments to rootpw command"),
    ("rootpw --iscrypted $6$salt$hash tail", "tail", "Unexpected arguments to rootpw command"),
    ("user --name=admin --password s3 cret", "cret", "unrecognized arguments"),
    ("bootloader --password=s3cret --iscrypted extra", "extra", "unrecognized arguments"),
    ("url --url=http://u:s3cret@mirror/os extra", "extra", "unrecognized arguments"),
    ("part / --size=1 --encrypted --passphrase=pass phrase", "phrase",
     "Unexpected arguments to partition command"),
])
def test_a_refused_line_that_can_hold_a_password_is_not_quoted(
        line: str, hidden: str, shown: str) -> None:
    with pytest.raises(InputError) as info:
        validate_kickstart(f"text\n{line}\npoweroff\n")
    command = line.split(maxsplit=1)[0]
    assert info.value.message == (
        f"kickstart rejected by pykickstart: line 2: {shown} (the arguments are not shown: "
        f"the {command} command can hold a password)")
    assert hidden not in info.value.message


@pytest.mark.parametrize(("line", "message"), [
    # What pykickstart quotes is an option's name, or nothing of the line: shown as it is.
    ("rootpw --plaintxt s3cret", "Unexpected arguments to rootpw command: ['--plaintxt']"),
    ("user --name=a --password=s3cret --bogus", "unrecognized arguments: --bogus"),
    ("rootpw", "A single argument is expected for the rootpw command"),
    ("lang en_US.UTF-8 extra", "Unexpected arguments to lang command: ['extra']"),
])
def test_a_refusal_quoting_no_argument_value_is_shown_whole(line: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        validate_kickstart(f"text\n{line}\npoweroff\n")
    assert info.value.message == f"kickstart rejected by pykickstart: line 2: {message}"


def test_the_documented_password_commands_are_the_ones_kept_unquoted() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "appliance-backends.md").read_text()
    start = docs.index("When the line's command can hold a")
    paragraph = docs[start:docs.index("first clause is shown", start)]
    assert set(re.findall(r"`([a-z]+)`", paragraph)) == SECRET_COMMANDS


@pytest.mark.parametrize(("text", "problem"), [
    # A password file given as the kickstart: its one line is the password.
    ("Tr0ub4dor&3\n", "line 1: unknown command (the word is not shown: a file that is not a "
                      "kickstart may hold a secret)"),
    ("text\n%s3cretword\n", "line 2: unknown section (the word is not shown: a file that is "
                             "not a kickstart may hold a secret)"),
    ("text\nrootpww --lock\npoweroff\n", "line 2: unknown command (did you mean rootpw?)"),
    ("text\n%pakages\n@core\n%end\n", "line 2: unknown section (did you mean %packages?)"),
], ids=["password-file", "unknown-section", "misspelt-command", "misspelt-section"])
def test_an_unknown_first_word_is_not_quoted_a_close_one_is_suggested(
        text: str, problem: str) -> None:
    with pytest.raises(InputError) as info:
        validate_kickstart(text)
    assert info.value.message == f"kickstart rejected by pykickstart: {problem}"
    assert not {"Tr0ub4dor", "s3cretword", "rootpww", "pakages"} & set(
        re.split(r"[\s%&()]+", info.value.message))


@pytest.mark.parametrize("word", ["end", "Section", "%end."])
def test_a_script_line_the_complaint_happens_to_contain_is_not_taken_for_a_command(
        word: str) -> None:
    """An unterminated %post is refused at its last line, a script line: its first word is
    no command, but the complaint is about the section, and is shown as pykickstart says it."""
    with pytest.raises(InputError) as info:
        validate_kickstart(f"text\npoweroff\n%post\n{word}\n")
    assert info.value.message == ("kickstart rejected by pykickstart: line 4: Section %post "
                                  "does not end with %end.")


@pytest.mark.parametrize("text", ['"Tr0ub4dor   and 3"\n', "Tr0ub4dor\u2028\n"],
                         ids=["quoted-with-spaces", "invisible-space"])
def test_an_unknown_word_with_spaces_in_it_is_not_shown_either(text: str) -> None:
    with pytest.raises(InputError) as info:
        validate_kickstart(text)
    assert info.value.message == (
        "kickstart rejected by pykickstart: line 1: unknown command (the word is not shown: a "
        "file that is not a kickstart may hold a secret)")


HIDDEN = "a character kickstart does not take for a space (delete it)"


@pytest.mark.parametrize(("text", "problem"), [
    # Python's str.splitlines() ends the line at U+2028 or U+001C; shlex keeps it in the word.
    ("text\u2028\npoweroff\n", "line 1: unknown command: text with U+2028 (LINE SEPARATOR) in it"),
    ("text\npoweroff\x1c\n",
     "line 2: unknown command: poweroff with U+001C (FILE SEPARATOR) in it"),
    ("\u00a0text\npoweroff\n", "line 1: unknown command: text with U+00A0 (NO-BREAK SPACE) in it"),
    ("text\n%pack\u00a0ages\n@core\n%end\npoweroff\n",
     "line 2: unknown section: %packages with U+00A0 (NO-BREAK SPACE) in it"),
], ids=["line-separator", "file-separator", "no-break-space", "section"])
def test_a_known_word_with_an_invisible_space_in_it_is_named_with_that_character(
        text: str, problem: str) -> None:
    """A kickstart pasted from a web page or a word processor: the line reads `text` on
    screen, and pykickstart's `Unknown command: text` would contradict itself."""
    with pytest.raises(InputError) as info:
        validate_kickstart(text)
    assert info.value.message == f"kickstart rejected by pykickstart: {problem}, {HIDDEN}"


def test_the_gate_names_the_invisible_space_too(tmp_path: Path) -> None:
    ks = tmp_path / "pasted.ks"
    ks.write_text("text\u2028\npoweroff\n", encoding="utf-8")
    result = check_kickstart(ks, "RHEL9")
    assert (result.passed, result.detail) == (False, (
        f"line 1: unknown command: text with U+2028 (LINE SEPARATOR) in it, {HIDDEN}"))


def test_the_gate_does_not_quote_an_unknown_first_word_either(tmp_path: Path) -> None:
    ks = tmp_path / "secret.ks"
    ks.write_text("Tr0ub4dor&3\n")
    result = check_kickstart(ks, "RHEL9")
    assert (result.passed, result.detail) == (False, (
        "line 1: unknown command (the word is not shown: a file that is not a kickstart may "
        "hold a secret)"))


def test_what_pykickstart_fails_on_is_refused_at_the_section_it_reads() -> None:
    # A lone `-` in %packages: pykickstart's package list raises an IndexError.
    with pytest.raises(InputError) as info:
        validate_kickstart("text\n%packages\n@core\n-\n%end\npoweroff\n")
    assert info.value.message == ("kickstart rejected by pykickstart: line 2: pykickstart "
                                  "cannot read it (IndexError: string index out of range)")


def test_pykickstarts_warnings_are_logged_not_printed_by_python(
        caplog: pytest.LogCaptureFixture) -> None:
    """Anaconda goes on after a duplicate or a deprecated option, with a warning: so does the
    check, through the log (Python's own warning output named pykickstart's source line)."""
    with caplog.at_level(logging.WARNING, logger="builder.disk.kickstart"), \
            warnings.catch_warnings():
        warnings.simplefilter("error")  # one escaping the check would fail the test
        check_finishes(validate_kickstart(
            "text\nuser --name=admin\nuser --name=admin\npoweroff\n", version="RHEL9"))
    assert [record.getMessage() for record in caplog.records] == [
        "kickstart: A user with the name admin has already been defined."]
