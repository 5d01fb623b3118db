"""Golden files of the two appliance RPMs (the OVA RPM and oVirt 4.5.7's qcow2 RPM): the spec
and every source rpmbuild packs besides the image (hosted-engine's discovery file, the metadata
JSON, the README), staged by the same function `he-build appliance` uses, from a fixed
ApplianceMeta, oVirt's package names, a small fixed image file and SOURCE_DATE_EPOCH."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.ova.digests import file_digests
from builder.rpm.metadata import ImageKind, RpmLayout, rpm_layout
from builder.rpm.rpmbuild import stage_sources
from tests.fixtures.golden import GoldenFiles
from tests.fixtures.golden_inputs import APPLIANCE, PACKAGES, RPM_IMAGE_BYTES, SOURCE_DATE_EPOCH

KINDS: tuple[ImageKind, ...] = ("ova", "qcow2")


def layout_of(kind: ImageKind) -> RpmLayout:
    return rpm_layout(kind, APPLIANCE, PACKAGES)


def golden_files(kind: ImageKind) -> dict[str, str]:
    """File staged for rpmbuild (relative to its _topdir) -> its golden file."""
    layout = layout_of(kind)
    staged = {f"SPECS/{layout.package}.spec": f"{layout.package}.spec",
              f"SOURCES/{layout.metadata_file}": layout.metadata_file,
              f"SOURCES/{layout.discovery_file}": layout.discovery_file,
              "SOURCES/README": "README"}
    return {path: f"rpm/{kind}/{name}" for path, name in staged.items()}


def golden_names() -> set[str]:
    """Every golden file this module checks (tests/unit/test_golden_files.py uses it)."""
    return {name for kind in KINDS for name in golden_files(kind).values()}


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> dict[ImageKind, Path]:
    """One rpmbuild _topdir per kind, staged as build_rpm stages it (rpmbuild is not run)."""
    tops: dict[ImageKind, Path] = {}
    for kind in KINDS:
        work = tmp_path_factory.mktemp(f"golden-rpm-{kind}")
        layout = layout_of(kind)
        image = work / layout.image_file
        image.write_bytes(RPM_IMAGE_BYTES)
        top = work / "top"
        top.mkdir()
        stage_sources(top, image, layout, meta=APPLIANCE, names=PACKAGES,
                      digests=file_digests(image), built_at=SOURCE_DATE_EPOCH)
        tops[kind] = top
    return tops


@pytest.mark.parametrize("kind", KINDS)
def test_rpmbuild_gets_exactly_the_files_with_golden_copies(staged: dict[ImageKind, Path],
                                                            kind: ImageKind) -> None:
    top = staged[kind]
    found = {str(path.relative_to(top)) for path in top.rglob("*") if path.is_file()}
    assert found == {*golden_files(kind), f"SOURCES/{layout_of(kind).image_file}"}


@pytest.mark.parametrize(("kind", "staged_path"),
                         [(kind, path) for kind in KINDS for path in golden_files(kind)])
def test_rpm_file_matches_golden(staged: dict[ImageKind, Path], golden: GoldenFiles,
                                 kind: ImageKind, staged_path: str) -> None:
    golden.check(golden_files(kind)[staged_path], (staged[kind] / staged_path).read_bytes())
