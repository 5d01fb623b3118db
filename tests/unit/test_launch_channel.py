"""The report channel over real unix sockets: verdicts, exit codes, timeouts, a lost channel."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.errors import BootTimeoutError, ChannelClosedError, SetupTimeoutError
from builder.launch.channel import ChannelReport, Deadlines, connect_channel, read_report

LONG = Deadlines(boot_s=30, setup_s=30)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    host, guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with host, guest:
        yield host, guest


def read(
    host: socket.socket, deadlines: Deadlines = LONG
) -> tuple[ChannelReport, list[str], bytes]:
    shown: list[str] = []
    transcript = io.BytesIO()
    report = read_report(host, deadlines, shown.append, transcript, started=time.monotonic())
    return report, shown, transcript.getvalue()


def test_a_full_report_gives_engine_setups_exit_code_and_the_network(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    host, guest = pair
    guest.sendall(
        b"HE_APPLIANCE_NETWORK 2: eth0    inet 192.0.2.10/24 brd 192.0.2.255\n"
        b"[ INFO  ] Stage: Initializing\r\n[ ERROR ] stand-in failure\n"
        b"HE_APPLIANCE_ENGINE_SETUP_FAIL\nHE_APPLIANCE_ENGINE_SETUP_RC=3\n"
    )
    report, shown, transcript = read(host)
    assert report.final_exit_code() == 3 and report.success is False
    assert report.network == ["2: eth0    inet 192.0.2.10/24 brd 192.0.2.255"]
    assert shown[1] == "[ INFO  ] Stage: Initializing"
    assert b"[ ERROR ] stand-in failure\n" in transcript and transcript.endswith(b"RC=3\n")


def test_a_line_split_across_writes_is_read_whole(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    host, guest = pair

    def write_slowly() -> None:
        for part in (
            b"HE_APPLIANCE_ENGINE_SET",
            b"UP_SUCCESS\nHE_APPLIANCE_ENGINE_",
            b"SETUP_RC=0\n",
        ):
            guest.sendall(part)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    report, shown, _ = read(host)
    writer.join()
    assert report.final_exit_code() == 0
    assert shown == ["HE_APPLIANCE_ENGINE_SETUP_SUCCESS", "HE_APPLIANCE_ENGINE_SETUP_RC=0"]


def test_a_verdict_without_rc_settles_when_the_channel_closes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    host, guest = pair
    guest.sendall(b"output\nHE_APPLIANCE_ENGINE_SETUP_SUCCESS\n")
    guest.shutdown(socket.SHUT_WR)
    report, _, _ = read(host)
    assert report.final_exit_code() == 0


@pytest.mark.parametrize(("sent", "lines"), [
    (b"HE_APPLIANCE_NETWORK lo\nsome output\n", "2 lines"),
    (b"some output\n", "1 line"),
])
def test_a_channel_closed_without_status_is_exit_23_and_counts_its_lines(
    pair: tuple[socket.socket, socket.socket], sent: bytes, lines: str,
) -> None:
    host, guest = pair
    guest.sendall(sent)
    guest.shutdown(socket.SHUT_WR)
    with pytest.raises(ChannelClosedError) as caught:
        read(host)
    assert caught.value.exit_code == 23
    assert caught.value.message.endswith(f"without an exit status after {lines}")


def test_a_silent_guest_is_a_boot_timeout(pair: tuple[socket.socket, socket.socket]) -> None:
    host, _ = pair
    with pytest.raises(BootTimeoutError) as caught:
        read(host, Deadlines(boot_s=0.3, setup_s=30))
    assert caught.value.exit_code == 21


def test_a_guest_that_reports_then_hangs_is_a_setup_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    host, guest = pair
    guest.sendall(b"HE_APPLIANCE_NETWORK eth0\n[ INFO  ] Stage: Setup validation\n")
    with pytest.raises(SetupTimeoutError) as caught:
        read(host, Deadlines(boot_s=30, setup_s=0.3))
    assert caught.value.exit_code == 22


def test_connect_waits_for_the_socket_and_connects(tmp_path: Path) -> None:
    path = tmp_path / "chan.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    with server, connect_channel(lambda: path, lambda: True, deadline=time.monotonic() + 5) as sock:
        peer, _ = server.accept()
        with peer:
            peer.sendall(b"hello\n")
            assert sock.recv(16) == b"hello\n"


def test_connect_gives_up_when_the_vm_is_gone(tmp_path: Path) -> None:
    with pytest.raises(ChannelClosedError):
        connect_channel(
            lambda: tmp_path / "never.sock", lambda: False, deadline=time.monotonic() + 5
        )


def test_connect_times_out_as_a_boot_timeout(tmp_path: Path) -> None:
    with pytest.raises(BootTimeoutError):
        connect_channel(lambda: None, lambda: True, deadline=time.monotonic() + 0.3)


def test_a_quiet_guest_is_shown_while_it_stays_silent(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    host, guest = pair
    guest.sendall(b"HE_APPLIANCE_NETWORK eth0\n")
    seen: list[int] = []
    with pytest.raises(SetupTimeoutError):
        read_report(host, Deadlines(boot_s=30, setup_s=1.5), lambda _line: None, io.BytesIO(),
                    started=time.monotonic(), quiet=lambda report: seen.append(report.lines))
    assert seen and set(seen) == {1}
