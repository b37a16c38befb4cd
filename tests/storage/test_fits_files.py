"""FITS files as stacking tools will read them back (with astropy), written atomically."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time

from runner.devices.interfaces import Frame, GuideStats, RoiBox
from runner.storage import FrameMeta, write_fits
from runner.storage.fits import save_frame

START = datetime(2025, 1, 15, 22, 30, 5, 123000, tzinfo=UTC)


def frame(frame_type: str = "light", *, bayer: str | None = None, binning: int = 1) -> Frame:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 65536, (60, 80), dtype=np.uint16)
    data[0, 0], data[0, 1] = 0, 65535  # both ends of the range survive BZERO
    return Frame(
        data=data,
        exposure=0.0 if frame_type == "bias" else 300.0,
        start=START,
        frame_type=frame_type,
        binning=binning,
        gain=120,
        offset=30,
        ccd_temp=-9.8,
        set_temp=-10.0,
        roi=RoiBox(16, 8, 80 * binning, 60 * binning),
        bayer=bayer,
    )


META = FrameMeta(
    object_name="M 31",
    filter="Ha",
    ra=10.684708,
    dec=41.26875,
    site_latitude=52.1,
    site_longitude=-4.25,
    site_elevation=120.0,
    instrument="Sim Camera",
    telescope="Sim Scope",
    focal_length=400.0,
    pixel_size=3.76,
    egain=0.8,
    focus_position=25_123,
    focus_temperature=7.4,
    guiding=GuideStats(rms_ra=0.41, rms_dec=0.32, rms_total=0.52, unit="arcsec", frames=150),
    hfr=2.1,
    star_count=211,
)


def test_pixels_and_headers_read_back(tmp_path: Path) -> None:
    f = frame()
    path = write_fits(tmp_path / "a" / "m31.fits", f, META)
    with fits.open(path) as hdul:
        hdu = hdul[0]
        assert np.array_equal(hdu.data, f.data) and hdu.data.dtype == np.uint16
        h = hdu.header
    assert h["SIMPLE"] is True and h["BITPIX"] == 16 and h["BZERO"] == 32768
    assert (h["NAXIS1"], h["NAXIS2"]) == (80, 60)
    assert h["EXPTIME"] == h["EXPOSURE"] == 300.0
    assert Time(h["DATE-OBS"], scale="utc").datetime.replace(tzinfo=UTC) == START
    assert h["DATE-AVG"].startswith("2025-01-15T22:32:35.123")
    assert h["MJD-OBS"] == pytest.approx(Time(START).mjd, abs=1e-7)
    assert h["IMAGETYP"] == "Light Frame" and h["FILTER"] == "Ha" and h["OBJECT"] == "M 31"
    assert (h["CCD-TEMP"], h["SET-TEMP"]) == (-9.8, -10.0)
    assert (h["XBINNING"], h["YBINNING"], h["XORGSUBF"], h["YORGSUBF"]) == (1, 1, 16, 8)
    assert (h["GAIN"], h["OFFSET"], h["EGAIN"]) == (120, 30, 0.8)
    assert (h["FOCUSPOS"], h["FOCTEMP"]) == (25_123, 7.4)
    assert (h["RA"], h["DEC"]) == (pytest.approx(10.684708), pytest.approx(41.26875))
    sexa = SkyCoord(h["OBJCTRA"], h["OBJCTDEC"], unit=("hourangle", "deg"))
    assert sexa.separation(SkyCoord(10.684708, 41.26875, unit="deg")).arcsec < 0.2
    assert (h["SITELAT"], h["SITELONG"], h["SITEELEV"]) == (52.1, -4.25, 120.0)
    assert (h["INSTRUME"], h["TELESCOP"], h["FOCALLEN"]) == ("Sim Camera", "Sim Scope", 400.0)
    assert h["XPIXSZ"] == 3.76
    assert (h["GUIDERMS"], h["GUIDRMSR"], h["GUIDRMSD"]) == (0.52, 0.41, 0.32)
    assert h["GUIDUNIT"] == "arcsec" and h["GUIDFRMS"] == 150
    assert (h["HFR"], h["STARS"]) == (2.1, 211)
    assert "BAYERPAT" not in h and h["ROWORDER"] == "TOP-DOWN"


@pytest.mark.parametrize(
    ("kind", "imagetyp"),
    [("dark", "Dark Frame"), ("flat", "Flat Frame"), ("bias", "Bias Frame")],
)
def test_calibration_frame_types(tmp_path: Path, kind: str, imagetyp: str) -> None:
    path = write_fits(tmp_path / f"{kind}.fits", frame(kind), FrameMeta())
    h = fits.getheader(path)
    assert h["IMAGETYP"] == imagetyp
    assert "OBJECT" not in h and "RA" not in h and "GUIDERMS" not in h


def test_one_shot_colour_and_binned_frames(tmp_path: Path) -> None:
    h = fits.getheader(write_fits(tmp_path / "osc.fits", frame(bayer="RGGB"), META))
    assert (h["BAYERPAT"], h["XBAYROFF"], h["YBAYROFF"]) == ("RGGB", 0, 0)
    h2 = fits.getheader(write_fits(tmp_path / "bin.fits", frame(binning=2), META))
    assert (h2["XBINNING"], h2["XORGSUBF"], h2["XPIXSZ"]) == (2, 8, 7.52)


def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "frame.fits"
    old = frame()
    write_fits(path, old, META)
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    newer = frame()
    newer.data[:] = 7
    with pytest.raises(OSError, match="disk full"):
        write_fits(path, newer, META)
    assert path.read_bytes() == before, "the old frame is untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.fits"], "no temp file left"
    with pytest.raises(OSError):
        write_fits(tmp_path / "new.fits", newer, META)
    assert not (tmp_path / "new.fits").exists()


async def test_save_frame_off_the_loop_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "f.fits"
    first = frame()
    await save_frame(path, first, META)
    second = frame()
    second.data[:] = 1234
    second.start = START + timedelta(seconds=310)
    await save_frame(path, second, META)
    with fits.open(path) as hdul:
        assert np.all(hdul[0].data == 1234)
        assert hdul[0].header["DATE-OBS"] == "2025-01-15T22:35:15.123"


def test_only_uint16_frames(tmp_path: Path) -> None:
    f = frame()
    f.data = f.data.astype(np.float32)
    with pytest.raises(TypeError):
        write_fits(tmp_path / "x.fits", f)
