"""The collection, built and installed once per session with ansible-galaxy, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet.ansible_env import COLLECTION_SRC, VERSION, ansible_env, run, tool


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ansible-galaxy collection build + install, in a network namespace of its own (no
    network at all: `unshare --net`), so the install is proven offline."""
    scratch = tmp_path_factory.mktemp("galaxy")
    # Not the repository's ansible.cfg: its collections_path (the checkout) already holds the
    # collection, and ansible-galaxy would skip installing it.
    (scratch / "empty.cfg").write_text("")
    env = ansible_env(scratch, None, ANSIBLE_CONFIG=str(scratch / "empty.cfg"))
    built = run(["unshare", "--net", tool("ansible-galaxy"), "collection", "build",
                 str(COLLECTION_SRC), "--output-path", str(scratch)], env)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = scratch / f"ovirt_he-he_builder-{VERSION}.tar.gz"
    assert tarball.is_file(), built.stdout
    target = scratch / "collections"
    installed = run(["unshare", "--net", tool("ansible-galaxy"), "collection", "install",
                     "--offline", "-p", str(target), str(tarball)], env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return target
