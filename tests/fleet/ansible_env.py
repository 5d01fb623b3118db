"""Running ansible-core from PyPI in tests: scratch HOME/ANSIBLE_HOME, the installed collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
COLLECTION_SRC = ANSIBLE_DIR / "ansible_collections" / "ovirt_he" / "he_builder"
BIN = Path(sys.executable).parent
VERSION = "0.1.0"


def tool(name: str) -> str:
    return str(BIN / name)


def ansible_env(scratch: Path, collections: Path | None, **extra: str) -> dict[str, str]:
    """The machine's environment without ANSIBLE_*, HOME and ANSIBLE_HOME in `scratch`, the
    repository's ansible.cfg, and the installed collection instead of the checkout's."""
    home = scratch / "home"
    (home / ".ansible" / "tmp").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        HOME=str(home), ANSIBLE_HOME=str(home / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(home / ".ansible" / "tmp"),
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
    )
    if collections is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    env.update(extra)
    return env


def run(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=timeout)


def plain(node: Any) -> Any:
    """ansible-inventory marks strings it will not template as {"__ansible_unsafe": s}."""
    if isinstance(node, dict):
        if set(node) == {"__ansible_unsafe"}:
            return node["__ansible_unsafe"]
        return {key: plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(value) for value in node]
    return node


def inventory_list(source: Path, env: Mapping[str, str]) -> dict[str, Any]:
    proc = run([tool("ansible-inventory"), "-i", str(source), "--list"], env)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def write_plugin_config(path: Path, inventory: Path, **options: Any) -> Path:
    lines = ["plugin: ovirt_he.he_builder.sites", f"inventory: {inventory}"]
    lines += [f"{key}: {json.dumps(value)}" for key, value in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
