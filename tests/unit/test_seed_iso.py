"""The seed ISO reopened with pycdlib: label, names in all three namespaces, bytes, fixed dates;
an image made from its layout's template is the image pycdlib masters, byte for byte."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pycdlib
from hypothesis import given, settings
from hypothesis import strategies as st
from pycdlib.dr import DirectoryRecord

from builder.seed.iso import SECTOR, master_iso, master_with_pycdlib, write_iso

FILES = [("user-data", b"#cloud-config\nhostname: a\n"), ("meta-data", b"instance-id: x\n"),
         ("network-config", b"version: 2\n")]
EPOCH = 1700000000  # 2023-11-14 22:13:20 UTC


def open_iso(image: bytes) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    return iso


def read(iso: pycdlib.PyCdlib, **path: str) -> bytes:
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, **path)
    return out.getvalue()


def test_label_and_every_file_in_every_namespace() -> None:
    iso = open_iso(master_iso(FILES, epoch=EPOCH))
    try:
        assert iso.pvd.volume_identifier.rstrip(b" ") == b"cidata"
        assert iso.has_rock_ridge() and iso.has_joliet()
        for name, data in FILES:
            assert read(iso, rr_path=f"/{name}") == data
            assert read(iso, joliet_path=f"/{name}") == data
        assert read(iso, iso_path="/USER_DAT.;1") == FILES[0][1]
    finally:
        iso.close()


def test_same_epoch_gives_identical_bytes_at_different_times() -> None:
    first = master_iso(FILES, epoch=EPOCH)
    time.sleep(1.1)  # pycdlib would otherwise stamp a different second
    assert master_iso(FILES, epoch=EPOCH) == first
    assert master_iso(FILES, epoch=EPOCH + 1) != first


def test_bytes_do_not_depend_on_the_local_time_zone() -> None:
    code = ("import hashlib, sys; from builder.seed.iso import master_iso, write_iso; "
            "from tests.unit.test_seed_iso import FILES, EPOCH; "
            "sys.stdout.write(hashlib.sha256(master_iso(FILES, epoch=EPOCH)).hexdigest())")
    repo = Path(__file__).resolve().parents[2]
    digests = {
        subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True,
                       check=True, env={**os.environ, "TZ": tz}).stdout
        for tz in ("UTC", "Asia/Kolkata", "America/St_Johns")
    }
    assert digests == {hashlib.sha256(master_iso(FILES, epoch=EPOCH)).hexdigest()}


def test_every_date_is_the_epoch_in_utc() -> None:
    iso = open_iso(master_iso(FILES, epoch=EPOCH))
    try:
        for vd in (iso.pvd, iso.joliet_vd):
            assert vd is not None
            for date in (vd.volume_creation_date, vd.volume_modification_date,
                         vd.volume_effective_date):
                assert date.record() == b"2023111422132000\x00"
        stamp = bytes([123, 11, 14, 22, 13, 20, 0])
        root = iso.get_record(rr_path="/")
        assert isinstance(root, DirectoryRecord)
        assert root.date.record() == stamp
        for tree in ({"rr_path": "/"}, {"joliet_path": "/"}):
            for record in iso.list_children(**tree):  # '.', '..' and the files
                assert record.date.record() == stamp
                if record.rock_ridge is not None:
                    tf = record.rock_ridge.dr_entries.tf_record
                    times = [getattr(tf, f) for f in ("creation_time", "access_time",
                                                      "modification_time",
                                                      "attribute_change_time")]
                    assert [t.record() for t in times if t is not None] != []
                    assert all(t.record() == stamp for t in times if t is not None)
    finally:
        iso.close()


def test_write_iso_creates_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "seed.iso"
    image = write_iso(path, FILES, epoch=EPOCH)
    assert path.read_bytes() == image == master_iso(FILES, epoch=EPOCH)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["seed.iso"]


# Lengths around sector boundaries matter most: they decide the extents of the files after.
LENGTHS = st.one_of(st.sampled_from([1, SECTOR - 1, SECTOR, SECTOR + 1, 3 * SECTOR]),
                    st.integers(min_value=1, max_value=12 * SECTOR))
SEED_NAMES = ["user-data", "meta-data", "heanswers.conf", "network-config", "manifest.json"]


@st.composite
def seed_files(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    names = draw(st.lists(st.sampled_from(SEED_NAMES), min_size=1, max_size=5, unique=True))
    return [(name, draw(st.binary(min_size=length, max_size=length)))
            for name, length in ((name, draw(LENGTHS)) for name in names)]


@settings(max_examples=120, deadline=None)
@given(seed_files(), st.sampled_from([0, EPOCH]))
def test_template_images_are_what_pycdlib_masters(files: list[tuple[str, bytes]],
                                                  epoch: int) -> None:
    image = master_iso(files, epoch=epoch)
    assert image == master_with_pycdlib(files, epoch=epoch)
    iso = open_iso(image)
    for name, data in files:
        assert read(iso, joliet_path=f"/{name}") == data
    iso.close()


def test_images_of_one_layout_differ_only_by_their_files() -> None:
    first = master_iso(FILES, epoch=EPOCH)
    other = [(name, data.upper()) for name, data in FILES]  # same lengths: same layout
    assert master_iso(other, epoch=EPOCH) == master_with_pycdlib(other, epoch=EPOCH) != first


def test_an_empty_file_is_mastered_by_pycdlib() -> None:
    files = [*FILES, ("vendor-data", b"")]
    image = master_iso(files, epoch=EPOCH)
    assert image == master_with_pycdlib(files, epoch=EPOCH)
    iso = open_iso(image)
    assert read(iso, joliet_path="/vendor-data") == b""
    iso.close()
