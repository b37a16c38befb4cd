"""Registration: find where a frame's stars sit in the reference frame, then warp it there.

Three stages, each chosen for speed on 4k×4k frames without giving up sub-pixel accuracy:

1. **Stars for registration** (:func:`registration_stars`), found by
   :mod:`runner.stacking.starfind`: a copy binned to about 1k pixels on the long side finds the
   bright stars just as well, and each is re-centroided on the full-resolution frame with an
   iterated Gaussian-windowed centroid. ~30 ms on a 4k frame, centroids good to a few
   hundredths of a pixel, and the event loop is not held while it runs.
2. **Asterism matching** (:func:`find_transform`). Triangles are formed from each bright star
   and its nearest neighbours; their side ratios are invariant under translation, rotation (any
   angle, so a meridian flip's 180° is nothing special) and scale. Similar triangles propose a
   transform; RANSAC keeps the proposal most stars agree with. The final similarity (or affine)
   transform is a least-squares fit over every matched star, with outliers clipped.
3. **Warp** (:func:`warp`). ``cv2.warpAffine`` with bilinear interpolation: measured 2–4× faster
   than bicubic/Lanczos and 15× faster than scikit-image; pixels with no source data become NaN
   so the accumulators know they are uncovered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from runner.errors import RegistrationError, StackingError
from runner.stacking.starfind import find_bright_stars

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

TransformModel = Literal["similarity", "affine"]


# --------------------------------------------------------------------------- star positions


@dataclass(frozen=True)
class RegStars:
    """Bright-star positions (full-resolution pixels), brightest first, and the sky level."""

    xy: FloatArray
    flux: FloatArray
    background: float
    background_rms: float

    def __len__(self) -> int:
        return int(self.xy.shape[0])


def registration_stars(
    image: F32,
    *,
    max_stars: int = 150,
    threshold_sigma: float = 5.0,
    bin_target: int = 1024,
) -> RegStars:
    """Positions of up to ``max_stars`` bright stars whose centroids converged.

    ``image`` is a calibrated 2-D float frame (for colour, its luminance). A quarter more
    candidates than wanted are centroided, so that losing a few (edge, blend) still leaves
    ``max_stars``.
    """
    if image.ndim != 2:
        raise StackingError(f"registration needs a 2-D luminance image, got {image.shape}")
    found = find_bright_stars(
        image,
        candidates=max_stars + max_stars // 4,
        threshold_sigma=threshold_sigma,
        bin_target=bin_target,
    )
    ok = found.refined
    xy = np.column_stack([found.x[ok], found.y[ok]])[:max_stars]
    return RegStars(xy, found.flux[ok][:max_stars], found.sky.level, found.sky.rms)


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class Registration:
    """A frame → reference mapping: ``ref = matrix @ (x, y, 1)``."""

    matrix: FloatArray  # 2×3
    matches: int
    rms: float  # px, residual of the matched stars

    @property
    def rotation_deg(self) -> float:
        return math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0]))

    @property
    def scale(self) -> float:
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    @property
    def shift(self) -> tuple[float, float]:
        return float(self.matrix[0, 2]), float(self.matrix[1, 2])

    def apply(self, xy: FloatArray) -> FloatArray:
        out: FloatArray = xy @ self.matrix[:, :2].T + self.matrix[:, 2]
        return out

    @classmethod
    def identity(cls) -> Registration:
        return cls(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 0, 0.0)


def fit_transform(src: FloatArray, dst: FloatArray, model: TransformModel) -> FloatArray:
    """Least-squares 2×3 matrix taking ``src`` points onto ``dst`` (Umeyama for similarity)."""
    n = len(src)
    if model == "affine" and n >= 3:
        a = np.column_stack([src, np.ones(n)])
        sol, *_ = np.linalg.lstsq(a, dst, rcond=None)
        return np.asarray(sol.T, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var_s = float((s**2).sum()) / n
    if var_s <= 0:
        raise RegistrationError("degenerate star configuration")
    cov = d.T @ s / n
    u, sv, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0  # a reflection is not a telescope motion
    rot = u @ np.diag(sign) @ vt
    scale = float((sv * sign).sum()) / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def _apply(m: FloatArray, xy: FloatArray) -> FloatArray:
    out: FloatArray = xy @ m[:, :2].T + m[:, 2]
    return out


def _triangles(xy: FloatArray, k: int = 5) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Invariants and canonically ordered vertex indices of triangles among near neighbours.

    Vertices are ordered so that vertex i is opposite the i-th shortest side; invariants are
    (L2/L1, L1/L0), the ratios of the sorted side lengths.
    """
    n = len(xy)
    if n < 3:
        return np.zeros((0, 2)), np.zeros((0, 3), dtype=np.intp)
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    kk = min(k, n - 1)
    nbrs = np.argsort(d, axis=1)[:, : kk + 1]  # includes the star itself
    tris: set[tuple[int, int, int]] = set()
    for row in nbrs:
        for c in combinations(sorted(int(v) for v in row), 3):
            tris.add(c)
    t = np.array(sorted(tris), dtype=np.intp)
    p = xy[t]  # (m, 3, 2)
    # side opposite vertex i joins the other two
    sides = np.stack(
        [
            np.hypot(*(p[:, 1] - p[:, 2]).T),
            np.hypot(*(p[:, 0] - p[:, 2]).T),
            np.hypot(*(p[:, 0] - p[:, 1]).T),
        ],
        axis=1,
    )
    order = np.argsort(sides, axis=1)
    sides = np.take_along_axis(sides, order, axis=1)
    verts = np.take_along_axis(t, order, axis=1)
    keep = sides[:, 0] > 1e-6
    inv = np.column_stack([sides[keep, 2] / sides[keep, 1], sides[keep, 1] / sides[keep, 0]])
    return inv, verts[keep]


