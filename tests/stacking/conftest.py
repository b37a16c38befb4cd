"""Synthetic sky for the stacker's tests: one star field, a sensor, FITS files on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from runner.stacking.synthetic import Sensor, StarField

WriteFits = Callable[..., Path]


@pytest.fixture
def write_fits(tmp_path: Path) -> WriteFits:
    """Write a frame as a FITS file with the header keywords capture programs write."""

    def write(
        name: str,
        data: np.ndarray,
        *,
        kind: str = "Light Frame",
        exposure: float = 30.0,
        temperature: float = -10.0,
        gain: int = 100,
        **extra: object,
    ) -> Path:
        header = fits.Header()
        header["IMAGETYP"] = kind
        header["EXPTIME"] = exposure
        header["CCD-TEMP"] = temperature
        header["GAIN"] = gain
        header["INSTRUME"] = "SimCam"
        for key, value in extra.items():
            header[key] = value
        path = tmp_path / "frames" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fits.PrimaryHDU(data, header).writeto(path)
        return path

    return write


@pytest.fixture
def sensor() -> Sensor:
    return Sensor(shape=(240, 320), dark_current=0.5, hot_fraction=5e-4)


@pytest.fixture
def field(sensor: Sensor) -> StarField:
    return StarField.random(sensor.shape, 150, seed=11)
