"""The launch's reading of the guest's console log for cloud-init's schema refusals."""

from __future__ import annotations

from pathlib import Path

from builder.launch.guest_console import schema_refusals

# As Debian 12's cloud-init 22.4 printed them on the debian-test appliance's serial console
# (an image whose cloud.cfg.d said `ssh_genkeytypes: []`), around lines that must not count.
CONSOLE = (
    b"[   35.279169] cloud-init[336]: Cloud-init v. 22.4.2 running 'init-local' at Wed, "
    b"02 Dec 2026 03:56:19 +0000. Up 34.93 seconds.\r\n"
    b"[   49.921895] cloud-init[351]: 2026-12-02 03:56:34,497 - schema.py[WARNING]: Invalid "
    b"cloud-config provided: Please run 'sudo cloud-init schema --system' to see the schema "
    b"errors.\r\n"
    b"[   71.848821] cloud-init[412]: 2026-12-02 03:56:56,424 - cc_set_passwords.py[WARNING]: "
    b"Ignoring config 'ssh_pwauth: False'. SSH service 'ssh' is not installed.\r\n"
    b"\x1b[0;32m  OK  \x1b[0m] Reached target \xff\xfe multi-user.target\r\n"
)


def test_each_refusal_is_counted(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(CONSOLE + CONSOLE.splitlines(keepends=True)[1])
    assert schema_refusals(log) == 2


def test_other_warnings_and_undecodable_bytes_are_not_refusals(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    lines = CONSOLE.splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:1] + lines[2:]))
    assert schema_refusals(log) == 0


def test_no_console_log_is_no_refusal(tmp_path: Path) -> None:
    assert schema_refusals(tmp_path / "console.log") == 0