def _nearest(a: FloatArray, b: FloatArray) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """For each point of ``a``: index of and distance to its nearest point in ``b``."""
    d2 = (a[:, None, 0] - b[None, :, 0]) ** 2 + (a[:, None, 1] - b[None, :, 1]) ** 2
    j = np.argmin(d2, axis=1)
    return j, np.sqrt(d2[np.arange(len(a)), j])


def _mutual_matches(
    src_ref: FloatArray, ref: FloatArray, tol: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
    j, dist = _nearest(src_ref, ref)
    back, _ = _nearest(ref, src_ref)
    i = np.arange(len(src_ref))
    ok = (dist < tol) & (back[j] == i)
    return i[ok], j[ok], dist[ok]


def find_transform(
    stars: FloatArray,
    reference: FloatArray,
    *,
    model: TransformModel = "similarity",
    match_stars: int = 40,
    tolerance_px: float = 3.0,
    min_matches: int = 6,
    max_scale_change: float = 0.1,
    rotation_limit_deg: float | None = None,
    max_hypotheses: int = 300,
) -> Registration:
    """The transform taking ``stars`` (x, y, brightest first) onto ``reference`` stars.

    ``rotation_limit_deg``: when set, only rotations within that many degrees of 0° or of 180°
    are accepted (an equatorial mount without field rotation: the only large rotation it makes
    is a meridian flip). Raises :class:`RegistrationError` when fewer than ``min_matches`` stars
    agree on one transform.
    """
    if len(stars) < 3 or len(reference) < 3:
        raise RegistrationError(f"too few stars to register ({len(stars)} vs {len(reference)})")
    src_top = stars[:match_stars]
    ref_top = reference[:match_stars]
    inv_s, tri_s = _triangles(src_top)
    inv_r, tri_r = _triangles(ref_top)
    if len(inv_s) == 0 or len(inv_r) == 0:
        raise RegistrationError("no usable star triangles")
    d = np.hypot(inv_s[:, None, 0] - inv_r[None, :, 0], inv_s[:, None, 1] - inv_r[None, :, 1])
    # Candidate pairs: each source triangle's nearest reference triangle, best first.
    j = np.argmin(d, axis=1)
    dj = d[np.arange(len(inv_s)), j]
    order = np.argsort(dj)
    cand = [(int(i), int(j[i])) for i in order[:max_hypotheses] if dj[i] < 0.05]
    if not cand:
        raise RegistrationError("no similar star triangles between frame and reference")

    need = min(min_matches, len(src_top), len(ref_top))
    best: tuple[int, float, FloatArray] | None = None
    for i_s, i_r in cand:
        m = fit_transform(src_top[tri_s[i_s]], ref_top[tri_r[i_r]], "similarity")
        scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
        if abs(scale - 1.0) > max_scale_change:
            continue
        if rotation_limit_deg is not None:
            rot = abs(math.degrees(math.atan2(m[1, 0], m[0, 0])))
            if min(rot, 180.0 - rot) > rotation_limit_deg:
                continue
        _, _, dist = _mutual_matches(_apply(m, src_top), ref_top, tolerance_px)
        score = (len(dist), -float(np.sum(dist)))
        if best is None or score > (best[0], best[1]):
            best = (len(dist), -float(np.sum(dist)), m)
            if len(dist) >= 0.8 * min(len(src_top), len(ref_top)):
                break
    if best is None or best[0] < need:
        got = 0 if best is None else best[0]
        raise RegistrationError(f"only {got} stars agree on a transform (need {need})")

    # Refine over all stars: match, fit, clip outliers, repeat.
    m = best[2]
    tol = tolerance_px
    si: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
    ri: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
    for _ in range(4):
        si, ri, _ = _mutual_matches(_apply(m, stars), reference, tol)
        if len(si) < need:
            raise RegistrationError(f"only {len(si)} stars match after refinement (need {need})")
        fit_model: TransformModel = model if len(si) >= 6 else "similarity"
        m = fit_transform(stars[si], reference[ri], fit_model)
        res = np.hypot(*(_apply(m, stars[si]) - reference[ri]).T)
        sigma = 1.4826 * float(np.median(res)) + 1e-3
        tol = max(min(tol, 4.0 * sigma), 0.3)
    res = np.hypot(*(_apply(m, stars[si]) - reference[ri]).T)
    return Registration(matrix=m, matches=len(si), rms=float(np.sqrt(np.mean(res**2))))


# --------------------------------------------------------------------------- warp


def warp(
    image: F32,
    registration: Registration,
    shape: tuple[int, int] | None = None,
    *,
    out: F32 | None = None,
) -> F32:
    """Resample ``image`` onto the reference grid; uncovered pixels become NaN."""
    h, w = shape if shape is not None else image.shape[:2]
    m = registration.matrix
    if np.allclose(m[:, :2], np.eye(2), atol=1e-9) and np.allclose(m[:, 2], 0.0, atol=1e-9):
        if out is not None:
            np.copyto(out, image)
            return out
        return np.array(image, dtype=np.float32, copy=True)
    dst = cv2.warpAffine(
        image,
        m,
        (w, h),
        dst=out,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(math.nan, math.nan, math.nan, math.nan),
    )
    result: F32 = np.asarray(dst, dtype=np.float32)
    return result
