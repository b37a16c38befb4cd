"""Stacks as 32-bit float FITS with the cards post-processing tools group and label by.

Siril, PixInsight and APP sort masters by OBJECT, FILTER, IMAGETYP and exposure, and weight or
annotate them by NCOMBINE, TOTALEXP and the dates; without those cards a stack is just pixels.
:class:`StackInfo` gathers them from the frames that actually went into the stack (a frame that
failed to register does not count towards NCOMBINE or TOTALEXP), and :func:`stack_header`
writes them. Values every stacked frame agrees on are written as such; a value the frames
disagree on (a focuser temperature, a gain changed mid-night) is left out rather than guessed.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from runner.stacking.fitsio import FrameMeta
from runner.stacking.pipeline import StackSettings

F32 = npt.NDArray[np.float32]

SOFTWARE = "Nightrunner live stacker"
# the cards of a celestial WCS (with SIP); not the dates a WCS header may carry (the stack's
# own DATE-OBS is its first frame's)
_WCS_KEY = re.compile(r"^(WCSAXES|CTYPE\d|CUNIT\d|CRPIX\d|CRVAL\d|CDELT\d|CROTA\d|PC\d_\d|"
                      r"CD\d_\d|LONPOLE|LATPOLE|RADESYS|EQUINOX|(A|B|AP|BP)_(ORDER|\d+_\d+))$")


def _end_of(date_obs: str, exposure: float | None) -> str:
    """DATE-END of a frame: its start plus its exposure (FITS dates are UTC, no zone)."""
    try:
        start = datetime.fromisoformat(date_obs.replace("Z", "+00:00"))
    except ValueError:
        return date_obs
    end = start + timedelta(seconds=exposure or 0.0)
    return end.replace(tzinfo=None).isoformat(timespec="milliseconds")


@dataclass
class StackInfo:
    """What the stack's header says, accumulated frame by frame (only stacked frames)."""

    reference: str | None = None  # the reference frame's file name
    ncombine: int = 0
    total_exposure: float = 0.0
    exposures: set[float] = field(default_factory=set)
    first_date: str | None = None
    last_end: str | None = None
    temperatures: list[float] = field(default_factory=list)
    #: the reference frame's celestial WCS (a plate-solved reference): every stacked frame is
    #: registered onto its pixel grid, so it is the stack's WCS too
    wcs: fits.Header | None = None
    _common: dict[str, object] = field(default_factory=dict)
    _mixed: set[str] = field(default_factory=set)

    def add(self, meta: FrameMeta, source: str | None, *, reference: bool) -> None:
        if reference:
            self.reference = Path(source).name if source else None
            self.wcs = reference_wcs(source) if source else None
        self.ncombine += 1
        if meta.exposure is not None:
            self.total_exposure += meta.exposure
            self.exposures.add(round(meta.exposure, 6))
        if meta.date_obs:
            start = meta.date_obs
            end = _end_of(start, meta.exposure)
            # ISO dates of one night compare as text
            if self.first_date is None or start < self.first_date:
                self.first_date = start
            if self.last_end is None or end > self.last_end:
                self.last_end = end
        if meta.temperature is not None:
            self.temperatures.append(meta.temperature)
        for key in ("object", "filter", "camera", "telescope", "binning", "gain", "offset",
                    "bayer", "ra", "dec"):
            self._agree(key, getattr(meta, key))

    def _agree(self, key: str, value: object) -> None:
        if value is None or key in self._mixed:
            return
        if isinstance(value, float):
            value = round(value, 4) if key in ("ra", "dec") else value
        seen = self._common.setdefault(key, value)
        if key in ("ra", "dec"):
            # a dither or a re-centring moves the pointing by arc-seconds: same target
            if isinstance(seen, float) and isinstance(value, float) and abs(seen - value) > 0.05:
                self._mixed.add(key)
        elif seen != value:
            self._mixed.add(key)

    def common(self, key: str) -> object | None:
        return None if key in self._mixed else self._common.get(key)


