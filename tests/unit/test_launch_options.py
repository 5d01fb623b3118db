"""he-launch's options and the health poll (a loopback server stands in for the engine)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from builder.cli.he_launch import build_parser, options_from_args
from builder.errors import InputError, SetupTimeoutError
from builder.launch.health import wait_for_health

BASE = ["--appliance", "a.ova", "--seed", "s.iso", "--site", "dc1"]


def parse(*extra: str) -> object:
    return options_from_args(build_parser().parse_args([*BASE, *extra]))


def test_defaults_are_for_real_hardware() -> None:
    opts = options_from_args(build_parser().parse_args([*BASE, "--network", "ovirtmgmt"]))
    assert opts.uri == "qemu:///system" and opts.virt_type == "auto"
    assert opts.boot_timeout >= 600 and opts.setup_timeout >= 3600
    assert opts.network == "ovirtmgmt" and opts.bridge is None


@pytest.mark.parametrize(("extra", "problem"), [
    (["--no-network", "--mac", "zz:16:3e:00:00:01"], "not a MAC address"),
    (["--no-network", "--boot-timeout", "0"], "--boot-timeout must be positive"),
    (["--no-network", "--vcpus", "0"], "--vcpus must be positive"),
    (["--no-network", "--name", "bad name"], "--name bad name"),
    (["--no-network", "--network-from-host", "eth0"], "needs --inventory"),
    (["--no-network", "--allow-secrets-from", "/srv/secrets"],
     "--allow-secrets-from is for the seed rendered from --inventory"),
])
def test_bad_options_are_refused_with_one_line_each(extra: list[str], problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse(*extra)
    assert caught.value.exit_code == 2
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_allowed_secret_directories_are_collected_in_order() -> None:
    argv = ["--appliance", "a.ova", "--inventory", "inv.yaml", "--site", "dc1", "--no-network"]
    assert options_from_args(build_parser().parse_args(argv)).allow_secrets_from == ()
    opts = options_from_args(build_parser().parse_args(
        [*argv, "--allow-secrets-from", "/a", "--allow-secrets-from", "/b"]))
    assert opts.allow_secrets_from == (Path("/a"), Path("/b"))


def test_a_nic_choice_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(BASE)
    assert caught.value.code == 2
    assert "--network" in capsys.readouterr().err


class Page(BaseHTTPRequestHandler):
    answers: ClassVar[list[bytes]] = []

    def do_GET(self) -> None:
        body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def page() -> Iterator[tuple[str, type[Page]]]:
    handler = type("P", (Page,), {"answers": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ovirt-engine/services/health", handler
    server.shutdown()
    server.server_close()


def test_health_poll_waits_for_the_database(page: tuple[str, type[Page]]) -> None:
    url, handler = page
    handler.answers.extend([b"DB Down", b"DB Up!Welcome to Health Status!"])
    wait_for_health(url, 30, poll_s=0.05)
    assert handler.answers == [b"DB Up!Welcome to Health Status!"]


def test_health_poll_gives_up_with_a_timeout(page: tuple[str, type[Page]]) -> None:
    url, handler = page
    handler.answers.append(b"DB Down")
    with pytest.raises(SetupTimeoutError, match="did not answer"):
        wait_for_health(url, 0.3, poll_s=0.05)
