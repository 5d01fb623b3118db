"""What `he-build release` says after a run: the stages, the published files, and which key
signed them, as the signing stage recorded it (its cache entry's facts, so also when reused)."""

from __future__ import annotations

from pathlib import Path

from builder.cli.release import results_text
from builder.model import Artifact
from builder.pipeline.release import ReleaseRun
from builder.pipeline.stages import StageResult

FINGERPRINT = "2EC3AEDE1EE9F3D790D266DF646642753200F72A"


def result(stage: str, *, reused: bool, **facts: str) -> StageResult:
    rpm = Artifact("rpm", Path(f"/cache/{stage}/a.rpm"), 10, "0" * 64)
    return StageResult(stage, "k" * 32, reused, 0.5, {"rpm": rpm}, facts)


def test_the_summary_names_the_key_the_signing_stage_recorded() -> None:
    done = ReleaseRun((result("rpm", reused=True),
                       result("rpm-sign", reused=True, signed_by=FINGERPRINT)),
                      Path("/srv/publish"), (("SHA256SUMS", 100, "1" * 64),))
    assert done.signed_by == FINGERPRINT
    assert results_text(done).splitlines()[-1] == (
        f"2 of 2 stages reused; published /srv/publish (1 file), signed by key {FINGERPRINT}")


def test_without_a_signing_stage_no_key_is_named() -> None:
    done = ReleaseRun((result("rpm", reused=False),), Path("/p"), ())
    assert done.signed_by is None
    assert results_text(done).splitlines()[-1] == "0 of 1 stage reused; published /p (0 files)"
