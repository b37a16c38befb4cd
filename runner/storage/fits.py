"""FITS files that stacking tools read, written so that a frame is on disk whole or not at all.

Keywords (one documented unit each) — the set N.I.N.A., SGP and MaxIm write, which Siril,
PixInsight, DeepSkyStacker and ASTAP read:

=========================  ===============================================================
SIMPLE, BITPIX, NAXISn     16-bit data: unsigned pixels stored as signed with BZERO = 32768
EXPTIME, EXPOSURE          exposure, s (both: tools disagree on which one they read)
DATE-OBS, DATE-AVG         shutter open / mid-exposure, UTC ISO 8601 with milliseconds
MJD-OBS                    shutter open, modified Julian date (UTC)
IMAGETYP                   'Light Frame' | 'Dark Frame' | 'Flat Frame' | 'Bias Frame'
FILTER                     filter name (absent without a filter wheel)
CCD-TEMP, SET-TEMP         sensor temperature and cooler set point, °C (SET-TEMP only when on)
XBINNING, YBINNING         binning
XORGSUBF, YORGSUBF         sub-frame origin, binned pixels
GAIN, OFFSET, EGAIN        driver gain, offset (ADU), e-/ADU when known
FOCUSPOS, FOCTEMP          focuser position (steps) and its probe temperature, °C
OBJECT                     target name
RA, DEC                    telescope pointing, J2000 degrees
OBJCTRA, OBJCTDEC          the same, sexagesimal 'HH MM SS.ss' / '+DD MM SS.s'
SITELAT, SITELONG, SITEELEV  site, degrees (east positive), metres
INSTRUME, TELESCOP         camera and telescope names; FOCALLEN mm; XPIXSZ, YPIXSZ µm (binned)
BAYERPAT, XBAYROFF, YBAYROFF  colour matrix of one-shot-colour frames (offsets 0)
ROWORDER                   'TOP-DOWN': row 0 is the first row the sensor read out
GUIDERMS                   total guiding RMS during the exposure (GUIDUNIT: 'arcsec' or 'px')
GUIDRMSR, GUIDRMSD         guiding RMS in RA and Dec, same unit; GUIDFRMS guide frames counted
HFR, STARS                 median half-flux radius (px) and number of detected stars, if measured
SWCREATE                   'Nightrunner <version>'
NRRUN, NRFRAME             run (``runs/<id>``) and the plan's frame key (read by ``--resume``)
=========================  ===============================================================

Atomic write: the file is written under a hidden temporary name in the target directory,
flushed and fsync'd, renamed over the final name with ``os.replace`` and the directory is
fsync'd — after a crash the frame is either complete or absent, never half-written, so the
journal (written after this returns) never counts a frame that is not there.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import numpy as np
from astropy.io import fits

from runner.records import Frame, GuideStats
from runner.storage.durable import fsync_dir

HeaderValue = str | int | float | bool

IMAGETYP = {
    "light": "Light Frame",
    "dark": "Dark Frame",
    "flat": "Flat Frame",
    "bias": "Bias Frame",
}

try:  # the installed distribution's version, for SWCREATE
    from importlib.metadata import version as _version

    SOFTWARE = f"Nightrunner {_version('nightrunner')}"
except Exception:  # pragma: no cover - running from a source tree without metadata
    SOFTWARE = "Nightrunner"


@dataclass(frozen=True)
class FrameMeta:
    """What the engine knows about a frame that the camera does not: all optional."""

    object_name: str | None = None
    filter: str | None = None
    ra: float | None = None  # J2000 degrees
    dec: float | None = None
    site_latitude: float | None = None  # degrees
    site_longitude: float | None = None  # degrees east
    site_elevation: float | None = None  # m
    instrument: str | None = None
    telescope: str | None = None
    focal_length: float | None = None  # mm
    pixel_size: float | None = None  # µm, unbinned
    egain: float | None = None  # e-/ADU
    focus_position: int | None = None  # steps
    focus_temperature: float | None = None  # °C
    guiding: GuideStats | None = None
    hfr: float | None = None  # px
    star_count: int | None = None
    #: Which run took the frame and which frame of the plan it is (the journal's key): a frame
    #: on disk names itself, so ``--resume`` can keep one the journal lost (torn, cut, or a
    #: crash between the rename and the journal entry) instead of taking it again.
    run_id: str | None = None
    frame_key: str | None = None
    #: Further cards (upper-case keyword ≤ 8 characters → value), written last.
    extra: Mapping[str, HeaderValue] = field(default_factory=dict)


def format_ra(deg: float) -> str:
    """'HH MM SS.ss' from degrees."""
    total = round((deg % 360.0) / 15.0 * 3600.0, 2) % 86400.0
    h, rem = divmod(total, 3600.0)
    m, s = divmod(rem, 60.0)
    return f"{int(h):02d} {int(m):02d} {s:05.2f}"


def format_dec(deg: float) -> str:
    """'+DD MM SS.s' from degrees."""
    sign = "-" if deg < 0 else "+"
    total = round(abs(deg) * 3600.0, 1)
    d, rem = divmod(total, 3600.0)
    m, s = divmod(rem, 60.0)
    return f"{sign}{int(d):02d} {int(m):02d} {s:04.1f}"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def build_header(frame: Frame, meta: FrameMeta | None = None) -> fits.Header:
    """The FITS header for ``frame`` (without the structural cards astropy adds)."""
    m = meta or FrameMeta()
    h = fits.Header()

    def put(key: str, value: HeaderValue | None, comment: str) -> None:
        if value is None:
            return
        if isinstance(value, float) and not np.isfinite(value):
            return
        h[key] = (value, comment)

    start = frame.start.astimezone(UTC)
    put("EXPTIME", float(frame.exposure), "[s] exposure time")
    put("EXPOSURE", float(frame.exposure), "[s] exposure time")
    put("DATE-OBS", _iso(start), "UTC start of exposure")
    put("DATE-AVG", _iso(start + timedelta(seconds=frame.exposure / 2)), "UTC mid-exposure")
    mjd = start.timestamp() / 86400.0 + 40587.0
    put("MJD-OBS", round(mjd, 8), "[d] MJD (UTC) start of exposure")
    put("IMAGETYP", IMAGETYP.get(frame.frame_type, frame.frame_type), "type of frame")
    put("FILTER", m.filter, "filter name")
    put("CCD-TEMP", None if frame.ccd_temp is None else float(frame.ccd_temp), "[C] sensor")
    put("SET-TEMP", None if frame.set_temp is None else float(frame.set_temp), "[C] set point")
    put("XBINNING", frame.binning, "binning factor, x")
    put("YBINNING", frame.binning, "binning factor, y")
    put("XORGSUBF", frame.roi.x // frame.binning, "[px] sub-frame origin x (binned)")
    put("YORGSUBF", frame.roi.y // frame.binning, "[px] sub-frame origin y (binned)")
    put("GAIN", frame.gain, "camera gain setting")
    put("OFFSET", frame.offset, "[ADU] camera offset setting")
    put("EGAIN", m.egain, "[e-/ADU] electrons per ADU")
    put("FOCUSPOS", m.focus_position, "[step] focuser position")
    put("FOCTEMP", m.focus_temperature, "[C] focuser temperature")
    put("OBJECT", m.object_name, "target name")
    if m.ra is not None and m.dec is not None:
        put("RA", round(float(m.ra), 6), "[deg] J2000 right ascension")
        put("DEC", round(float(m.dec), 6), "[deg] J2000 declination")
        put("OBJCTRA", format_ra(m.ra), "[h m s] J2000 right ascension")
        put("OBJCTDEC", format_dec(m.dec), "[d m s] J2000 declination")
        put("EQUINOX", 2000.0, "equinox of RA, DEC")
    put("SITELAT", m.site_latitude, "[deg] site latitude")
    put("SITELONG", m.site_longitude, "[deg] site longitude, east positive")
    put("SITEELEV", m.site_elevation, "[m] site elevation")
    put("INSTRUME", m.instrument, "camera")
    put("TELESCOP", m.telescope, "telescope")
    put("FOCALLEN", m.focal_length, "[mm] focal length")
    if m.pixel_size is not None:
        put("XPIXSZ", m.pixel_size * frame.binning, "[um] pixel size x, binned")
        put("YPIXSZ", m.pixel_size * frame.binning, "[um] pixel size y, binned")
    if frame.bayer:
        put("BAYERPAT", frame.bayer, "colour filter array pattern")
        put("XBAYROFF", 0, "[px] Bayer pattern x offset")
        put("YBAYROFF", 0, "[px] Bayer pattern y offset")
    put("ROWORDER", "TOP-DOWN", "row 0 is the first row read out")
    if m.guiding is not None:
        g = m.guiding
        put("GUIDERMS", round(g.rms_total, 4), f"[{g.unit}] total guiding RMS in exposure")
        put("GUIDRMSR", round(g.rms_ra, 4), f"[{g.unit}] guiding RMS, RA")
        put("GUIDRMSD", round(g.rms_dec, 4), f"[{g.unit}] guiding RMS, Dec")
        put("GUIDUNIT", g.unit, "unit of GUIDERMS, GUIDRMSR, GUIDRMSD")
        put("GUIDFRMS", g.frames, "guide frames in the RMS")
    put("HFR", None if m.hfr is None else round(float(m.hfr), 3), "[px] median half-flux radius")
    put("STARS", m.star_count, "stars detected")
    put("SWCREATE", SOFTWARE, "acquisition software")
    # no comments: run ids and frame keys can be long, and a long string with a comment makes
    # astropy truncate the comment with a warning (the values continue on CONTINUE cards)
    put("NRRUN", m.run_id, "")
    put("NRFRAME", m.frame_key, "")
    for key, value in m.extra.items():
        put(key.upper(), value, "")
    return h


def _write_hdu(hdu: fits.PrimaryHDU, fh: IO[bytes], path: Path) -> None:
    """astropy's free-space check breaks on a file handle: a full disk surfaces as
    "'list' object has no attribute '_file'". The OSError underneath is the real news — and
    when numpy's write stops short ("N requested and M written", no errno) on a disk with
    less room than the frame, it is ENOSPC, said so with the frame's path."""
    try:
        hdu.writeto(fh)
    except AttributeError as exc:
        if isinstance(exc.__context__, OSError):
            raise _named(exc.__context__, fh, path, hdu) from None
        raise
    except OSError as exc:
        raise _named(exc, fh, path, hdu) from None


def _named(exc: OSError, fh: IO[bytes], path: Path, hdu: fits.PrimaryHDU) -> OSError:
    if exc.errno is not None:
        return exc
    try:
        st = os.fstatvfs(fh.fileno())
        full = st.f_bavail * st.f_frsize < hdu.data.nbytes
    except OSError:
        full = False
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) if full else exc


def write_fits(path: str | os.PathLike[str], frame: Frame, meta: FrameMeta | None = None) -> Path:
    """Write ``frame`` to ``path`` atomically (creating directories); returns the path.

    An existing file of that name is replaced (a resumed run rewrites a frame that was renamed
    into place but not yet journalled). Blocking: call it off the event loop
    (:func:`save_frame`).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(frame.data)
    if data.dtype != np.uint16:
        raise TypeError(f"frames are 16-bit unsigned, got {data.dtype}")
    hdu = fits.PrimaryHDU(data=data, header=build_header(frame, meta))
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as fh:
            _write_hdu(hdu, fh, final)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)
    return final


async def save_frame(
    path: str | os.PathLike[str], frame: Frame, meta: FrameMeta | None = None
) -> Path:
    """:func:`write_fits` in a worker thread, for the event loop."""
    return await asyncio.to_thread(write_fits, path, frame, meta)
