"""`he-build appliance` end to end: cached stages on re-run, byte-identical packaging with
SOURCE_DATE_EPOCH, one-line errors and nothing published on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from builder.cli.he_build import main
from builder.disk.debian_standin import DebianTestBackend
from builder.disk.registry import create_backend, load_recipe
from builder.errors import ExitCode
from builder.pipeline.appliance import disk_stage
from builder.pipeline.stages import stage_key
from builder.pipeline.store import StageCache, default_cache_root
from tests.fixtures.appliance import DemoAppliance
from tests.fixtures.release import KeyFiles

pytestmark = pytest.mark.integration


def seeded_cache(tmp_path: Path, name: str, stages: tuple[str, ...]) -> Path:
    """A fresh cache root sharing only the given (expensive) stages with the default cache,
    so the packaging stages run from scratch."""
    recipe = load_recipe("debian-test")
    backend = create_backend(recipe)
    assert isinstance(backend, DebianTestBackend)
    disk = disk_stage(recipe, default_cache_root({}), {})
    keys = {"disk": stage_key(disk, disk.inputs(), {}), "rootfs": backend.rootfs_key()}
    shared = StageCache(default_cache_root({}))
    root = tmp_path / name
    for stage in stages:
        source = shared.lookup(stage, keys[stage])
        assert source is not None, f"{stage} is not in the default cache yet"
        (root / stage).mkdir(parents=True)
        subprocess.run(["cp", "-al", str(source), str(root / stage / keys[stage])], check=True)
    return root


def build(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cache: Path,
          out: Path, *extra: str) -> dict[str, Any]:
    monkeypatch.setenv("HE_BUILDER_CACHE", str(cache))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    code = main(["appliance", "--recipe", "debian-test", "--out", str(out), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return {a["stage"]: a for a in json.loads(captured.out)["artifacts"]}


def test_rerun_hits_the_cache_and_builds_are_reproducible(
        demo_appliance: DemoAppliance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cache_a = seeded_cache(tmp_path, "cache-a", ("disk",))
    first = build(monkeypatch, capsys, cache_a, tmp_path / "out1")
    assert [first[s]["cache"] for s in ("disk", "ova", "rpm")] == ["hit", "built", "built"]
    assert first["rpm"]["signed_by"] is None and "signed_by" not in first["ova"]
    second = build(monkeypatch, capsys, cache_a, tmp_path / "out2")
    assert {a["cache"] for a in second.values()} == {"hit"}
    cache_b = seeded_cache(tmp_path, "cache-b", ("disk",))
    other = build(monkeypatch, capsys, cache_b, tmp_path / "out3")
    assert other["ova"]["cache"] == "built" and other["rpm"]["cache"] == "built"
    for stage in ("ova", "rpm"):
        assert first[stage]["sha256"] == second[stage]["sha256"] == other[stage]["sha256"]
        path = Path(other[stage]["path"])
        assert path.is_file() and path.stat().st_size == other[stage]["size"]
    assert (tmp_path / "out1").joinpath(Path(first["ova"]["path"]).name).read_bytes() == \
        Path(other["ova"]["path"]).read_bytes()


@pytest.mark.parametrize(("fmt", "stages"), [("ovf", ["disk", "ova"]),
                                             ("qcow2", ["disk", "qcow2", "rpm"])])
def test_text_summary_table(demo_appliance: DemoAppliance, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                            fmt: str, stages: list[str]) -> None:
    """The standard layout gets no RPM (hosted-engine cannot open it); qcow2 is wrapped."""
    monkeypatch.setenv("HE_BUILDER_CACHE", str(seeded_cache(tmp_path, "c", ("disk",))))
    assert main(["appliance", "--out", str(tmp_path / "o"), "--format", fmt,
                 "--compress", "none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["stage", "cache", "size", "sha256"]
    assert [line.split()[0] for line in lines[1:]] == stages
    assert sorted(p.suffix for p in (tmp_path / "o").iterdir()) == sorted(
        {"disk": ".raw", "ova": ".ova", "qcow2": ".qcow2", "rpm": ".rpm"}[s] for s in stages)


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_the_output_names_the_key_that_signed_the_rpm(
        demo_appliance: DemoAppliance, release_key: KeyFiles, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`--json` and the text summary say which key signed the RPM, also when the signed RPM
    comes from the cache (no key is tried then, the stage entry remembers it)."""
    cache = seeded_cache(tmp_path, "c", ("disk",))
    for name, value in release_key.env.items():
        monkeypatch.setenv(name, value)
    signing = ("--sign-key", str(release_key.secret), "--sign-passphrase", "env:TEST_PASSPHRASE")
    built = build(monkeypatch, capsys, cache, tmp_path / "o1", *signing)
    assert (built["rpm"]["cache"], built["rpm"]["signed_by"]) == ("built", release_key.fingerprint)
    monkeypatch.delenv("TEST_PASSPHRASE")
    assert main(["appliance", "--recipe", "debian-test", "--out", str(tmp_path / "o2"),
                 "--sign-key", str(release_key.secret)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rpm_name = Path(built["rpm"]["path"]).name
    assert [line.split()[:2] for line in lines[1:4]] == [["disk", "hit"], ["ova", "hit"],
                                                         ["rpm", "hit"]]
    assert lines[4:] == [f"{rpm_name} is signed by key {release_key.fingerprint}"]


def test_missing_recipe_is_one_line_and_publishes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["appliance", "--recipe", "no-such-recipe", "--out", str(out)]) == \
        ExitCode.BAD_INPUT
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == ["he-build: error: no such recipe: no-such-recipe"]
    assert not out.exists()


def test_disk_too_small_is_one_line_and_leaves_nothing(
        demo_appliance: DemoAppliance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundled = load_recipe("debian-test").path.read_text()
    recipe = tmp_path / "small.yaml"
    recipe.write_text(bundled.replace("disk_size_gib: 3", "disk_size_gib: 1"))
    cache = seeded_cache(tmp_path, "cache", ("rootfs",))
    monkeypatch.setenv("HE_BUILDER_CACHE", str(cache))
    out = tmp_path / "out"
    assert main(["appliance", "--recipe", str(recipe), "--out", str(out)]) == ExitCode.BAD_INPUT
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "disk too small" in errors[0]
    assert not out.exists()
    assert not (cache / "disk").exists() or list((cache / "disk").iterdir()) == []
