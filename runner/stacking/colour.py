"""A colour preview from a target's per-filter mono stacks: RGB, LRGB, or narrowband palettes.

Each filter's stack has its own reference frame (dithers, a meridian flip or a refocus between
filters move the field by pixels), so the channels are first **registered onto one reference**
(L when there is one, else the green channel) with the stacker's own star matching. Then:

* **Background neutralisation**: each channel's sky level (median) is subtracted, and each is
  scaled so its bright end (99.95th percentile) is 1 — the sky comes out neutral grey and the
  average star white, whatever the filters' transmissions and exposure times were.
* **Stretch**: one screen-transfer function for all three channels (computed on their mean),
  so the colour ratios of the linear data are kept.
* **LRGB**: the L stack, stretched on its own, replaces the luminance of the stretched RGB
  (``rgb · L / mean(rgb)``): detail and signal-to-noise from L, colour from R, G and B.

Palettes (filter names are matched case-insensitively: ``Red``, ``H-alpha``, ``O3`` …):

=========  ====================================  =====================================
palette    needs                                 R, G, B
=========  ====================================  =====================================
RGB        R, G, B (+ L for LRGB)                R, G, B
SHO        SII, Ha, OIII (the "Hubble palette")  SII, Ha, OIII
HOO        Ha, OIII (no SII)                     Ha, OIII, OIII
=========  ====================================  =====================================

A colour camera's stack is already colour and needs none of this.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from runner.errors import RegistrationError, StackingError
from runner.stacking.output import atomic_write_bytes, jpeg_bytes
from runner.stacking.register import Registration, find_transform, registration_stars, warp
from runner.stacking.stackfits import fits_bytes
from runner.stacking.stretch import StretchParams, auto_parameters, mtf, stretch

F32 = npt.NDArray[np.float32]

_ALIASES = {
    "l": "L", "lum": "L", "luminance": "L", "clear": "L", "c": "L",
    "r": "R", "red": "R", "g": "G", "green": "G", "b": "B", "blue": "B",
    "ha": "Ha", "h-alpha": "Ha", "halpha": "Ha", "h_alpha": "Ha", "h": "Ha",
    "oiii": "OIII", "o3": "OIII", "o-iii": "OIII", "o": "OIII",
    "sii": "SII", "s2": "SII", "s-ii": "SII", "s": "SII",
}

PALETTES: dict[str, tuple[str, str, str]] = {
    "RGB": ("R", "G", "B"),
    "SHO": ("SII", "Ha", "OIII"),
    "HOO": ("Ha", "OIII", "OIII"),
}


def canonical(filter_name: str | None) -> str | None:
    """``"Red"`` → ``"R"``, ``"H-alpha"`` → ``"Ha"``; None for filters no palette uses."""
    if not filter_name:
        return None
    return _ALIASES.get(filter_name.strip().lower().replace(" ", ""))


@dataclass(frozen=True)
class ColourPlan:
    """Which filter feeds which display channel."""

    palette: str
    channels: tuple[str, str, str]  # filter names for R, G, B (HOO repeats OIII)
    luminance: str | None = None


def colour_plan(filters: Iterable[str | None]) -> ColourPlan | None:
    """The palette the filters with frames allow, or None (not yet three channels)."""
    by_role: dict[str, str] = {}
    for f in filters:
        role = canonical(f)
        if role is not None and f is not None:
            by_role.setdefault(role, f)
    for palette in ("RGB", "SHO", "HOO"):
        roles = PALETTES[palette]
        if all(r in by_role for r in roles):
            lum = by_role.get("L") if palette == "RGB" else None
            return ColourPlan(palette, tuple(by_role[r] for r in roles), lum)  # type: ignore[arg-type]
    return None


@dataclass
class Colour:
    """The composed preview: linear (registered, neutralised) and display images."""

    plan: ColourPlan
    linear: F32  # (H, W, 3), sky 0, bright end 1
    display: F32  # (H, W, 3) in [0, 1]
    lrgb: F32 | None = None  # (H, W, 3) in [0, 1] with L
    registration: dict[str, dict[str, Any]] = field(default_factory=dict)


def _filled(img: F32) -> F32:
    out = np.array(img, dtype=np.float32, copy=True)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = float(np.nanmedian(out)) if (~bad).any() else 0.0
    return out


def _register(img: F32, ref_xy: npt.NDArray[np.float64], shape: tuple[int, int]
              ) -> tuple[F32, Registration]:
    stars = registration_stars(_filled(img))
    if len(stars) < 3:
        raise RegistrationError(f"only {len(stars)} stars in the channel")
    reg = find_transform(stars.xy, ref_xy, rotation_limit_deg=5.0)
    return warp(_filled(img), reg, shape), reg


def _neutral(ch: F32) -> F32:
    step = max(1, int(np.sqrt(ch.size / 250_000)))
    s = ch[::step, ::step]
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise StackingError("a colour channel has no data")
    sky = float(np.median(s))
    top = float(np.percentile(s, 99.95)) - sky
    out = (np.nan_to_num(ch, nan=sky) - np.float32(sky)) / np.float32(max(top, 1e-6))
    return out.astype(np.float32)


def _linked_stretch(rgb: F32) -> F32:
    """One screen-transfer function for the three channels (from their mean)."""
    lo = float(np.percentile(rgb[::4, ::4], 0.1))
    hi = float(np.max(rgb))
    x = np.clip((rgb - np.float32(lo)) / np.float32(max(hi - lo, 1e-6)), 0.0, 1.0)
    c0, m = auto_parameters(x.mean(axis=2).astype(np.float32))
    y = np.clip((x - np.float32(c0)) / np.float32(max(1.0 - c0, 1e-6)), 0.0, 1.0)
    return np.clip(mtf(m, y.astype(np.float32)), 0.0, 1.0)


def compose(plan: ColourPlan, stacks: Mapping[str, F32]) -> Colour:
    """Register, neutralise and stretch ``stacks`` (filter name → 2-D linear stack).

    Raises :class:`StackingError` (or :class:`RegistrationError`) when a channel is missing,
    is not mono, or cannot be registered onto the reference.
    """
    needed = [*dict.fromkeys(plan.channels), *([plan.luminance] if plan.luminance else [])]
    for f in needed:
        if f not in stacks or stacks[f] is None:
            raise StackingError(f"no stack of filter {f!r}")
        if stacks[f].ndim != 2:
            raise StackingError(f"the {f!r} stack is not mono: a colour preview needs mono stacks")
    ref_name = plan.luminance or plan.channels[1]
    ref = stacks[ref_name]
    shape = (int(ref.shape[0]), int(ref.shape[1]))
    ref_xy = registration_stars(_filled(ref)).xy
    registered: dict[str, F32] = {ref_name: _filled(ref)}
    info: dict[str, dict[str, Any]] = {ref_name: {"reference": True}}
    for f in needed:
        if f in registered:
            continue
        img, reg = _register(stacks[f], ref_xy, shape)
        registered[f] = img
        info[f] = {"matrix": reg.matrix.tolist(), "rms_px": round(reg.rms, 4),
                   "matches": reg.matches}
    linear = np.stack([_neutral(registered[f]) for f in plan.channels], axis=2)
    linear = np.ascontiguousarray(linear, dtype=np.float32)
    display = _linked_stretch(linear)
    lrgb = None
    if plan.luminance is not None:
        lum = stretch(_neutral(registered[plan.luminance]), StretchParams(auto=True))
        ratio = lum / np.maximum(display.mean(axis=2), np.float32(1e-4))
        lrgb = np.clip(display * ratio[..., None], 0.0, 1.0).astype(np.float32)
    return Colour(plan, linear, display, lrgb, info)


def _unique(stacked_dir: Path, base: str) -> str:
    candidate, k = base, 1
    while (stacked_dir / f"{candidate}.json").exists():
        k += 1
        candidate = f"{base}_{k}"
    return candidate


def write_colour(stacked_dir: Path, target: str, colour: Colour, stacking_ids: Mapping[str, str],
                 *, flip: bool = False) -> dict[str, Path]:
    """``<target>_colour.{jpeg,fits,json}`` and, with L, ``<target>_LRGB.jpeg``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in target).strip("_") or "stack"
    base = _unique(stacked_dir, f"{safe}_colour")
    paths: dict[str, Path] = {}

    def img(a: F32) -> F32:
        return np.ascontiguousarray(np.fliplr(a)) if flip else a

    paths["jpeg"] = stacked_dir / f"{base}.jpeg"
    atomic_write_bytes(paths["jpeg"], jpeg_bytes(img(colour.display)))
    if colour.lrgb is not None:
        paths["lrgb"] = stacked_dir / f"{base.replace('_colour', '_LRGB', 1)}.jpeg"
        atomic_write_bytes(paths["lrgb"], jpeg_bytes(img(colour.lrgb)))
    header = fits.Header()
    header["IMAGETYP"] = ("Master Light", "colour composite of per-filter stacks")
    header["OBJECT"] = (target, "target name")
    filters = ",".join(colour.plan.channels)
    header["PALETTE"] = (colour.plan.palette, f"filters on R, G, B: {filters}")
    header["ROWORDER"] = ("TOP-DOWN", "row 0 is the top of the image")
    header.add_comment("Planes 1, 2, 3 are R, G, B; registered, sky-neutralised, linear")
    # a (3, H, W) cube written from a contiguous copy: astropy writes a strided view (the
    # moved axis) one element at a time — 4 s for a 2048² preview, in the night's process
    paths["fits"] = stacked_dir / f"{base}.fits"
    atomic_write_bytes(paths["fits"], fits_bytes(colour.linear, header, flip=flip))
    meta = {
        "target": target,
        "palette": colour.plan.palette,
        "channels": dict(zip(("R", "G", "B"), colour.plan.channels, strict=True)),
        "luminance": colour.plan.luminance,
        "stacking_ids": dict(stacking_ids),
        "registration": colour.registration,
        "files": {k: p.name for k, p in paths.items()},
    }
    paths["json"] = stacked_dir / f"{base}.json"
    atomic_write_bytes(paths["json"], (json.dumps(meta, indent=2) + "\n").encode())
    return paths
