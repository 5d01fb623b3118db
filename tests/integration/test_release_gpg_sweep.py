"""A release killed while signing leaves its GnuPG home (the imported key) and its agent: the
next signing home sweeps them, and leaves the homes of live processes alone. One killed while
making its home leaves it without an owner: swept once it is a minute old."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.gpg import OWNER_FILE, UNOWNED_HOME_GRACE_S, sweep_stale_homes

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
    being_made = parent / "he-gpg-new"
    being_made.mkdir()  # no owner file yet: being set up, left alone
    assert agent_running(stale) and agent_running(live)
    assert sweep_stale_homes(parent) == [stale]
    assert not stale.exists() and not agent_running(stale)
    assert live.is_dir() and agent_running(live) and being_made.is_dir()


def unowned_home(parent: Path, name: str, owner_text: str | None, age: float) -> Path:
    home = parent / f"he-gpg-{name}"
    home.mkdir(mode=0o700)
    if owner_text is not None:
        (home / OWNER_FILE).write_text(owner_text)
    then = time.time() - age
    os.utime(home, (then, then))
    return home


def test_homes_left_without_an_owner_are_swept_once_past_the_grace(parent: Path) -> None:
    old = UNOWNED_HOME_GRACE_S + 5
    no_owner = unowned_home(parent, "none", None, old)
    empty_owner = unowned_home(parent, "empty", "", old)
    young = unowned_home(parent, "young", "", UNOWNED_HOME_GRACE_S - 30)
    other_user = unowned_home(parent, "other", None, old)
    os.chown(other_user, 65534, 65534)  # another user's: never touched
    not_a_dir = parent / "he-gpg-file"
    not_a_dir.write_text("")
    os.utime(not_a_dir, (time.time() - old, time.time() - old))
    assert sorted(sweep_stale_homes(parent)) == sorted([no_owner, empty_owner])
    assert not no_owner.exists() and not empty_owner.exists()
    assert young.is_dir() and other_user.is_dir() and not_a_dir.is_file()
