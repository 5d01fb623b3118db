"""he-launch's modes and owners at rest, whatever the umask (run as root, like he-launch on a
host: owners are changed for real; `nobody`/`nogroup` stand for qemu's user and group)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.errors import StorageError
from builder.launch.storage import StorageModes, create_private_file, open_private

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changes owners: needs root")

QEMU_UID = pwd.getpwnam("nobody").pw_uid
QEMU_GID = grp.getgrnam("nogroup").gr_gid
QEMU = StorageModes.for_qemu((QEMU_UID, QEMU_GID))


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """umask 000: every mode below is set explicitly, not inherited."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_directories_qemu_passes_through_are_search_only_for_its_group(tmp_path: Path) -> None:
    storage = tmp_path / "var" / "he-launch"  # the parent is missing too
    QEMU.passage_dir(storage)
    assert owner_and_mode(storage) == (0, QEMU_GID, 0o710)
    assert owner_and_mode(storage.parent) == (0, QEMU_GID, 0o710)
    QEMU.private_dir(storage / "rpms")
    assert owner_and_mode(storage / "rpms") == (0, 0, 0o700)


def test_an_existing_directory_is_tightened_and_a_link_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "images"
    loose.mkdir(mode=0o777)
    os.chown(loose, QEMU_UID, QEMU_GID)  # e.g. left writable by an earlier version
    QEMU.passage_dir(loose)
    assert owner_and_mode(loose) == (0, QEMU_GID, 0o710)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "verified").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StorageError, match="not a directory"):
        QEMU.private_dir(tmp_path / "verified")


def test_disks_go_to_qemu_the_base_image_stays_ours_and_logs_are_private(
    tmp_path: Path,
) -> None:
    overlay = create_private_file(tmp_path / "engine-overlay.qcow2")
    assert owner_and_mode(overlay) == (0, 0, 0o600)
    QEMU.qemu_disk(overlay)
    assert owner_and_mode(overlay) == (QEMU_UID, QEMU_GID, 0o600)
    base = tmp_path / "disk.qcow2"
    base.write_bytes(b"appliance")
    QEMU.shared_readonly(base)
    assert owner_and_mode(base) == (0, QEMU_GID, 0o440)
    with open_private(tmp_path / "engine-setup.log") as transcript:
        transcript.write(b"line\n")
    assert owner_and_mode(tmp_path / "engine-setup.log") == (0, 0, 0o600)
    # A log an earlier run left readable (or given away) is emptied and taken back.
    old = tmp_path / "console.log"
    old.write_text("old")
    os.chown(old, QEMU_UID, QEMU_GID)
    old.chmod(0o666)
    create_private_file(old)
    assert owner_and_mode(old) == (0, 0, 0o600) and old.read_bytes() == b""


def test_when_qemu_runs_as_we_do_everything_is_private(tmp_path: Path) -> None:
    same = StorageModes.for_qemu((os.geteuid(), os.getegid()))
    assert same == StorageModes() and not same.separate_qemu
    same.passage_dir(tmp_path / "storage")
    assert owner_and_mode(tmp_path / "storage") == (0, 0, 0o700)
    base = tmp_path / "disk.qcow2"
    base.write_bytes(b"appliance")
    same.shared_readonly(base)
    assert owner_and_mode(base) == (0, 0, 0o400)


@pytest.fixture
def open_tree() -> Iterator[Path]:
    """A directory whose parents all let others pass (pytest's own tmp_path does not)."""
    root = Path(tempfile.mkdtemp(prefix="he-storage-test-", dir="/var/tmp"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root)


def test_a_parent_qemu_cannot_pass_is_named(open_tree: Path) -> None:
    closed = open_tree / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(StorageError) as info:
        QEMU.check_reachable(closed / "he-launch")
    assert info.value.message.startswith(f"{closed} does not let qemu's user pass")
    closed.chmod(0o711)  # others may pass
    QEMU.check_reachable(closed / "he-launch")
    closed.chmod(0o710)
    os.chown(closed, 0, QEMU_GID)  # or qemu's group may
    QEMU.check_reachable(closed / "he-launch")
    StorageModes().check_reachable(Path("/root/x"))  # qemu runs as us: nothing to check
