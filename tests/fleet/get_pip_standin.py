"""A local STAND-IN for get-pip.py, the pip bootstrap script ansible-test downloads.

ansible-test creates each sanity-test virtual environment without pip and runs
~/.ansible/test/cache/get_pip_<version>.py (fetched from its CI file server, which these
machines cannot reach) with pip's options and the pinned packages (pip==24.2). This stand-in
does the same from what is here: ensurepip's bundled pip, then pip installs the pinned packages
from the configured package index. get-pip's own flags (--no-setuptools, --no-wheel) are dropped:
ensurepip installs neither.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY = frozenset({"--no-setuptools", "--no-wheel"})


def main(argv: list[str]) -> int:
    args = [arg for arg in argv if arg not in GET_PIP_ONLY]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True)
    return subprocess.run([sys.executable, "-m", "pip", "install", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
