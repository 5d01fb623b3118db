# Copyright: he-builder contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible callback plugin: one line per site at the end of a fleet run, and summary.json."""

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_summary
type: aggregate
short_description: per-site summary of a fleet deployment (table and JSON)
version_added: 0.1.0
description:
  - At the end of a run, prints one row per site of the he-builder inventory that the run
    touched (site, host, status, engine-setup's exit status, phase timings, what the image prune
    removed when a site pruned, log) and the reason of every failed or unreachable site and of
    every failed prune, and writes the same as JSON to O(out_dir)/summary.json.
  - Each site's row comes from what the C(ovirt_he.he_builder.he_deploy) role recorded
    (C(set_stats) key C(he_fleet)); a site the role could not record (unreachable, or failed
    before the role ran) is reported from Ansible's own result.
requirements:
  - enabled in C(callbacks_enabled)
options:
  out_dir:
    description:
      - Where the fleet's files go on the controller; the role puts each site's logs and result
        in O(out_dir)/SITE/ and this plugin writes O(out_dir)/summary.json.
      - Only the environment sets it, so that the role (which reads C(HE_FLEET_OUT) too) and
        this plugin always agree.
    type: path
    default: out/fleet
    env:
      - name: HE_FLEET_OUT
"""

import json
import os
import tempfile
import time

from ansible.plugins.callback import CallbackBase

STAT_KEY = "he_fleet"
COLUMNS = ("SITE", "HOST", "STATUS", "RC", "PHASES", "LOG")
# Shown (before LOG) only when a site of the run pruned he-launch's images.
PRUNE_COLUMN = "PRUNED"
# he-launch's phases in the order they run (its JSON sorts them by name).
PHASES = ("prepare", "start", "boot", "setup", "eject", "health")


class CallbackModule(CallbackBase):
    """Collects what each site ended with; prints and writes the summary once, at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ovirt_he.he_builder.fleet_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None, options=None):
        super().__init__(display=display, options=options)
        self._started = time.time()
        self._sites = {}
        self._failures = {}
        self._unreachable = {}

    def _remember(self, result):
        host = result._host
        site = host.vars.get("he_builder_site")
        if isinstance(site, dict):
            self._sites[host.name] = str(host.vars.get("ansible_host") or host.name)
        return host.name

    def v2_runner_on_ok(self, result):
        self._remember(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        name = self._remember(result)
        if not ignore_errors:
            self._failures[name] = failure_text(result)

    def v2_runner_on_unreachable(self, result):
        name = self._remember(result)
        message = str(result._result.get("msg", "unreachable")).strip()
        self._unreachable[name] = message.removeprefix("Task failed: ")

    def v2_playbook_on_stats(self, stats):
        rows = [self._row(name, host, stats) for name, host in sorted(self._sites.items())]
        if not rows:
            return
        path = write_summary(self.get_option("out_dir"), self._started, rows)
        for line in render_table(rows):
            self._display.display(line)
        self._display.display(f"summary: {path}")

    def _row(self, name, host, stats):
        recorded = (stats.custom.get(name) or {}).get(STAT_KEY)
        if isinstance(recorded, dict):
            return {**empty_row(name, host), **recorded}
        row = empty_row(name, host)
        if name in self._unreachable:
            row.update(status="unreachable", error=self._unreachable[name])
        elif name in self._failures:
            row.update(status="failed", error=self._failures[name])
        else:
            row.update(status="not deployed", error="the role did not run on this host")
        return row


def empty_row(name, host):
    return {"site": name, "host": host, "status": "", "stage": None, "exit_status": None,
            "exit_code": None, "error": "", "durations": {}, "console_log": None,
            "transcript": None, "result": None, "url": None, "prune": None}


def failure_text(result):
    """The failed task and its message; never the result of a no_log task."""
    data = result._result
    task = result._task.get_name() if result._task else "a task"
    if data.get("censored"):
        return f"{task}: (output hidden: no_log)"
    message = str(data.get("msg") or "").strip()
    stderr = str(data.get("stderr") or "").strip().splitlines()
    if stderr:
        message = f"{message}: {stderr[-1]}" if message else stderr[-1]
    return f"{task}: {message or 'failed'}"


def write_summary(out_dir, started, rows):
    """summary.json, complete or not at all (temporary file + rename)."""
    os.makedirs(out_dir, exist_ok=True)
    document = {"ok": all(row["status"] == "ok" for row in rows), "started": started,
                "finished": time.time(), "counts": status_counts(rows), "sites": rows}
    path = os.path.join(out_dir, "summary.json")
    fd, temp = tempfile.mkstemp(prefix=".summary.", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return path


def status_counts(rows):
    """How many sites ended in each status: {"ok": 2, "failed": 1}."""
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def render_table(rows):
    title = ", ".join(f"{count} {status}" for status, count in sorted(status_counts(rows).items()))
    pruned = any(row.get("prune") for row in rows)
    columns = COLUMNS[:-1] + (PRUNE_COLUMN,) + COLUMNS[-1:] if pruned else COLUMNS
    cells = [columns] + [row_cells(row, pruned) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns) - 1)]
    lines = ["", f"FLEET SUMMARY ({title})"]
    for line in cells:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:-1]))
                     + "  " + line[-1])
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"{row['site']}: {row['status']}: {row['error'] or 'no reason given'}")
        prune = row.get("prune")
        if prune and prune["exit_code"] != 0:
            lines.append(f"{row['site']}: prune failed (exit {prune['exit_code']}): "
                         f"{prune['error'] or 'no reason given'}")
    return lines


def row_cells(row, pruned=False):
    rc = "-" if row["exit_status"] is None else str(row["exit_status"])
    durations = row["durations"] or {}
    order = [name for name in PHASES if name in durations]
    order += sorted(name for name in durations if name not in PHASES)
    phases = ", ".join(f"{name} {float(durations[name]):.1f} s" for name in order)
    log = row["transcript"] if row["status"] != "ok" and row["transcript"] else row["console_log"]
    cells = (row["site"], row["host"], row["status"], rc, phases or "-")
    if pruned:
        cells += (prune_cell(row.get("prune")),)
    return cells + (log or "-",)


def prune_cell(prune):
    """What a site's prune did: '-' (none ran), 'failed (N)', or 'K images, SIZE' and how
    many it kept, in use or used recently ('(2 kept)')."""
    if not prune:
        return "-"
    if prune["exit_code"] != 0:
        return f"failed ({prune['exit_code']})"
    count = len(prune["removed"])
    kept = len(prune.get("in_use") or []) + int(prune.get("kept_recent") or 0)
    return (f"{count} image{'' if count == 1 else 's'}, {size_text(prune['freed'])}"
            + (f" ({kept} kept)" if kept else ""))


def size_text(size):
    """Bytes in binary units, one decimal: 0 B, 512 B, 192.0 KiB, 1.5 GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
