"""Per-filter stacks and the FITS files post-processing reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from runner.stacking.filters import FilterStacks, frame_filter
from runner.stacking.synthetic import Sensor, StarField, Transform

WriteFits = Callable[..., Path]
START = "2026-11-25T20:{:02d}:00.000"


def _night(sensor: Sensor, field: StarField, write_fits: WriteFits,
           filters: list[str], per_filter: int) -> list[Path]:
    """LRGB interleaved the way each_filter takes it, with the cards a capture writes."""
    rng = np.random.default_rng(5)
    paths = []
    minute = 0
    for _round in range(per_filter):
        for f in filters:
            tr = Transform(rng.uniform(-4, 4), rng.uniform(-4, 4), rng.uniform(-0.2, 0.2))
            paths.append(write_fits(
                f"{f}_{minute:03d}.fits", sensor.light(field, 30.0, transform=tr, seed=minute),
                FILTER=f, OBJECT="NGC 188", TELESCOP="SimScope 80", XBINNING=1,
                **{"DATE-OBS": START.format(minute), "CCD-TEMP": -10.0 + 0.5 * (minute % 3)},
                RA=12.1075, DEC=85.245, ROWORDER="TOP-DOWN"))
            minute += 1
    return paths


def _sources(data: Path, stacking_id: str) -> list[str]:
    lines = (data / "debug" / stacking_id / "log.txt").read_text().splitlines()
    return [e["source"] for e in map(json.loads, lines)
            if e["event"] == "frame" and e["status"] in ("stacked", "reference")]


def test_each_filter_has_its_own_stack_and_no_stack_mixes_filters(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _night(sensor, field, write_fits, ["L", "R", "G", "B"], 3)
    data = tmp_path / "data"
    stacks = FilterStacks(data, queue_size=len(lights), intermediate_every=0)
    stacks.begin("NGC 188", reject=False)
    assert all(stacks.submit(p) for p in lights)
    saved = stacks.save()

    assert sorted(s.stacking_id for s in saved) == ["NGC_188_B", "NGC_188_G", "NGC_188_L",
                                                    "NGC_188_R"]
    for s in saved:
        assert s.status["stacked"] == 3 and s.status["frames"] == 3
        sources = _sources(data, s.stacking_id)
        assert len(sources) == 3
        assert {fits.getheader(p)["FILTER"] for p in sources} == {s.filter}
        # each has its own reference: the first frame of its own filter
        assert fits.getheader(data / "stacked" / f"{s.stacking_id}_final.fits")["REFFRAME"] \
            == f"{s.filter}_{['L', 'R', 'G', 'B'].index(s.filter or ''):03d}.fits"


def test_the_stack_is_a_float_fits_with_the_cards_post_processing_groups_by(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _night(sensor, field, write_fits, ["Ha"], 4)
    broken = write_fits("Ha_broken.fits", np.zeros(sensor.shape, np.uint16), FILTER="Ha")
    data = tmp_path / "data"
    stacks = FilterStacks(data, queue_size=8, intermediate_every=2)
    stacks.begin("NGC 188", kappa=2.5)
    for p in [*lights, broken]:
        stacks.submit(p)
    [saved] = stacks.save()
    assert saved.paths is not None and saved.paths.fits is not None
    assert saved.status["stacked"] == 4 and saved.status["dropped"] == 1

    with fits.open(saved.paths.fits) as hdul:
        h = hdul[0].header
        img = hdul[0].data
    assert h["BITPIX"] == -32 and img.shape == sensor.shape and np.isfinite(img).all()
    assert h["IMAGETYP"] == "Master Light"
    assert (h["OBJECT"], h["FILTER"], h["INSTRUME"], h["TELESCOP"]) == (
        "NGC 188", "Ha", "SimCam", "SimScope 80")
    assert h["NCOMBINE"] == 4  # the unregistrable frame is not in it
    assert h["EXPTIME"] == 30.0 and h["TOTALEXP"] == 120.0
    assert h["DATE-OBS"] == START.format(0)
    assert h["DATE-END"] == "2026-11-25T20:03:30.000"  # the last frame's start + 30 s
    assert h["XBINNING"] == 1 and h["GAIN"] == 100
    temps = [fits.getheader(p)["CCD-TEMP"] for p in lights]
    assert h["CCD-TEMP"] == pytest.approx(np.mean(temps), abs=0.01)
    assert (h["RA"], h["DEC"]) == (12.1075, 85.245)
    assert h["REFFRAME"] == lights[0].name
    assert (h["STACKREJ"], h["STACKKAP"]) == ("sigma", 2.5)
    # same pixels as the TIFF; every intermediate stack has its FITS too
    import tifffile

    np.testing.assert_array_equal(img, tifffile.imread(saved.paths.tiff))
    inter = fits.getheader(data / "stacked" / "NGC_188_Ha_intermediate_01.fits")
    assert inter["NCOMBINE"] == 2 and inter["TOTALEXP"] == 60.0


def test_a_colour_camera_gives_a_colour_stack_and_fits_cube(
    tmp_path: Path, field: StarField, write_fits: WriteFits
) -> None:
    osc = Sensor(shape=(240, 320), bayer="RGGB", dark_current=0.5)
    rng = np.random.default_rng(2)
    lights = [write_fits(f"osc{i}.fits", osc.light(field, 30.0, seed=i, transform=Transform(
        rng.uniform(-3, 3), rng.uniform(-3, 3))), BAYERPAT="RGGB") for i in range(4)]
    data = tmp_path / "data"
    stacks = FilterStacks(data, queue_size=4, intermediate_every=0)
    stacks.begin("M 42")
    for p in lights:
        stacks.submit(p)
    [saved] = stacks.save()
    assert saved.stacking_id == "M_42" and saved.filter is None
    assert saved.paths is not None and saved.paths.fits is not None
    cube = fits.getdata(saved.paths.fits)
    assert cube.shape == (3, *osc.shape)  # planes R, G, B as Siril reads them
    assert fits.getheader(saved.paths.fits)["NCOMBINE"] == 4


def test_the_filter_is_read_from_the_header_cards_alone(write_fits: WriteFits) -> None:
    plain = write_fits("a.fits", np.zeros((8, 8), np.uint16), FILTER="OIII")
    quoted = write_fits("b.fits", np.zeros((8, 8), np.uint16), FILTER="it's")
    none = write_fits("c.fits", np.zeros((8, 8), np.uint16))
    assert (frame_filter(plain), frame_filter(quoted), frame_filter(none)) == ("OIII", "it's",
                                                                              None)
    assert frame_filter(plain.parent / "missing.fits") is None


@pytest.mark.skipif(shutil.which("siril-cli") is None,
                    reason="siril-cli not installed (bash scripts/install-backends.sh adds it)")
def test_siril_loads_the_stack(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _night(sensor, field, write_fits, ["R"], 3)
    data = tmp_path / "data"
    stacks = FilterStacks(data, queue_size=4, intermediate_every=0)
    stacks.begin("NGC 188")
    for p in lights:
        stacks.submit(p)
    [saved] = stacks.save()
    assert saved.paths is not None and saved.paths.fits is not None
    script = tmp_path / "load.ssf"
    script.write_text(f"requires 1.0.0\nload {saved.paths.fits.name}\nstat\n")
    env = {**os.environ, "HOME": str(tmp_path)}  # Siril writes its settings under HOME
    out = subprocess.run(["siril-cli", "-d", str(saved.paths.fits.parent), "-s", str(script)],
                         capture_output=True, text=True, timeout=120, env=env)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert "1 layer(s), 320x240 pixels" in log and "Mean:" in log
    assert "finished successfully" in log


def test_camera_frames_read_exactly_as_astropy_reads_them_and_truncation_is_an_error(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    from runner.errors import StackingError
    from runner.stacking.fitsio import read_frame

    path = write_fits("cam.fits", sensor.light(field, 30.0, seed=1), FILTER="R")
    data, meta = read_frame(path)
    assert data.dtype == np.uint16 and data.dtype.isnative
    np.testing.assert_array_equal(data, fits.getdata(path))
    assert (meta.filter, meta.exposure, meta.width) == ("R", 30.0, sensor.shape[1])
    cut = tmp_path / "cut.fits"
    cut.write_bytes(path.read_bytes()[: 2880 * 3])
    with pytest.raises(StackingError, match=r"cut\.fits"):
        read_frame(cut)


def _tan_wcs(shape: tuple[int, int]) -> dict[str, object]:
    """A plate solution's cards (gnomonic, 1.8″/px, a little rotated), as solve-field writes."""
    scale = 1.8 / 3600
    angle = np.radians(12.0)
    cd = scale * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
            "CRPIX1": shape[1] / 2 + 0.5, "CRPIX2": shape[0] / 2 + 0.5,
            "CRVAL1": 12.1075, "CRVAL2": 85.245, "CD1_1": cd[0, 0], "CD1_2": cd[0, 1],
            "CD2_1": cd[1, 0], "CD2_2": cd[1, 1], "RADESYS": "ICRS", "PLTSOLVD": True}


