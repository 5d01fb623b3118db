"""rpmbuild killed with he-build takes its build scripts with it (builder.rpm.rpmbuild
run_rpmbuild, in a PID namespace of its own): a %install still running would otherwise write on
into a stage directory that the next build sweeps.

A stand-in he-build runs the real `run_rpmbuild` on a spec whose %install starts a tool that
writes its PID and runs on; once it has, the stand-in alone is killed (kill -9). The control
case runs rpmbuild plainly: the tool outlives the build."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from builder.rpm.rpmbuild import make_topdir
from builder.run import with_descendants_where_possible
from tests.fixtures.processes import TOOL, alive, killed_build, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed"),
]

SPEC = """\
Name: he-kill-test
Version: 1
Release: 1
Summary: A package whose %install runs on
License: MIT
BuildArch: noarch
%description
A package whose %install runs on.
%install
{python} {tool} {pid_file}
%files
"""
BUILD = """\
import sys
from pathlib import Path
import builder.rpm.rpmbuild as rpmbuild
if sys.argv[1] == "none":  # the control case: rpmbuild run plainly
    rpmbuild.with_descendants_where_possible = tuple
rpmbuild.run_rpmbuild(Path(sys.argv[2]), Path(sys.argv[3]), "w1T0.zstdio", None)
"""


@pytest.mark.parametrize("namespace", ["own", "none"])
def test_a_killed_build_takes_rpmbuilds_scripts_with_it(tmp_path: Path, namespace: str) -> None:
    if namespace == "own" and with_descendants_where_possible(["true"]) == ("true",):
        pytest.skip("no PID namespace can be made here")
    top = tmp_path / "top"
    make_topdir(top)
    tool, pid_file = tmp_path / "tool.py", tmp_path / "pid"
    tool.write_text(TOOL)
    spec = top / "SPECS" / "he-kill-test.spec"
    spec.write_text(SPEC.format(python=sys.executable, tool=tool, pid_file=pid_file))
    argv = [sys.executable, "-c", BUILD, namespace, str(top), str(spec)]
    with killed_build(argv, pid_file) as script:
        gone = wait_until(lambda: not alive(script), 30 if namespace == "own" else 2)
        assert gone == (namespace == "own")
