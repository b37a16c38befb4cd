"""The calibration library (index, building, matching in one object) and the masters it
picks for a series of lights."""

from __future__ import annotations

from dataclasses import replace

from runner.errors import StackingError
from runner.stacking.calibrate.apply import CalibrationSet
from runner.stacking.calibrate.build import MasterBuilder
from runner.stacking.calibrate.index import Master
from runner.stacking.calibrate.match import MasterMatcher
from runner.stacking.fitsio import FrameMeta


class CalibrationLibrary(MasterBuilder, MasterMatcher):
    """``<data_dir>/calibration/``: master FITS files and ``index.json`` (seed 004's fields).

    Index entries carry, besides the seed's ``id, path, camera, settings, date, frames``, the
    master's ``kind``; ``settings`` holds exposure, gain, offset, binning, temperature,
    filter, bayer, width and height — what dark and flat matching use.

    The index is :class:`CalibrationIndex` (index.py), ``build_master`` is
    :class:`MasterBuilder`'s (build.py), ``find_bias``/``find_dark``/``find_flat`` are
    :class:`MasterMatcher`'s (match.py).
    """


def calibration_for(
    library: CalibrationLibrary,
    meta: FrameMeta,
    *,
    bias: str | None = None,
    dark: str | None = None,
    flat: str | None = None,
    auto: bool = True,
    temp_tolerance: float = 2.0,
) -> CalibrationSet:
    """Masters for lights like ``meta``: the ids given, else (``auto``) the best matches."""
    ids: dict[str, str] = {}
    bias_m = library.get(bias) if bias else (library.find_bias(meta) if auto else None)
    dark_m: Master | None = None
    if dark:
        dark_m = library.get(dark)
    elif auto:
        found = library.find_dark(meta, temp_tolerance=temp_tolerance)
        if found is not None and (found[1] == 1.0 or bias_m is not None):
            dark_m = found[0]
    flat_m = library.get(flat) if flat else (library.find_flat(meta) if auto else None)
    cs = CalibrationSet()
    if bias_m is not None:
        cs.bias = library.load(bias_m)
        ids["bias"] = bias_m.id
    if dark_m is not None:
        cs.dark = library.load(dark_m)
        exp = dark_m.get("exposure")
        cs.dark_exposure = float(exp) if exp is not None else None
        ids["darks"] = dark_m.id
    if flat_m is not None:
        cs.flat = library.load(flat_m)
        ids["flats"] = flat_m.id
    for a in (cs.bias, cs.dark, cs.flat):
        if a is not None and meta.width is not None and a.shape[-1] != meta.width:
            raise StackingError(f"calibration master {a.shape} does not fit {meta.width} px")
    return replace(cs, ids=ids)