@pytest.mark.parametrize("flip", [False, True])
def test_a_stack_inherits_the_plate_solved_reference_frames_wcs(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits, flip: bool
) -> None:
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    warnings.simplefilter("ignore", FITSFixedWarning)  # astropy's notes on MJD-OBS
    lights = _night(sensor, field, write_fits, ["L"], 4)
    with fits.open(lights[0], mode="update") as hdul:  # the reference (first) frame is solved
        hdul[0].header.update(_tan_wcs(sensor.shape))
    data = tmp_path / "data"
    stacks = FilterStacks(data, queue_size=8, intermediate_every=0)
    stacks.begin("NGC 188", flip=flip)
    assert all(stacks.submit(p) for p in lights)
    [saved] = stacks.save()
    assert saved.paths is not None and saved.paths.fits is not None
    header = fits.getheader(saved.paths.fits)
    assert header["DATE-OBS"] == START.format(0)  # the stack's own dates, not the WCS's
    ref, stack = WCS(fits.getheader(lights[0])), WCS(header)
    h, w = sensor.shape
    xs, ys = np.array([0.0, 40.5, w - 1.0, 160.0]), np.array([0.0, 200.0, h - 1.0, 120.0])
    # pixel (x, y) of the stack is pixel (x, y) of the reference (mirrored: W − 1 − x)
    on_ref = ref.pixel_to_world(w - 1 - xs if flip else xs, ys)
    assert stack.pixel_to_world(xs, ys).separation(on_ref).arcsec.max() < 0.01


def test_a_stack_of_unsolved_frames_claims_no_wcs(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _night(sensor, field, write_fits, ["L"], 3)
    stacks = FilterStacks(tmp_path / "data", queue_size=8, intermediate_every=0)
    stacks.begin("NGC 188")
    assert all(stacks.submit(p) for p in lights)
    [saved] = stacks.save()
    assert saved.paths is not None and saved.paths.fits is not None
    assert "CTYPE1" not in fits.getheader(saved.paths.fits)
