"""The words the console prints around figures: counts, sizes, times."""

from __future__ import annotations

from builder.console import counted, human_size, utc_time


def test_counted_agrees_with_its_figure() -> None:
    assert counted(1, "site") == "1 site"
    assert [counted(n, "problem") for n in (0, 2)] == ["0 problems", "2 problems"]
    assert counted(3, "entry", "entries") == "3 entries"
    assert counted(1, "entry", "entries") == "1 entry"
    assert [counted(d, "day") for d in (1.0, 0.5, 30.0, 999999.0)] == [
        "1 day", "0.5 days", "30 days", "999999 days"]


def test_human_size_keeps_bytes_whole_and_stops_at_gib() -> None:
    assert human_size(812) == "812 B"
    assert human_size(4096) == "4.0 KiB"
    assert human_size(3 * 1024**3) == "3.0 GiB"
    assert human_size(5 * 1024**4) == "5120.0 GiB"


def test_utc_time_is_iso_8601_in_utc_to_the_second() -> None:
    assert utc_time(0) == "1970-01-01T00:00:00Z"
    assert utc_time(1764727038.9) == "2025-12-03T01:57:18Z"