def stack_header(info: StackInfo, settings: StackSettings, *, colour: bool = False) -> fits.Header:
    """The header of a stack (the structural cards are astropy's)."""
    h = fits.Header()

    def put(key: str, value: object | None, comment: str) -> None:
        if value is not None:
            h[key] = (value, comment)

    put("IMAGETYP", "Master Light", "type of image: a stack of light frames")
    put("OBJECT", info.common("object"), "target name")
    put("FILTER", info.common("filter"), "filter name")
    put("NCOMBINE", info.ncombine, "frames combined")
    single = next(iter(info.exposures)) if len(info.exposures) == 1 else None
    put("EXPTIME", single, "[s] exposure of each frame")
    put("EXPOSURE", single, "[s] exposure of each frame")
    put("TOTALEXP", round(info.total_exposure, 3), "[s] total integration")
    put("LIVETIME", round(info.total_exposure, 3), "[s] total integration")
    put("DATE-OBS", info.first_date, "UTC start of the first frame")
    put("DATE-END", info.last_end, "UTC end of the last frame")
    put("INSTRUME", info.common("camera"), "camera")
    put("TELESCOP", info.common("telescope"), "telescope")
    binning = info.common("binning")
    put("XBINNING", binning, "binning factor, x")
    put("YBINNING", binning, "binning factor, y")
    put("GAIN", info.common("gain"), "camera gain setting")
    put("OFFSET", info.common("offset"), "[ADU] camera offset setting")
    if info.temperatures:
        put("CCD-TEMP", round(float(np.mean(info.temperatures)), 2), "[C] mean sensor temperature")
    put("RA", info.common("ra"), "[deg] J2000 pointing of the frames")
    put("DEC", info.common("dec"), "[deg] J2000 pointing of the frames")
    if info.common("ra") is not None:
        put("EQUINOX", 2000.0, "equinox of RA, DEC")
    put("REFFRAME", info.reference, "frame the others were registered to")
    put("STACKREG", "stars" if settings.align else "none", "registration")
    put("STACKREJ", "sigma" if settings.reject else "none", "pixel rejection")
    if settings.reject:
        put("STACKKAP", settings.kappa, "[sigma] rejection threshold kappa")
    put("STACKNRM", "additive" if settings.normalize_background else "none",
        "background normalisation")
    if colour:  # planes R, G, B: what Siril and PixInsight expect of a 3-plane cube
        h.add_comment("Planes 1, 2, 3 are R, G, B")
    put("ROWORDER", "TOP-DOWN", "row 0 is the top of the image")
    put("BUNIT", "ADU", "linear, calibrated")
    put("SWCREATE", SOFTWARE, "software")
    if info.reference:
        h.add_history(f"Registered onto {info.reference}")
    if info.wcs is not None:
        h.update(info.wcs)
        h.add_history(f"WCS of the plate-solved reference frame {info.reference}")
    return h


def reference_wcs(path: str | Path) -> fits.Header | None:
    """The celestial WCS cards of a plate-solved frame (SIP included), or None."""
    try:
        header = fits.getheader(path)
    except (OSError, ValueError):
        return None
    if not str(header.get("CTYPE1", "")).startswith("RA--"):
        return None
    try:
        w = _wcs(header)
    except Exception:  # a malformed WCS is no WCS; the stack is still good
        return None
    if not w.has_celestial:
        return None
    return _wcs_cards(w)


def _wcs(header: fits.Header) -> Any:
    """astropy's WCS of ``header``, without its notes on cards it completed (MJD-OBS …)."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header, naxis=2)


def _wcs_cards(w: Any) -> fits.Header:
    import warnings

    from astropy.wcs import FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        cards = w.to_header(relax=True)
    return fits.Header([c for c in cards.cards if _WCS_KEY.match(c.keyword)])


def _flipped_wcs(header: fits.Header, width: int) -> None:
    """Mirror the WCS cards of ``header`` for columns reversed (``image_flip``), in place.

    Column p becomes W + 1 − p: CRPIX1 mirrors and the pixel matrix's first column changes
    sign. SIP terms cannot be mirrored by a sign alone and are dropped (the linear solution
    stays, good to the distortion's few pixels at the corners)."""
    w = _wcs(header)
    w.sip = None
    w.wcs.ctype = [c.replace("-SIP", "") for c in w.wcs.ctype]
    w.wcs.crpix = [width + 1 - w.wcs.crpix[0], w.wcs.crpix[1]]
    if w.wcs.has_cd():
        w.wcs.cd = w.wcs.cd * np.array([[-1.0, 1.0], [-1.0, 1.0]])
    else:
        w.wcs.pc = w.wcs.get_pc() * np.array([[-1.0, 1.0], [-1.0, 1.0]])
    for key in [k for k in header if _WCS_KEY.match(k)]:
        del header[key]
    header.update(_wcs_cards(w))


def fits_bytes(stack: F32, header: fits.Header, *, flip: bool = False) -> bytes:
    """A float32 FITS of a filled (no NaN) stack; colour (H, W, 3) becomes a (3, H, W) cube."""
    img = np.fliplr(stack) if flip else stack
    if flip and "CTYPE1" in header:
        header = header.copy()
        _flipped_wcs(header, stack.shape[1])
    if img.ndim == 3:
        img = np.moveaxis(img, -1, 0)
    hdu = fits.PrimaryHDU(data=np.ascontiguousarray(img, dtype=np.float32), header=header)
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()
