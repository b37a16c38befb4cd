"""Calibration masters, the calibration index, dark matching and calibrated lights."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationLibrary, Calibrator, calibration_for
from runner.stacking.fitsio import read_frame
from runner.stacking.synthetic import Sensor, StarField

WriteFits = Callable[..., Path]


@pytest.fixture
def library(
    tmp_path: Path, sensor: Sensor, write_fits: WriteFits
) -> tuple[CalibrationLibrary, dict[str, str]]:
    lib = CalibrationLibrary(tmp_path / "data")
    biases = [
        write_fits(f"b{i}.fits", sensor.bias(seed=i), kind="Bias Frame", exposure=0.0)
        for i in range(7)
    ]
    darks = [
        write_fits(f"d{i}.fits", sensor.dark(60.0, seed=50 + i), kind="Dark Frame", exposure=60.0)
        for i in range(7)
    ]
    flats = [
        write_fits(
            f"f{i}.fits",
            sensor.flat(15000 * (1 + 0.2 * i), seed=90 + i),
            kind="Flat Frame",
            exposure=1.0,
            FILTER="L",
        )
        for i in range(7)
    ]
    bias = lib.build_master("bias", biases)
    dark = lib.build_master("dark", darks, memory_bytes=64 * 1024)  # forces ~20 row blocks
    flat = lib.build_master("flat", flats, bias=bias.id)
    return lib, {"bias": bias.id, "dark": dark.id, "flat": flat.id}


def test_the_index_lists_every_master_with_seed_004_fields(
    library: tuple[CalibrationLibrary, dict[str, str]],
) -> None:
    lib, ids = library
    entries = json.loads(lib.index_path.read_text())
    assert {e["id"] for e in entries} == set(ids.values())
    for e in entries:
        assert {"id", "path", "camera", "settings", "date", "frames"} <= set(e)
        assert e["frames"] == 7
        assert e["camera"] == "SimCam"
        with fits.open(lib.root / e["path"]) as hdul:  # path is relative to calibration/
            assert hdul[0].data.dtype.kind == "f"
    dark = next(e for e in entries if e["id"] == ids["dark"])
    assert dark["settings"]["exposure"] == 60.0
    assert dark["settings"]["temperature"] == -10.0
    assert dark["settings"]["gain"] == 100


def test_a_master_rejects_a_cosmic_ray_and_does_not_depend_on_the_memory_budget(
    tmp_path: Path, sensor: Sensor, write_fits: WriteFits
) -> None:
    frames = []
    for i in range(9):
        d = sensor.dark(60.0, seed=200 + i)
        if i == 4:
            d[100, 100:110] = 60000  # a cosmic-ray track in one dark
        frames.append(write_fits(f"cr{i}.fits", d, kind="Dark Frame", exposure=60.0))
    lib = CalibrationLibrary(tmp_path / "cr")
    small = lib.load(lib.build_master("dark", frames, memory_bytes=32 * 1024))
    large = lib.load(lib.build_master("dark", frames, memory_bytes=1 << 30))
    np.testing.assert_array_equal(small, large)
    expected = sensor.bias_level + sensor.dark_map[100, 100:110] * 60.0
    np.testing.assert_allclose(small[100, 100:110], expected, atol=8.0)


def test_darks_are_matched_by_temperature_and_scaled_by_exposure(
    library: tuple[CalibrationLibrary, dict[str, str]], sensor: Sensor, write_fits: WriteFits
) -> None:
    lib, ids = library
    _, warm = read_frame(write_fits("warm.fits", sensor.bias(), exposure=60.0, temperature=-4.0))
    assert lib.find_dark(warm) is None  # 6 °C from the darks: no dark is better than a wrong one
    _, other_gain = read_frame(write_fits("g.fits", sensor.bias(), exposure=60.0, gain=200))
    assert lib.find_dark(other_gain) is None
    _, exact = read_frame(write_fits("e.fits", sensor.bias(), exposure=60.0, temperature=-11.0))
    assert lib.find_dark(exact) == (lib.get(ids["dark"]), 1.0)
    _, short = read_frame(write_fits("s.fits", sensor.bias(), exposure=15.0))
    found = lib.find_dark(short)
    assert found is not None and found[1] == pytest.approx(0.25)


def test_calibrated_lights_are_flat_free_of_dark_signal_and_hot_pixels(
    library: tuple[CalibrationLibrary, dict[str, str]],
    sensor: Sensor,
    field: StarField,
    write_fits: WriteFits,
) -> None:
    lib, _ = library
    for exposure in (60.0, 20.0):  # the second needs the dark scaled by 1/3
        raw = sensor.light(field, exposure, sky=300.0, seed=7)
        _, meta = read_frame(write_fits(f"light{exposure:g}.fits", raw, exposure=exposure))
        cal = Calibrator(calibration_for(lib, meta)).apply(raw, exposure)
        truth = sensor.light(field, exposure, sky=300.0, noise=False).astype(np.float32)
        truth = (truth - sensor.bias_level - sensor.dark_map * exposure) / sensor.flat_map
        # One flat-field normalisation constant relates the two (the flat's median).
        scale = float(np.median(cal / np.maximum(truth, 1.0)))
        resid = cal - truth * scale
        noise = float(np.std(resid))
        assert noise < 1.25 * np.sqrt(300.0 + 2 * sensor.read_noise**2)
        # Vignetting gone: corners and centre agree to 1 %.
        corner = float(np.median(cal[:40, :40]))
        centre = float(np.median(cal[100:140, 140:180]))
        assert corner == pytest.approx(centre, rel=0.01)
        hot_y, hot_x = np.nonzero(sensor.dark_map > 10)
        assert np.all(np.abs(resid[hot_y, hot_x]) < 6 * noise)


def test_a_master_of_the_wrong_size_is_refused(
    library: tuple[CalibrationLibrary, dict[str, str]],
) -> None:
    lib, ids = library
    cal = Calibrator(calibration_for(lib, read_frame(lib.root / lib.get(ids["dark"]).path)[1]))
    with pytest.raises(StackingError):
        cal.apply(np.zeros((100, 100), dtype=np.uint16), 60.0)
