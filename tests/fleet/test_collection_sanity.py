"""`ansible-test sanity` on the installed collection, offline but for the package index.

ansible-test bootstraps pip into each test's virtual environment with a get-pip.py it downloads
from its CI file server, which these machines cannot reach; tests/fleet/get_pip_standin.py
takes its place in ansible-test's cache (ensurepip + the package index). Every sanity test then
runs: pylint, pep8, validate-modules, ansible-doc, import, compile, yamllint and the rest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fleet.ansible_env import ansible_env, run, tool

pytestmark = pytest.mark.integration

PIP_VERSION = "24.2"  # ansible-core 2.19's get_venv_packages(): pip=24.2
EXPECTED_TESTS = ("ansible-doc", "compile", "import", "pep8", "pylint", "validate-modules",
                  "yamllint", "runtime-metadata", "shebang", "line-endings")


def test_ansible_test_sanity_passes(collections_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "ansible_collections" / "ovirt_he" / "he_builder"
    shutil.copytree(collections_path / "ansible_collections" / "ovirt_he" / "he_builder", root)
    env = ansible_env(tmp_path, None)
    cache = Path(env["HOME"]) / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True)
    shutil.copyfile(Path(__file__).with_name("get_pip_standin.py"),
                    cache / f"get_pip_{PIP_VERSION.replace('.', '_')}.py")
    proc = run([tool("ansible-test"), "sanity", "--python", "3.11", "--venv", "--color", "no"],
               env, cwd=root, timeout=1500)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    # The stand-in, never the CI file server.
    assert f"Using cached pip {PIP_VERSION} bootstrap script" in output
    assert "bootstrap script: https://" not in output
    for test in EXPECTED_TESTS:
        assert f'Running sanity test "{test}"' in output, test
