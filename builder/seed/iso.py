"""The NoCloud seed ISO, mastered in-process with pycdlib, byte-identical for a fixed epoch.

pycdlib stamps the current local time in several places: the volume descriptors (creation,
effective, and a modification date it computes while writing), every directory record
(including '.' and '..' and both the ISO9660 and Joliet trees) and every Rock Ridge TF entry.
All of them are replaced here by one UTC date.
"""

from __future__ import annotations

import functools
import io
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycdlib
from pycdlib import dates

from builder.atomic import write_atomic

VOLUME_ID = "cidata"
APPLICATION_ID = "HE-BUILDER SEED"
SECTOR = 2048
# Offset of the volume modification date inside a primary/supplementary volume descriptor.
VD_MODIFICATION_DATE_OFFSET = 830
# ISO 9660: volume descriptors from sector 16 (type 1 primary, 2 supplementary such as Joliet,
# 255 terminator), the root directory's record at offset 156 of one; in a directory record the
# extent (both-endian, little first) at 2, the data length at 10, flags at 25, the name's length
# at 32 and the name at 33.
FIRST_VD_SECTOR = 16
VD_PRIMARY, VD_SUPPLEMENTARY, VD_TERMINATOR = 1, 2, 255
VD_ROOT_RECORD = 156
DR_EXTENT, DR_DATA_LENGTH, DR_FLAGS, DR_NAME_LENGTH, DR_NAME = 2, 10, 25, 32, 33
DR_FLAG_DIRECTORY = 0x02
TF_FIELDS = ("creation_time", "access_time", "modification_time", "attribute_change_time",
             "backup_time", "expiration_time", "effective_time")


def iso9660_name(name: str) -> str:
    """The level-1 ISO9660 name genisoimage gives: 8 upper-case characters, `_` for others."""
    stem = "".join(c if c.isalnum() else "_" for c in name.upper())[:8]
    return f"/{stem}.;1"


