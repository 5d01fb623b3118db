"""A filesystem a killed tool left mounted inside a partial: never reached into, detached.

debootstrap mounts /proc and /sys inside the root it builds and unmounts them when it exits; a
killed debootstrap cannot. It now runs in a mount namespace of its own, and removing a tree
detaches whatever is still mounted inside it before deleting anything (shutil.rmtree alone
would walk into the mount: through a bind mount, into the host's own files)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.atomic import detach_mounts_under, mounts_under, sweep_stale_partials
from builder.disk.debian_standin import in_own_namespaces

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:5 / {base}/a rw - tmpfs none rw
41 40 0:6 / {base}/a/proc rw - proc proc rw
42 41 0:7 / {base}/a/proc/sub rw - tmpfs none rw
43 22 0:8 / {base}/ab rw - tmpfs none rw
44 40 0:9 / {base}/a/with\\040space rw - tmpfs none rw
"""


def test_mount_points_inside_a_directory_deepest_first(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO.format(base="/srv"))
    assert mounts_under(Path("/srv/a"), info) == [
        Path("/srv/a/proc/sub"), Path("/srv/a/proc"), Path("/srv/a/with space")]
    assert mounts_under(Path("/srv"), info)[-2:] == [Path("/srv/a"), Path("/srv/ab")]
    assert mounts_under(Path("/srv/a/proc/sub"), info) == []


needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="mounts: needs root and unshare(1)")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, with nothing left mounted inside it whatever the test does."""
    yield tmp_path
    detach_mounts_under(tmp_path)


@needs_root
def test_a_sweep_detaches_the_mounts_in_a_dead_writers_partial(scratch: Path) -> None:
    """A partial holding a proc, a tmpfs on top of it and a bind mount of a directory outside:
    the sweep removes the partial and the outside directory keeps its file."""
    outside = scratch / "outside"
    outside.mkdir()
    (outside / "precious").write_text("kept\n")
    partial = scratch / ".entry.partial-999999999-dead"
    for sub in ("root/proc", "root/srv"):
        (partial / sub).mkdir(parents=True)
    mount("-t", "proc", "proc", str(partial / "root/proc"))
    mount("-t", "tmpfs", "none", str(partial / "root/proc"))
    mount("--bind", str(outside), str(partial / "root/srv"))
    # Two points, proc with the tmpfs stacked on it.
    assert mounts_under(scratch) == [partial / "root/proc", partial / "root/srv"]
    assert sweep_stale_partials(scratch) == [partial]
    assert not partial.exists()
    assert mounts_under(scratch) == []
    assert (outside / "precious").read_text() == "kept\n"


@needs_root
def test_what_debootstrap_would_mount_stays_in_its_namespace_and_dies_with_it(
    scratch: Path,
) -> None:
    """The prefix debootstrap runs under: a mount made inside is seen only there, and a kill
    leaves nothing mounted."""
    target = scratch / "root" / "proc"
    target.mkdir(parents=True)
    script = f"mount -t tmpfs none {target} && touch {target}/inside && echo ready && sleep 600"
    proc = subprocess.Popen(in_own_namespaces(["sh", "-c", script]), stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        theirs = mounts_under(scratch, Path(f"/proc/{proc.pid}/mountinfo"))
        assert theirs == [target]
        assert mounts_under(scratch) == []
        assert not (target / "inside").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert mounts_under(scratch) == []
    shutil.rmtree(scratch / "root")
