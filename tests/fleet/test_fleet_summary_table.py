"""The fleet_summary callback's table, from rows as the role records them (no Ansible run)."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from tests.fleet.ansible_env import COLLECTION_SRC


def summary_plugin() -> ModuleType:
    path = COLLECTION_SRC / "plugins" / "callback" / "fleet_summary.py"
    spec = importlib.util.spec_from_file_location("fleet_summary_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(plugin: ModuleType, site: str, prune: dict[str, Any] | None,
        status: str = "ok") -> dict[str, Any]:
    return {**plugin.empty_row(site, f"198.18.46.{len(site)}"), "status": status,
            "exit_status": 0 if status == "ok" else 1, "durations": {"setup": 1.25},
            "console_log": f"/out/{site}/console.log", "prune": prune}


def prune(exit_code: int, removed: list[str], freed: int, error: str | None = None,
          in_use: tuple[str, ...] = (), recent: int = 0) -> dict[str, Any]:
    return {"exit_code": exit_code, "removed": removed, "freed": freed, "error": error,
            "in_use": list(in_use), "kept_recent": recent}


def test_the_table_has_no_prune_column_when_no_site_pruned() -> None:
    plugin = summary_plugin()
    lines = plugin.render_table([row(plugin, "alpha", None), row(plugin, "bravo", None)])
    assert lines[2].split() == ["SITE", "HOST", "STATUS", "RC", "PHASES", "LOG"]
    assert lines[3].split() == ["alpha", "198.18.46.5", "ok", "0", "setup", "1.2", "s",
                                "/out/alpha/console.log"]
    assert len(lines) == 5


def test_the_prune_column_and_a_failed_prune_s_reason() -> None:
    plugin = summary_plugin()
    rows = [row(plugin, "alpha", prune(0, ["/s/images/a"], 196608)),
            row(plugin, "bravo", prune(0, [], 0)),
            row(plugin, "charlie", None, status="failed"),
            row(plugin, "delta", prune(4, [], 0, "cannot connect to libvirt at bogus:///x: no")),
            row(plugin, "echo", prune(0, ["/s/images/b", "/s/images/c"], 3 * 2**29,
                                      in_use=("/s/images/d",), recent=2))]
    lines = plugin.render_table(rows)
    header = lines[2]
    assert header.split() == ["SITE", "HOST", "STATUS", "RC", "PHASES", "PRUNED", "LOG"]
    cells = {line.split()[0]: line[header.index("PRUNED"):header.index("LOG")].rstrip()
             for line in lines[3:8]}
    assert cells == {"alpha": "1 image, 192.0 KiB", "bravo": "0 images, 0 B", "charlie": "-",
                     "delta": "failed (4)", "echo": "2 images, 1.5 GiB (3 kept)"}
    assert lines[8:] == [
        "charlie: failed: no reason given",
        "delta: prune failed (exit 4): cannot connect to libvirt at bogus:///x: no"]


def test_sizes_are_in_binary_units() -> None:
    size_text = summary_plugin().size_text
    assert [size_text(n) for n in (0, 1023, 1024, 5 * 2**20 + 2**19, 2**40)] == [
        "0 B", "1023 B", "1.0 KiB", "5.5 MiB", "1024.0 GiB"]
