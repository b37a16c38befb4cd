"""A season's archive on disk, for the re-stack's tests and benchmarks.

Nights × filters × frames of one synthetic star field (:mod:`runner.stacking.synthetic`;
filter number ``i`` has a sky of 150·(i + 1) e-, the third night is after a meridian flip),
written as FITS files the way a run writes them (``TARGET/FILTER/…fits``) and recorded in the
data directory's image index; optionally master darks in its calibration library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits

from runner.stacking.calibrate import CalibrationLibrary
from runner.stacking.synthetic import Sensor, StarField, Transform
from runner.storage.index import ImageIndex, ImageRecord


@dataclass(frozen=True)
class Archive:
    data_dir: Path
    lights: dict[tuple[str, str], list[Path]]  # (target, filter) → frames in time order


def write_archive(
    data_dir: Path,
    *,
    target: str = "M81",
    nights: int = 3,
    filters: tuple[str, ...] = ("L", "R"),
    frames: int = 20,
    shape: tuple[int, int] = (192, 256),
    exposure: float = 30.0,
    stars: int = 120,
    darks: int = 0,
    first_night: datetime = datetime(2026, 3, 1, 21, 0, tzinfo=UTC),
    seed: int = 0,
) -> Archive:
    sensor = Sensor(shape=shape, dark_current=0.5, hot_fraction=2e-4)
    field = StarField.random(shape, stars, seed=seed + 7)
    rng = np.random.default_rng(seed)
    lights: dict[tuple[str, str], list[Path]] = {}
    with ImageIndex(data_dir) as index:
        for n in range(nights):
            night = first_night + timedelta(days=n)
            for fi, filt in enumerate(filters):
                for k in range(frames):
                    when = night + timedelta(minutes=fi * frames + k)
                    tr = Transform(
                        dx=float(rng.uniform(-6, 6)),
                        dy=float(rng.uniform(-6, 6)),
                        rotation_deg=float(rng.uniform(-0.3, 0.3)) + (180.0 if n == 2 else 0.0),
                    )
                    frame_seed = int(rng.integers(1_000_000_000))
                    # each filter its own sky level, so a mixed-up stack would show it
                    sky = 150.0 * (fi + 1)
                    data = sensor.light(field, exposure, transform=tr, sky=sky, seed=frame_seed)
                    rel = Path(target) / filt / f"{target}_{filt}_{exposure:g}s_{n}{k:04d}.fits"
                    _write(data_dir / rel, data, "Light Frame", exposure, when, target, filt)
                    index.add(
                        ImageRecord(
                            path=rel.as_posix(),
                            frame_type="light",
                            exposure=exposure,
                            date_obs=when,
                            target=target,
                            filter=filt,
                            width=shape[1],
                            height=shape[0],
                            gain=100,
                            ccd_temp=-10.0,
                        )
                    )
                    lights.setdefault((target, filt), []).append(data_dir / rel)
    if darks:
        paths = []
        for k in range(darks):
            p = data_dir / "raw-darks" / f"dark_{k:03d}.fits"
            _write(p, sensor.dark(exposure, seed=1000 + k), "Dark Frame", exposure, first_night,
                   None, None)
            paths.append(p)
        CalibrationLibrary(data_dir).build_master("dark", paths, master_id="dark30")
    return Archive(data_dir, lights)


def _write(
    path: Path,
    data: np.ndarray,
    kind: str,
    exposure: float,
    when: datetime,
    target: str | None,
    filt: str | None,
) -> None:
    h = fits.Header()
    h["IMAGETYP"] = kind
    h["EXPTIME"] = exposure
    h["DATE-OBS"] = when.replace(tzinfo=None).isoformat()
    h["CCD-TEMP"] = -10.0
    h["GAIN"] = 100
    h["XBINNING"] = 1
    h["INSTRUME"] = "SimCam"
    if target:
        h["OBJECT"] = target
    if filt:
        h["FILTER"] = filt
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, h).writeto(path, overwrite=True)
