"""Frames read back from disk: is a file a whole frame, which run and frame is it, and its
index record — for ``--resume`` (keep a frame the journal lost) and for the image index
(catch up on frames it missed while it was locked or the process was killed).

The FITS file is the primary record of a frame; the journal says what the night has done and
the index is derived from both. A file at a frame's final name is whole by construction
(temporary name, fsync, rename); :func:`read_frame_file` checks it anyway, since a user can
copy or truncate files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from astropy.io import fits

from runner.storage.fits import IMAGETYP
from runner.storage.index import ImageIndex, ImageRecord

_TYPES = {v: k for k, v in IMAGETYP.items()}
_BLOCK = 2880


@dataclass(frozen=True)
class FrameFile:
    """A whole frame file and what its header says about itself."""

    path: Path
    header: fits.Header

    @property
    def run_id(self) -> str | None:
        v = self.header.get("NRRUN")
        return None if v is None else str(v)

    @property
    def key(self) -> str | None:
        v = self.header.get("NRFRAME")
        return None if v is None else str(v)

    @property
    def frame_type(self) -> str:
        t = str(self.header.get("IMAGETYP", "light"))
        return _TYPES.get(t, t.lower())

    @property
    def target(self) -> str | None:
        v = self.header.get("OBJECT")
        return None if v is None else str(v)

    @property
    def filter(self) -> str | None:
        v = self.header.get("FILTER")
        return None if v is None else str(v)

    def record(self, relative: str | PurePosixPath, run_id: str | None = None) -> ImageRecord:
        """The index row for this file (``relative`` to the data directory)."""
        h = self.header

        def num(key: str) -> float | None:
            v = h.get(key)
            return None if v is None or isinstance(v, str) else float(v)

        def whole(key: str) -> int | None:
            v = num(key)
            return None if v is None else int(v)

        date = datetime.fromisoformat(str(h["DATE-OBS"]))
        date = date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)
        unit = h.get("GUIDUNIT")
        return ImageRecord(
            path=str(PurePosixPath(relative)),
            frame_type=self.frame_type,
            exposure=float(h.get("EXPTIME", 0.0)),
            date_obs=date,
            target=self.target,
            filter=self.filter,
            binning=whole("XBINNING") or 1,
            width=whole("NAXIS1") or 0,
            height=whole("NAXIS2") or 0,
            gain=whole("GAIN"),
            offset=whole("OFFSET"),
            ccd_temp=num("CCD-TEMP"),
            set_temp=num("SET-TEMP"),
            focus_position=whole("FOCUSPOS"),
            focus_temp=num("FOCTEMP"),
            hfr=num("HFR"),
            star_count=whole("STARS"),
            guide_rms=num("GUIDERMS"),
            guide_rms_ra=num("GUIDRMSR"),
            guide_rms_dec=num("GUIDRMSD"),
            guide_unit=None if unit is None else str(unit),
            ra=num("RA"),
            dec=num("DEC"),
            run_id=run_id or self.run_id,
        )


def read_frame_file(path: Path) -> FrameFile | None:
    """The frame at ``path`` if it is a whole FITS file (header and every data byte), else None.

    Reads the header only: a few kilobytes however large the frame."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            header = fits.Header.fromfile(f)
            data_start = f.tell()
    except (OSError, ValueError, EOFError):
        return None
    if data_start % _BLOCK:
        data_start += _BLOCK - data_start % _BLOCK
    try:
        naxis = int(header.get("NAXIS", 0))
        count = 1 if naxis else 0
        for i in range(1, naxis + 1):
            count *= int(header[f"NAXIS{i}"])
        data_bytes = count * abs(int(header["BITPIX"])) // 8
    except (KeyError, ValueError, TypeError):
        return None
    if size < data_start + data_bytes or "DATE-OBS" not in header:
        return None
    return FrameFile(path, header)


def written_since(
    data_dir: Path, since: float, *, skip: tuple[str, ...] = ("stacked", "debug", "runs")
) -> tuple[list[Path], list[Path]]:
    """FITS files under ``data_dir`` modified at or after ``since`` (a POSIX time) — the only
    candidates for frames of a run that started then — and the writer's temporary files of
    that time (``.<name>.<hex>.part``, left by a kill mid-write). A stat per file, no reads."""
    frames: list[Path] = []
    temps: list[Path] = []
    for root, dirs, files in os.walk(data_dir):
        if Path(root) == data_dir:
            dirs[:] = [d for d in dirs if d not in skip]
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            is_temp = name.startswith(".") and name.endswith(".part")
            if not is_temp and (name.startswith(".")
                                or not name.lower().endswith((".fits", ".fit", ".fts"))):
                continue
            p = Path(root) / name
            try:
                if p.stat().st_mtime >= since:
                    (temps if is_temp else frames).append(p)
            except OSError:
                continue
    return sorted(frames), sorted(temps)


def index_missing(index: ImageIndex, frames: Iterable[tuple[Path, str | None]]) -> int:
    """Add the frames (path, run id) the index does not have, from their headers; returns how
    many. Files that are gone, not whole or outside the data directory are passed over."""
    known = index.paths()
    added = 0
    for path, run_id in frames:
        try:
            rel = index.relative(path)
        except ValueError:
            continue
        if rel in known:
            continue
        ff = read_frame_file(Path(path))
        if ff is None:
            continue
        index.add(ff.record(rel, run_id))
        known.add(rel)
        added += 1
    return added
