"""A release killed while signing leaves its GnuPG home (the imported key) and its agent: the
next signing home sweeps them, and leaves the homes of live processes alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.gpg import OWNER_FILE, sweep_stale_homes

pytestmark = pytest.mark.integration


@pytest.fixture
def parent() -> Iterator[Path]:
    # Short: gpg-agent's socket path must fit in 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="he-sweep-", dir="/tmp"))
    yield path
    for home in path.iterdir():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    shutil.rmtree(path)


def home_with_agent(parent: Path, name: str, owner: int) -> Path:
    home = parent / f"he-gpg-{name}"
    home.mkdir(mode=0o700)
    (home / OWNER_FILE).write_text(f"{owner}\n")
    subprocess.run(["gpg-connect-agent", "--homedir", str(home), "/bye"], check=True,
                   capture_output=True)
    return home


def agent_running(home: Path) -> bool:
    done = subprocess.run(["pgrep", "-f", f"gpg-agent --homedir {home} "], capture_output=True,
                          check=False)
    return done.returncode == 0


def test_stale_homes_and_their_agents_are_removed(parent: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = home_with_agent(parent, "stale", gone.pid)
    live = home_with_agent(parent, "live", os.getpid())
    foreign = parent / "he-gpg-foreign"
    foreign.mkdir()  # no owner file: not a signing home, left alone
    assert agent_running(stale) and agent_running(live)
    assert sweep_stale_homes(parent) == [stale]
    assert not stale.exists() and not agent_running(stale)
    assert live.is_dir() and agent_running(live) and foreign.is_dir()
