"""The SQLite image index: every frame recorded, recalled by target, filter, type and time."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from runner.devices.interfaces import Frame, GuideStats, RoiBox
from runner.storage import INDEX_FILENAME, FrameMeta, ImageIndex, ImageRecord

T0 = datetime(2025, 1, 15, 20, 0, tzinfo=UTC)


def record(
    i: int, target: str | None, filt: str | None, kind: str = "light", exposure: float = 300.0
) -> ImageRecord:
    return ImageRecord(
        path=f"{target}/{filt}/{kind}_{i:04d}.fits",
        frame_type=kind,
        exposure=exposure,
        date_obs=T0 + timedelta(minutes=10 * i),
        target=target,
        filter=filt,
        width=640,
        height=480,
        hfr=2.0 + i / 10,
    )


def night(index: ImageIndex) -> None:
    for i in range(6):
        index.add(record(i, "M31", "Ha" if i % 2 else "OIII"))
    for i in range(6, 9):
        index.add(record(i, "M42", "L", exposure=60.0))
    for i in range(9, 12):
        index.add(record(i, None, None, "dark"))


def test_query_by_target_filter_type_and_time(tmp_path: Path) -> None:
    with ImageIndex(tmp_path) as index:
        night(index)
        assert (tmp_path / INDEX_FILENAME).exists()
        assert len(index.query()) == 12
        ha = index.query(target="M31", filter="Ha")
        assert [r.path for r in ha] == [f"M31/Ha/light_{i:04d}.fits" for i in (1, 3, 5)]
        assert index.count(frame_type="dark") == 3
        window = index.query(since=T0 + timedelta(minutes=20), until=T0 + timedelta(minutes=60))
        assert [r.date_obs for r in window] == [T0 + timedelta(minutes=m) for m in (20, 30, 40, 50)]
        latest = index.query(target="M42", newest_first=True, limit=1)[0]
        assert latest.path == "M42/L/light_0008.fits" and latest.date_obs.tzinfo is UTC
        assert index.targets() == ["M31", "M42"]
        totals = {
            (s.target, s.filter, s.frame_type): (s.frames, s.total_exposure)
            for s in index.summary()
        }
        assert totals[("M31", "Ha", "light")] == (3, 900.0)
        assert totals[("M42", "L", "light")] == (3, 180.0)
        assert totals[(None, None, "dark")] == (3, 900.0)


def test_persists_and_re_adding_a_path_replaces_its_row(tmp_path: Path) -> None:
    with ImageIndex(tmp_path) as index:
        first = index.add(record(1, "M31", "Ha"))
    with ImageIndex(tmp_path) as index:
        again = index.add(dataclasses.replace(record(1, "M31", "Ha"), hfr=3.5))
        assert again == first and index.count() == 1
        got = index.get("M31/Ha/light_0001.fits")
        assert got is not None and got.hfr == 3.5 and got.id == first
        assert (
            index.remove("M31/Ha/light_0001.fits") and index.get("M31/Ha/light_0001.fits") is None
        )


def test_record_from_a_frame_and_its_metadata(tmp_path: Path) -> None:
    f = Frame(
        data=np.zeros((240, 320), np.uint16),
        exposure=120.0,
        start=T0,
        frame_type="light",
        binning=2,
        gain=100,
        offset=20,
        ccd_temp=-10.1,
        set_temp=-10.0,
        roi=RoiBox(0, 0, 640, 480),
    )
    meta = FrameMeta(
        object_name="NGC 7000",
        filter="Ha",
        ra=314.7,
        dec=44.5,
        focus_position=25100,
        focus_temperature=8.5,
        hfr=2.4,
        star_count=180,
        guiding=GuideStats(0.5, 0.4, 0.64, "arcsec", 60),
    )
    with ImageIndex(tmp_path / INDEX_FILENAME) as index:  # the file itself also names it
        index.add_frame(tmp_path / "NGC 7000" / "Ha" / "x.fits", f, meta, run_id="run-1")
        (got,) = index.query(target="NGC 7000", run_id="run-1")
        with pytest.raises(ValueError, match="not inside"):
            index.add_frame(tmp_path.parent / "elsewhere.fits", f, meta)
    expected = ImageRecord.from_frame(f, "NGC 7000/Ha/x.fits", meta, run_id="run-1")
    assert got == dataclasses.replace(expected, id=got.id), "every field survives the round trip"
    assert (got.width, got.height, got.binning, got.gain, got.offset) == (320, 240, 2, 100, 20)
    assert (got.ccd_temp, got.set_temp, got.focus_position, got.focus_temp) == (
        -10.1,
        -10.0,
        25100,
        8.5,
    )
    assert (got.guide_rms, got.guide_rms_ra, got.guide_rms_dec, got.guide_unit) == (
        0.64,
        0.5,
        0.4,
        "arcsec",
    )
    assert (got.hfr, got.star_count, got.ra, got.dec) == (2.4, 180, 314.7, 44.5)


def test_a_reader_sees_frames_while_the_engine_writes(tmp_path: Path) -> None:
    writer = ImageIndex(tmp_path)
    reader = ImageIndex(tmp_path)
    seen: list[int] = []

    def write() -> None:
        for i in range(50):
            writer.add(record(i, "M31", "L"))

    t = threading.Thread(target=write)
    t.start()
    while t.is_alive():
        seen.append(reader.count())
    t.join()
    seen.append(reader.count())
    assert seen == sorted(seen) and seen[-1] == 50
    writer.close()
    reader.close()
