"""Seed directories on disk: layout, modes, manifest, reproducibility, nothing left on failure.

(Publishing whole sets, generations and what crashed runs leave: test_seed_generations.py.)"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import threading
from pathlib import Path
from typing import ClassVar

import pycdlib
import pytest

from builder.atomic import FlushAhead
from builder.errors import InputError
from builder.seed.master import (
    FLUSH_AHEAD_SHARE,
    RenderedSeed,
    build_seeds,
    render_manifest,
    write_site_seed,
)
from tests.fixtures.seeds import Secrets, dhcp_site, static_site

ENV = {"SOURCE_DATE_EPOCH": "1700000000"}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def visible(out: Path) -> list[str]:
    """What a user sees in OUT (the set's state directory is hidden)."""
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def state_of(out: Path) -> list[str]:
    return sorted(p.name for p in (out / ".he-seeds").iterdir())


def test_static_site_directory_layout_and_modes(tmp_path: Path) -> None:
    artifacts = write_site_seed(static_site(), Secrets(), tmp_path, env=ENV)
    site_dir = tmp_path / "dc2"
    assert artifacts.directory == site_dir
    modes = {p.name: mode_of(p) for p in site_dir.iterdir()}
    assert modes == {"seed.iso": 0o600, "user-data": 0o600, "heanswers.conf": 0o600,
                     "meta-data": 0o644, "network-config": 0o644, "manifest.json": 0o644}
    assert mode_of(site_dir) == 0o700
    assert [p.name for p in tmp_path.iterdir()] == ["dc2"]  # no temp or lock leftovers
    assert artifacts.mac == "00:16:3e:00:02:10"


def test_dhcp_site_has_no_network_config(tmp_path: Path) -> None:
    write_site_seed(dhcp_site(), Secrets(), tmp_path, env=ENV)
    assert not (tmp_path / "dc1" / "network-config").exists()


def test_manifest_describes_every_file(tmp_path: Path) -> None:
    artifacts = write_site_seed(static_site(), Secrets(), tmp_path, env=ENV)
    manifest = json.loads((tmp_path / "dc2" / "manifest.json").read_text())
    assert manifest["site"] == "dc2"
    assert manifest["instance_id"] == artifacts.instance_id
    for name, entry in manifest["files"].items():
        path = tmp_path / "dc2" / name
        assert entry == {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                         "size": path.stat().st_size, "mode": f"{mode_of(path):04o}"}
    assert sorted(manifest["files"]) == sorted(f.name for f in artifacts.files
                                               if f.name != "manifest.json")
    assert artifacts.checksums["seed.iso"] == manifest["files"]["seed.iso"]["sha256"]
    # Written directly, as json.dumps writes it indented, keys sorted.
    text = (tmp_path / "dc2" / "manifest.json").read_text()
    assert text == json.dumps(manifest, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("odd", ["", "a\"b\\c", "\u00e9t\u00e9 \U0001f600", "line\nbreak\t\x00",
                                 "z" * 300])
def test_manifest_text_is_json_dumps_text_for_any_strings(odd: str) -> None:
    rendered = RenderedSeed(site=odd, user_data="", meta_data="", network_config=None,
                            answers="", instance_id=odd + "-id", mac=odd, fqdn=odd)
    contents = {odd + "f": (b"x" * 3, 0o600), "b": (b"", 0o644), "a" + odd: (b"yy", 0o640)}
    digests = {name: hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
               for name in contents}
    manifest = {"site": odd, "fqdn": odd, "instance_id": odd + "-id", "mac": odd,
                "files": {name: {"sha256": digests[name], "size": len(data), "mode": f"{mode:04o}"}
                          for name, (data, mode) in contents.items()}}
    expected = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    assert render_manifest(rendered, contents, digests) == expected


def test_iso_holds_the_rendered_files(tmp_path: Path) -> None:
    write_site_seed(static_site(), Secrets(), tmp_path, env=ENV)
    site_dir = tmp_path / "dc2"
    iso = pycdlib.PyCdlib()
    iso.open(str(site_dir / "seed.iso"))
    try:
        for name in ("user-data", "meta-data", "network-config"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            assert out.getvalue() == (site_dir / name).read_bytes()
    finally:
        iso.close()


def test_two_runs_with_source_date_epoch_are_byte_identical(tmp_path: Path) -> None:
    write_site_seed(static_site(), Secrets(), tmp_path / "a", env=ENV)
    write_site_seed(static_site(), Secrets(), tmp_path / "b", env=ENV)
    for name in ("seed.iso", "user-data", "meta-data", "network-config", "heanswers.conf",
                 "manifest.json"):
        assert (tmp_path / "a/dc2" / name).read_bytes() == (tmp_path / "b/dc2" / name).read_bytes()


def test_a_bad_value_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        write_site_seed(dhcp_site(), Secrets(admin_password="a\nb"), tmp_path, env=ENV)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rerun_keeps_the_previous_seed(tmp_path: Path) -> None:
    first = write_site_seed(dhcp_site(), Secrets(), tmp_path, env=ENV)
    before = {p.name: p.read_bytes() for p in first.directory.iterdir()}
    with pytest.raises(InputError):
        write_site_seed(dhcp_site(), Secrets(admin_password="bad "), tmp_path, env=ENV)
    assert {p.name: p.read_bytes() for p in first.directory.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["dc1"]


def test_batch_reports_every_bad_site_and_writes_nothing(tmp_path: Path) -> None:
    jobs = [(dhcp_site(), Secrets(admin_password="x\ny")),
            (static_site(), Secrets()),
            (static_site(name="dc3", fqdn="engine.dc3.example.net"), Secrets(root_password=""))]
    with pytest.raises(InputError) as info:
        build_seeds(jobs, tmp_path, epoch=0)
    assert info.value.problems == (
        "site dc1: admin_password: contains a line break, which the answer file cannot carry",
        "site dc3: root_password: is empty",
    )
    assert visible(tmp_path) == []
    assert state_of(tmp_path) == ["format", "lock"]


def test_a_late_bad_site_in_a_pooled_batch_leaves_nothing_staged(tmp_path: Path) -> None:
    sites = [dhcp_site(name=f"s{i:02d}", fqdn=f"engine.s{i:02d}.example.com") for i in range(20)]
    jobs = [(site, Secrets()) for site in sites[:-1]]
    jobs.append((sites[-1], Secrets(admin_password="bad\n")))
    with pytest.raises(InputError):
        build_seeds(jobs, tmp_path, epoch=0)
    assert visible(tmp_path) == []
    assert state_of(tmp_path) == ["format", "lock"]


def test_a_one_off_seed_replaces_an_older_directory_whole(tmp_path: Path) -> None:
    (tmp_path / "dc1").mkdir()
    (tmp_path / "dc1" / "left-over").write_text("from an older launch")
    artifacts = write_site_seed(dhcp_site(), Secrets(), tmp_path, env=ENV)
    assert sorted(p.name for p in artifacts.directory.iterdir()) == sorted(
        f.name for f in artifacts.files)
    assert [p.name for p in tmp_path.iterdir()] == ["dc1"]


def test_big_batches_on_a_process_pool_match_single_site_builds(tmp_path: Path) -> None:
    sites = [dhcp_site(name=f"s{i:02d}", fqdn=f"engine.s{i:02d}.example.com") for i in range(20)]
    artifacts = build_seeds([(site, Secrets()) for site in sites], tmp_path / "batch", epoch=0)
    assert visible(tmp_path / "batch") == [s.name for s in sites]
    for site, batch in zip(sites[:3], artifacts, strict=False):
        single = write_site_seed(site, Secrets(), tmp_path / "one", env={"SOURCE_DATE_EPOCH": "0"})
        assert single.checksums == batch.checksums


class RecordedFlushAhead(FlushAhead):
    """The real flush ahead, noting how many site directories were complete when it began."""

    started_with: ClassVar[list[int]] = []

    def start(self) -> None:
        self.started_with.append(len(list(self._directory.glob("*/manifest.json"))))
        super().start()


def test_a_big_batch_begins_its_writeback_before_its_last_sites(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("builder.seed.master.FlushAhead", RecordedFlushAhead)
    monkeypatch.setattr(RecordedFlushAhead, "started_with", [])
    sites = [dhcp_site(name=f"s{i:02d}", fqdn=f"engine.s{i:02d}.example.com") for i in range(20)]
    build_seeds([(site, Secrets()) for site in sites], tmp_path / "batch", epoch=0)
    (complete,) = RecordedFlushAhead.started_with  # once
    assert complete >= round(20 * FLUSH_AHEAD_SHARE)
    assert visible(tmp_path / "batch") == [s.name for s in sites]

    RecordedFlushAhead.started_with.clear()
    build_seeds([(dhcp_site(), Secrets())], tmp_path / "small", epoch=0)
    assert RecordedFlushAhead.started_with == []  # a few files are fsynced one by one


def test_a_flush_ahead_that_fails_is_left_to_the_flush_that_must_succeed(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    def flushing() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "flush-ahead"]

    with FlushAhead(tmp_path / "gone") as flush:
        flush.start()
        flush.start()
        assert len(flushing()) <= 1  # started once
    assert flushing() == []  # waited for on leaving
    assert capfd.readouterr().err == ""  # no traceback from the thread
