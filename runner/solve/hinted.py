"""A hinted matcher for fields astrometry.net cannot solve: five to seven catalogue stars.

Why: a 33′×25′ field at high galactic latitude holds only 1–7 Tycho-2 stars. ``solve-field``
then finds no quad of them in its index, or finds the right one and cannot reach its odds
threshold of 10⁹ on two or three further stars. With the hints the engine always has — the
image scale from the optics (±15 %) and the mount's pointing with a search radius — a field
that small is still identifiable, as ASTAP's and N.I.N.A.'s hinted solvers show, provided the
answer is *verified* strictly: a false solution would sync the mount to the wrong place, which
is far worse than none.

How:

1. The catalogue stars within the search radius (plus the field's half-diagonal) are projected
   onto the tangent plane at the hinted pointing, in arcsec.
2. Triangles of the brightest detected stars are looked up among the catalogue's triangles of a
   size the scale allows, by their two side ratios (:mod:`runner.solve.triangles`). Each match
   is a hypothesis: a similarity transform (scale, rotation, shift, mirror) from three pairs.
3. A hypothesis predicts where every other catalogue star falls in the image and how bright it
   is (the zero point from the three stars). A further star counts only if a detected source
   lies within :data:`MATCH_PX` of its prediction **and** within :data:`MATCH_MAG` of its
   magnitude.
4. The false-match bound: under a wrong hypothesis a predicted star lands on a source of the
   right brightness with probability ``p_j = n_j·π·r²/A`` (``n_j`` the sources of that
   brightness, ``A`` the image area), so at least ``k`` of them do with probability at most
   the ``k``-th elementary symmetric sum of the ``p_j``; times the number of hypotheses tried
   (a union bound). A solution is accepted only when that bound is ≤ :data:`FALSE_MATCH_BOUND`
   and it has at least :data:`MIN_STARS` stars, every one within :data:`MATCH_PX` after the
   final fit. Two accepted solutions that disagree are refused.

Pure numpy and blocking (run it in a thread); it checks its deadline as it goes.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from runner.errors import SolveError
from runner.solve.geometry import offset_point, tangent_offsets
from runner.solve.triangles import Triangles, all_triangles, similar

F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

#: Detected stars whose triangles make hypotheses (the brightest; 56 triangles).
TRIANGLE_STARS = 8
#: A predicted star matches a source within this distance, pixels.
MATCH_PX = 2.0
#: ... and within this many magnitudes of its catalogue magnitude (Tycho VT is not the
#: sensor's band, and isophotal fluxes lose the wings of faint stars).
MATCH_MAG = 1.0
#: Side lengths of a detected triangle are trusted to this, pixels: the ratio tolerance.
SIDE_PX = 1.5
#: Stars in a solution: the triangle and at least two more.
MIN_STARS = 5
#: Largest accepted probability that any tried hypothesis would verify by chance.
FALSE_MATCH_BOUND = 1e-6
#: Catalogue stars kept per field area, on average over the search area (the brightest): the
#: triangles grow as the cube of the density, and a Milky Way field (which solve-field solves
#: anyway) would otherwise cost seconds and hundreds of MB. Sparse fields keep every star.
STARS_PER_FIELD = 12.0
#: The widest search around the hint (a larger radius is searched this far): hypotheses, time
#: and the false-match bound all grow with the area, and a mount that far off is not "hinted".
MAX_RADIUS_DEG = 3.0
#: Frame edge margin: a predicted star closer to the edge than this is not expected.
EDGE_PX = 4.0


@dataclass(frozen=True)
class Sources:
    """Detected sources, brightest first: 0-based pixel positions and fluxes (ADU)."""

    x: F64
    y: F64
    flux: F64


@dataclass(frozen=True)
class Field:
    """Catalogue stars around a tangent point: (xi east, eta north) arcsec, magnitudes."""

    ra0: float
    dec0: float
    xi: F64
    eta: F64
    mag: F64


@dataclass(frozen=True)
class Match:
    """A verified solution: the TAN WCS (CRVAL degrees, CD degrees per pixel, CRPIX 1-based)
    and how it was verified."""

    crval: tuple[float, float]
    crpix: tuple[float, float]
    cd: tuple[tuple[float, float], tuple[float, float]]
    stars: int
    rms_px: float
    false_match_bound: float
    hypotheses: int


def field_around(ra: F64, dec: F64, mag: F64, ra0: float, dec0: float,
                 keep: int | None = None) -> Field:
    """The catalogue stars given (the brightest ``keep``), about (ra0, dec0)."""
    if keep is not None and ra.size > keep:
        brightest = np.argsort(mag, kind="stable")[:keep]
        ra, dec, mag = ra[brightest], dec[brightest], mag[brightest]
    xi, eta = tangent_offsets(ra0, dec0, ra, dec)
    return Field(ra0, dec0, xi, eta, mag)


def catalogue_budget(radius_deg: float, field_area_deg2: float) -> int:
    """How many catalogue stars a search area of ``radius_deg`` keeps: :data:`STARS_PER_FIELD`
    per field area."""
    area = 2 * math.pi * (1 - math.cos(math.radians(radius_deg))) * (180 / math.pi) ** 2
    return math.ceil(STARS_PER_FIELD * area / field_area_deg2)


def _fit(pix: C128, sky: C128, flipped: bool) -> tuple[complex, complex]:
    """Least-squares similarity ``sky = a·w + b`` with ``w`` the pixel position (mirrored when
    ``flipped``): (a, b). ``|a|`` is the scale in arcsec per pixel."""
    w = np.conj(pix) if flipped else pix
    wm, sm = w.mean(), sky.mean()
    den = float(np.sum(np.abs(w - wm) ** 2))
    a = complex(np.sum((sky - sm) * np.conj(w - wm)) / den) if den > 0 else 0j
    return a, complex(sm - a * wm)


def _to_pixels(sky: C128, a: complex, b: complex, flipped: bool) -> C128:
    w = (sky - b) / a
    return np.conj(w) if flipped else w


def elementary_symmetric(p: F64, k: int) -> float:
    """The ``k``-th elementary symmetric sum of ``p``: the union bound on at least ``k`` of
    independent events of probabilities ``p`` happening together."""
    e = np.zeros(k + 1)
    e[0] = 1.0
    for pj in p:
        e[1:] = e[1:] + pj * e[:-1]
    return float(e[k])


@dataclass(frozen=True)
class _Frame:
    """What verification needs of the image, computed once."""

    width: int
    height: int
    pix: C128  # sources as x + iy
    logflux: F64  # -2.5·log10(flux), instrumental magnitudes
    scale_lo: float
    scale_hi: float
    radius_arcsec: float  # how far the solved centre may be from the hint


@dataclass(frozen=True)
class _Verified:
    a: complex
    b: complex
    flipped: bool
    pairs: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]  # (catalogue, source) indices
    pixels: C128  # the matched sources' positions
    bound_per_hypothesis: float
    rms_px: float


def _verify(fr: _Frame, field: Field, sky: C128, cat3: npt.NDArray[np.int64],
            src3: npt.NDArray[np.int64], flipped: bool) -> _Verified | None:
    """Check one hypothesis (three catalogue stars ↔ three sources); None when it fails."""
    a, b = _fit(fr.pix[src3], sky[cat3], flipped)
    scale = abs(a)
    if not fr.scale_lo <= scale <= fr.scale_hi:
        return None
    centre_pix = complex((fr.width - 1) / 2.0, (fr.height - 1) / 2.0)
    centre = a * (np.conj(centre_pix) if flipped else centre_pix) + b
    if abs(centre) > fr.radius_arcsec:
        return None
    zp_each = field.mag[cat3] - fr.logflux[src3]
    zp = float(np.median(zp_each))
    if np.max(np.abs(zp_each - zp)) > MATCH_MAG:
        return None
    pred = _to_pixels(sky, a, b, flipped)
    inside = ((pred.real >= EDGE_PX) & (pred.real <= fr.width - 1 - EDGE_PX)
              & (pred.imag >= EDGE_PX) & (pred.imag <= fr.height - 1 - EDGE_PX))
    inside[cat3] = False
    others = np.flatnonzero(inside)
    src_mag = fr.logflux + zp
    area = float(fr.width * fr.height)
    p = np.zeros(others.size)
    cat_m, src_m = [int(c) for c in cat3], [int(s) for s in src3]
    used = set(src_m)
    for n, j in enumerate(others):
        bright_alike = np.abs(src_mag - field.mag[j]) <= MATCH_MAG
        p[n] = min(1.0, int(bright_alike.sum()) * math.pi * MATCH_PX**2 / area)
        dist = np.abs(fr.pix - pred[j])
        cand = np.flatnonzero(bright_alike & (dist <= MATCH_PX))
        cand = np.array([c for c in cand if int(c) not in used], dtype=np.int64)
        if cand.size:
            best = int(cand[np.argmin(dist[cand])])
            cat_m.append(int(j))
            src_m.append(best)
            used.add(best)
    k = len(cat_m) - 3
    if len(cat_m) < MIN_STARS:
        return None
    ci, si = np.array(cat_m, dtype=np.int64), np.array(src_m, dtype=np.int64)
    a, b = _fit(fr.pix[si], sky[ci], flipped)
    resid = np.abs(_to_pixels(sky[ci], a, b, flipped) - fr.pix[si])
    if float(resid.max()) > MATCH_PX or not fr.scale_lo <= abs(a) <= fr.scale_hi:
        return None
    return _Verified(a, b, flipped, (ci, si), fr.pix[si], elementary_symmetric(p, k),
                     float(np.sqrt(np.mean(resid**2))))


def _source_triangles(src: Sources, width: int, height: int) -> Triangles:
    n = min(TRIANGLE_STARS, src.x.size)
    xy = np.column_stack([src.x[:n], src.y[:n]])
    diag = math.hypot(width, height)
    return all_triangles(xy, min_longest=0.12 * diag, max_side=diag, min_height=0.03 * diag)


def match(src: Sources, width: int, height: int, field: Field, scale_arcsec: float,
          scale_tolerance: float, radius_deg: float, deadline: float,
          cancel: threading.Event | None = None) -> Match | None:
    """The verified solution of ``src`` against ``field`` (catalogue stars about the hinted
    pointing), or None. :class:`SolveError` when ``deadline`` (``time.monotonic``) passes or
    ``cancel`` is set first."""
    lo, hi = scale_arcsec * (1 - scale_tolerance), scale_arcsec * (1 + scale_tolerance)
    fr = _Frame(width, height, src.x + 1j * src.y,
                -2.5 * np.log10(np.maximum(src.flux, 1e-9)), lo, hi, radius_deg * 3600.0)
    det = _source_triangles(src, width, height)
    diag = math.hypot(width, height)
    sky = field.xi + 1j * field.eta
    cat = all_triangles(np.column_stack([field.xi, field.eta]), min_longest=0.12 * diag * lo,
                        max_side=diag * hi, min_height=0.03 * diag * lo)
    accepted: list[_Verified] = []
    hypotheses = 0
    for t in range(len(det)):
        if time.monotonic() > deadline or (cancel is not None and cancel.is_set()):
            raise SolveError("the hinted matcher ran out of time")
        tol = SIDE_PX * 2.0 / float(det.longest[t])
        hits = similar(cat, float(det.ratio_mid[t]), float(det.ratio_short[t]), tol,
                       float(det.longest[t]) * lo, float(det.longest[t]) * hi)
        hypotheses += int(hits.size)
        for h in hits:
            # sky = a·w keeps a triangle's orientation, sky = a·conj(w) reverses it
            flipped = bool(cat.orientation[h] != det.orientation[t])
            got = _verify(fr, field, sky, cat.vertices[h], det.vertices[t], flipped)
            if got is not None:
                accepted.append(got)
    if not accepted:
        return None
    bound = min(v.bound_per_hypothesis for v in accepted) * hypotheses
    best = min(accepted, key=lambda v: v.bound_per_hypothesis)
    centre_pix = complex((width - 1) / 2.0, (height - 1) / 2.0)

    def centre(v: _Verified) -> complex:
        return v.a * (np.conj(centre_pix) if v.flipped else centre_pix) + v.b

    if bound > FALSE_MATCH_BOUND or any(
            abs(centre(v) - centre(best)) > 3 * MATCH_PX * abs(best.a) for v in accepted):
        return None
    return _final_fit(best, field, width, height, bound, hypotheses)


def _final_fit(v: _Verified, field: Field, width: int, height: int, bound: float,
               hypotheses: int) -> Match:
    """Refit the matched stars in the tangent plane at the solved centre (the hint's plane
    may be a few degrees away, enough to bend a 30′ field by a pixel): the WCS."""
    ci, pix = v.pairs[0], v.pixels
    stars = [offset_point(field.ra0, field.dec0, float(field.xi[i]), float(field.eta[i]))
             for i in ci]
    ra_s, dec_s = np.array([s[0] for s in stars]), np.array([s[1] for s in stars])
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    w_c = complex(cx, -cy) if v.flipped else complex(cx, cy)
    a, b, ra0, dec0 = v.a, v.b, field.ra0, field.dec0
    for _ in range(3):  # move the tangent point onto the image centre
        c = a * w_c + b
        ra0, dec0 = offset_point(ra0, dec0, c.real, c.imag)
        xi, eta = tangent_offsets(ra0, dec0, ra_s, dec_s)
        sky = xi + 1j * eta
        a, b = _fit(pix, sky, v.flipped)
    rms = float(np.sqrt(np.mean(np.abs(_to_pixels(sky, a, b, v.flipped) - pix) ** 2)))
    c = a * w_c + b  # ≈ 0 now: what is left goes into CRVAL
    crval = offset_point(ra0, dec0, c.real, c.imag)
    # CD: d(xi, eta)/d(x, y) of sky = a·w, w = x + iy (x − iy mirrored), degrees per pixel
    s = 1.0 / 3600.0
    if v.flipped:
        cd = ((a.real * s, a.imag * s), (a.imag * s, -a.real * s))
    else:
        cd = ((a.real * s, -a.imag * s), (a.imag * s, a.real * s))
    return Match(crval, (cx + 1.0, cy + 1.0), cd, int(ci.size), rms, bound, hypotheses)