def master_iso(files: Sequence[tuple[str, bytes]], *, epoch: int) -> bytes:
    """An ISO9660 + Joliet + Rock Ridge image labelled `cidata` holding `files` in the root:
    the bytes pycdlib masters (`master_with_pycdlib`), made from a layout's template.

    Seeds of one batch share a layout (the same file names, each file the same number of
    sectors), so pycdlib masters each layout once, with zeros for the files' bytes; an image
    is then its template with each file's bytes and length put in place."""
    layout = tuple((name, -(-len(data) // SECTOR)) for name, data in files)
    if any(sectors == 0 for _, sectors in layout):
        return master_with_pycdlib(files, epoch=epoch)  # an empty file has no extent to fill
    template = _layout_template(layout, epoch)
    image = bytearray(template.image)
    for (_, data), (extent, records) in zip(files, template.files, strict=True):
        start = extent * SECTOR
        image[start : start + len(data)] = data
        for record in records:
            _put_data_length(image, record, len(data))
    return bytes(image)


@dataclass(frozen=True)
class _Template:
    """An image of one layout, and for each file its extent and the offsets of the directory
    records (ISO9660 and Joliet) that give its length."""

    image: bytes
    files: tuple[tuple[int, tuple[int, ...]], ...]


@functools.lru_cache(maxsize=64)
def _layout_template(layout: tuple[tuple[str, int], ...], epoch: int) -> _Template:
    image = master_with_pycdlib([(name, bytes(sectors * SECTOR)) for name, sectors in layout],
                                epoch=epoch)
    records = _root_records_by_extent(image)
    files = []
    for name, _ in layout:
        extent = _extent_of(image, name, records)
        files.append((extent, tuple(records[extent])))
    return _Template(image, tuple(files))


def _extent_of(image: bytes, name: str, records: Mapping[int, list[int]]) -> int:
    """The extent of the file whose ISO9660 record carries `name`'s level-1 name."""
    wanted = iso9660_name(name).lstrip("/").encode("ascii")
    for extent, offsets in records.items():
        for offset in offsets:
            length = image[offset + DR_NAME_LENGTH]
            if image[offset + DR_NAME : offset + DR_NAME + length] == wanted:
                return extent
    raise ValueError(f"no ISO9660 directory record for {name}")


def _root_records_by_extent(image: bytes) -> dict[int, list[int]]:
    """Extent -> offsets of the file records in every volume descriptor's root directory."""
    found: dict[int, list[int]] = {}
    sector = FIRST_VD_SECTOR
    while image[sector * SECTOR] != VD_TERMINATOR:
        if image[sector * SECTOR] in (VD_PRIMARY, VD_SUPPLEMENTARY):
            root = sector * SECTOR + VD_ROOT_RECORD
            for offset in _directory_records(image, _le32(image, root + DR_EXTENT),
                                             _le32(image, root + DR_DATA_LENGTH)):
                if not image[offset + DR_FLAGS] & DR_FLAG_DIRECTORY:
                    found.setdefault(_le32(image, offset + DR_EXTENT), []).append(offset)
        sector += 1
    return found


def _directory_records(image: bytes, extent: int, length: int) -> Iterator[int]:
    """Offsets of the records of a directory (a record never crosses a sector: a zero length
    byte pads to the next one)."""
    offset, end = extent * SECTOR, extent * SECTOR + length
    while offset < end:
        size = image[offset]
        if size == 0:
            offset = (offset // SECTOR + 1) * SECTOR
            continue
        yield offset
        offset += size


def _le32(image: bytes, offset: int) -> int:
    return int.from_bytes(image[offset : offset + 4], "little")


def _put_data_length(image: bytearray, record: int, length: int) -> None:
    """A directory record's data length, both-endian (ISO 9660 7.3.3)."""
    image[record + DR_DATA_LENGTH : record + DR_DATA_LENGTH + 4] = length.to_bytes(4, "little")
    image[record + DR_DATA_LENGTH + 4 : record + DR_DATA_LENGTH + 8] = length.to_bytes(4, "big")


def master_with_pycdlib(files: Sequence[tuple[str, bytes]], *, epoch: int) -> bytes:
    """The image as pycdlib masters it, every date pinned to `epoch`."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_ID,
            app_ident_str=APPLICATION_ID)
    for name, data in files:
        iso.add_fp(io.BytesIO(data), len(data), iso9660_name(name), rr_name=name,
                   joliet_path=f"/{name}")
    _pin_dates(iso, epoch)
    out = io.BytesIO()
    iso.write_fp(out)
    descriptor_sectors = [vd.extent_location() for vd in _volume_descriptors(iso)]
    iso.close()
    image = bytearray(out.getvalue())
    _pin_modification_dates(image, descriptor_sectors, epoch)
    return bytes(image)


def write_iso(path: Path, files: Sequence[tuple[str, bytes]], *, epoch: int) -> bytes:
    """Master and write the image atomically, mode 0600 (user-data holds secrets)."""
    image = master_iso(files, epoch=epoch)
    write_atomic(path, image, mode=0o600)
    return image


def _volume_descriptors(iso: pycdlib.PyCdlib) -> list[Any]:
    return [*iso.pvds, *iso.svds]


def _pin_dates(iso: pycdlib.PyCdlib, epoch: int) -> None:
    for vd in _volume_descriptors(iso):
        vd.volume_creation_date = _volume_date(epoch)
        vd.volume_effective_date = _volume_date(epoch)
        for record in _walk(vd.root_directory_record()):
            _pin_record(record, epoch)


def _walk(record: object) -> Iterator[object]:
    """A directory record and everything below it, '.' and '..' included."""
    yield record
    for child in getattr(record, "children", ()):
        if child is record:
            continue
        if child.is_dir() and not (child.is_dot() or child.is_dotdot()):
            yield from _walk(child)
        else:
            yield child


def _pin_record(record: object, epoch: int) -> None:
    record.date = _record_date(epoch)  # type: ignore[attr-defined]
    rock_ridge = getattr(record, "rock_ridge", None)
    if rock_ridge is None:
        return
    for entries in (rock_ridge.dr_entries, rock_ridge.ce_entries):
        tf = getattr(entries, "tf_record", None) if entries is not None else None
        if tf is not None:
            _pin_tf(tf, epoch)


def _pin_tf(tf: object, epoch: int) -> None:
    for field in TF_FIELDS:
        current = getattr(tf, field)
        if current is None:
            continue
        long_form = isinstance(current, dates.VolumeDescriptorDate)
        setattr(tf, field, _volume_date(epoch) if long_form else _record_date(epoch))


def _record_date(epoch: int) -> dates.DirectoryRecordDate:
    """The 7-byte directory-record date, in UTC (offset 0) whatever the local zone."""
    t = time.gmtime(epoch)
    raw = struct.pack("=BBBBBBb", t.tm_year - 1900, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,
                      t.tm_sec, 0)
    date = dates.DirectoryRecordDate()
    date.parse(raw)
    return date


def _volume_date_bytes(epoch: int) -> bytes:
    """The 17-byte volume-descriptor date: YYYYMMDDHHMMSS, hundredths, UTC offset 0."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch)).encode("ascii") + b"00\x00"


def _volume_date(epoch: int) -> dates.VolumeDescriptorDate:
    date = dates.VolumeDescriptorDate()
    date.parse(_volume_date_bytes(epoch))
    return date


def _pin_modification_dates(image: bytearray, sectors: Sequence[int], epoch: int) -> None:
    """pycdlib computes the modification date from the clock while writing: overwrite it."""
    stamp = _volume_date_bytes(epoch)
    for sector in sectors:
        start = sector * SECTOR + VD_MODIFICATION_DATE_OFFSET
        image[start : start + len(stamp)] = stamp
