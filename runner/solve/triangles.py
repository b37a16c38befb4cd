"""Triangles of stars described by what survives a rotation, a shift, a mirror and a change of
scale: the two ratios of their sides. Pure numpy.

Why triangles and not astrometry.net's quads: the hinted matcher (:mod:`runner.solve.hinted`)
runs on fields with four to seven catalogue stars, where a quad is the whole field; three
stars make a hypothesis and every further star is left to verify it. The vertices of a
triangle are put in a fixed order — opposite the longest side first, the shortest last — so
that two triangles with the same ratios pair their vertices too, and the sign of their
orientations says whether the image is mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Triangles:
    """Triangles over a set of points: vertex indices (n, 3) in canonical order, the ratios
    (middle side / longest, shortest / longest), the longest side, the orientation (±1)."""

    vertices: I64
    ratio_mid: F64
    ratio_short: F64
    longest: F64
    orientation: F64

    def __len__(self) -> int:
        return int(self.vertices.shape[0])


def _describe(xy: F64, tri: I64) -> Triangles:
    """Canonical vertex order and invariants of the triangles ``tri`` over points ``xy``."""
    p = xy[tri]  # (n, 3, 2)
    # side opposite vertex v: between the other two
    opposite = np.stack([np.hypot(*(p[:, 2] - p[:, 1]).T), np.hypot(*(p[:, 0] - p[:, 2]).T),
                         np.hypot(*(p[:, 1] - p[:, 0]).T)], axis=1)
    order = np.argsort(-opposite, axis=1, kind="stable")
    tri = np.take_along_axis(tri, order, axis=1)
    sides = np.take_along_axis(opposite, order, axis=1)
    p = xy[tri]
    d1, d2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    longest = sides[:, 0]
    return Triangles(tri.astype(np.int64), sides[:, 1] / longest, sides[:, 2] / longest,
                     longest, np.sign(cross))


def all_triangles(xy: F64, min_longest: float, max_side: float, min_height: float) -> Triangles:
    """Every triangle of points ``xy`` (n, 2) whose sides are all ≤ ``max_side``, whose longest
    side is ≥ ``min_longest`` and whose height over the longest side is ≥ ``min_height``
    (flat triangles have unstable ratios and orientation). Sorted by ``ratio_mid``."""
    n = len(xy)
    if n < 3:
        return _describe(xy, np.zeros((0, 3), dtype=np.int64))
    parts: list[I64] = []
    for i in range(n - 2):  # a row at a time: memory O(n), not the O(n²) distance matrix
        rest = xy[i + 1:]
        js = np.flatnonzero(np.hypot(rest[:, 0] - xy[i, 0], rest[:, 1] - xy[i, 1]) <= max_side)
        if js.size < 2:
            continue
        js += i + 1
        p = xy[js]
        near = np.hypot(p[:, None, 0] - p[None, :, 0], p[:, None, 1] - p[None, :, 1]) <= max_side
        a, b = np.nonzero(np.triu(near, k=1))
        if a.size:
            parts.append(np.column_stack([np.full(a.size, i), js[a], js[b]]))
    tri = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)
    t = _describe(xy, tri)
    # height over the longest side = 2·area / longest = |cross| / longest
    p = xy[t.vertices]
    d1, d2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    height = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / np.maximum(t.longest, 1e-12)
    keep = (t.longest >= min_longest) & (height >= min_height)
    t = _select(t, np.flatnonzero(keep))
    return _select(t, np.argsort(t.ratio_mid, kind="stable"))


def _select(t: Triangles, idx: I64) -> Triangles:
    return Triangles(t.vertices[idx], t.ratio_mid[idx], t.ratio_short[idx], t.longest[idx],
                     t.orientation[idx])


def similar(table: Triangles, ratio_mid: float, ratio_short: float, tolerance: float,
            longest_lo: float, longest_hi: float) -> I64:
    """Indices of the triangles of ``table`` (sorted by ``ratio_mid``) with both ratios within
    ``tolerance`` and the longest side in [``longest_lo``, ``longest_hi``]."""
    lo = int(np.searchsorted(table.ratio_mid, ratio_mid - tolerance, side="left"))
    hi = int(np.searchsorted(table.ratio_mid, ratio_mid + tolerance, side="right"))
    rs, ls = table.ratio_short[lo:hi], table.longest[lo:hi]
    ok = (np.abs(rs - ratio_short) <= tolerance) & (ls >= longest_lo) & (ls <= longest_hi)
    return (np.flatnonzero(ok) + lo).astype(np.int64)
