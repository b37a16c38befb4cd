"""A deterministic synthetic sky: stars fixed on the celestial sphere, seen through a filter.

Stars live in ~1°×1° tiles of the sphere, each tile generated from (seed, tile) alone, so the
same RA/Dec shows the same stars on every visit, a small slew shifts the field instead of
replacing it, and nothing depends on the order in which fields were visited. The field is
projected gnomonically onto the sensor.

Magnitudes follow star counts of the Galactic field, dN/dm ∝ 10^(0.35·m): each magnitude
fainter has 2.2× as many stars. ``Simulation.stars`` is the mean number of stars on the full
sensor, which fixes the density per square degree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from runner.solve.geometry import tangent_offsets

F64 = npt.NDArray[np.float64]

TILE_DEG = 1.0
MAG_SLOPE = 0.35  # log10 dN/dm
MAG_RANGE = 7.0  # brightest star is this much brighter than the faintest
#: Electrons per second (unbinned, L filter, no vignetting) from the faintest star.
FAINT_FLUX = 20.0

# Relative throughput of filters, for stars and sky, by (case-insensitive) name. Unknown names
# pass everything (a clear or luminance filter).
_BROADBAND = 0.3
_NARROWBAND_STARS = 0.04
_NARROWBAND_SKY = 0.015
_FILTERS: dict[str, tuple[float, float]] = {
    **{n: (1.0, 1.0) for n in ("l", "lum", "luminance", "clear", "c", "uvir", "uv/ir")},
    **{n: (_BROADBAND, _BROADBAND) for n in ("r", "g", "b", "red", "green", "blue", "v")},
    **{
        n: (_NARROWBAND_STARS, _NARROWBAND_SKY)
        for n in ("ha", "h-alpha", "halpha", "oiii", "o3", "sii", "s2", "hb", "hbeta", "nii")
    },
}


def filter_throughput(name: str | None) -> tuple[float, float]:
    """(stars, sky) throughput of a filter relative to luminance."""
    if name is None:
        return 1.0, 1.0
    return _FILTERS.get(name.strip().lower(), (1.0, 1.0))


@dataclass(frozen=True)
class TileStars:
    ra: F64  # degrees
    dec: F64
    flux: F64  # e-/s through L
    colour: F64  # -1 (blue) … +1 (red), shifts flux between Bayer channels


def _tile_seed(seed: int, band: int, index: int) -> list[int]:
    return [seed & 0xFFFFFFFF, 0x5C1E, band, index]


def _band_tiles(band: int) -> int:
    dec_mid = -90.0 + (band + 0.5) * TILE_DEG
    return max(1, math.floor(360.0 * math.cos(math.radians(dec_mid)) / TILE_DEG))


@lru_cache(maxsize=512)
def tile_stars(seed: int, density: float, band: int, index: int) -> TileStars:
    """The stars of one tile; ``density`` is stars per square degree."""
    n_ra = _band_tiles(band)
    ra_w = 360.0 / n_ra
    dec_lo = -90.0 + band * TILE_DEG
    dec_hi = min(90.0, dec_lo + TILE_DEG)
    s_lo, s_hi = math.sin(math.radians(dec_lo)), math.sin(math.radians(dec_hi))
    area = math.radians(ra_w) * (s_hi - s_lo) * (180.0 / math.pi) ** 2
    rng = np.random.default_rng(_tile_seed(seed, band, index))
    n = int(rng.poisson(density * area))
    ra = (index + rng.random(n)) * ra_w
    dec = np.degrees(np.arcsin(s_lo + rng.random(n) * (s_hi - s_lo)))
    # Inverse CDF of dN/dm ∝ 10^(a m) on [m_faint - MAG_RANGE, m_faint], in magnitudes
    # relative to the faintest star.
    a = MAG_SLOPE
    lo, hi = 10 ** (-a * MAG_RANGE), 1.0
    rel_mag = np.log10(lo + rng.random(n) * (hi - lo)) / a  # in [-MAG_RANGE, 0]
    flux = FAINT_FLUX * 10 ** (-0.4 * rel_mag)
    colour = np.clip(rng.normal(0.1, 0.3, n), -1.0, 1.0)
    return TileStars(ra, dec, flux, colour)


@dataclass(frozen=True)
class FieldStars:
    """Stars on the sensor plane: offsets from the optical axis in unbinned px (x right, y
    down as rows grow; north is -y, east is -x at rotation 0)."""

    x: F64
    y: F64
    flux: F64
    colour: F64


def field_stars(
    seed: int,
    density: float,
    ra0: float,
    dec0: float,
    scale_arcsec: float,
    radius_px: float,
) -> FieldStars:
    """All stars within ``radius_px`` of the optical axis pointing at (ra0, dec0)."""
    radius_deg = radius_px * scale_arcsec / 3600.0
    dec_min = max(-90.0, dec0 - radius_deg)
    dec_max = min(90.0, dec0 + radius_deg)
    parts: list[TileStars] = []
    n_bands = round(180.0 / TILE_DEG)
    band_lo = max(0, math.floor((dec_min + 90.0) / TILE_DEG))
    band_hi = min(n_bands - 1, math.floor((dec_max + 90.0) / TILE_DEG))
    for band in range(band_lo, band_hi + 1):
        n_ra = _band_tiles(band)
        ra_w = 360.0 / n_ra
        edge = max(abs(-90.0 + band * TILE_DEG), abs(-90.0 + (band + 1) * TILE_DEG))
        cos_edge = math.cos(math.radians(min(89.999, edge)))
        half = radius_deg / max(cos_edge, 1e-6)
        if half >= 180.0 - ra_w:
            indices = range(n_ra)
        else:
            first = math.floor(((ra0 - half) % 360.0) / ra_w)
            count = math.floor(2 * half / ra_w) + 2
            indices = range(first, first + count)
        seen: set[int] = set()
        for i in indices:
            idx = i % n_ra
            if idx not in seen:
                seen.add(idx)
                parts.append(tile_stars(seed, density, band, idx))
    if not parts:
        z = np.zeros(0)
        return FieldStars(z, z, z, z)
    ra = np.concatenate([p.ra for p in parts])
    dec = np.concatenate([p.dec for p in parts])
    flux = np.concatenate([p.flux for p in parts])
    colour = np.concatenate([p.colour for p in parts])
    return project_stars(ra, dec, flux, colour, ra0, dec0, scale_arcsec, radius_px)


def project_stars(
    ra: F64, dec: F64, flux: F64, colour: F64,
    ra0: float, dec0: float, scale_arcsec: float, radius_px: float,
) -> FieldStars:
    """Gnomonic (TAN) projection about (ra0, dec0) onto the sensor, stars within the box of
    half-side ``radius_px``: the one projection of synthetic and catalogue stars alike."""
    xi, eta = tangent_offsets(ra0, dec0, ra, dec)  # NaN behind the sky: never in the box
    x = -xi / scale_arcsec  # east left
    y = -eta / scale_arcsec  # north up
    keep = (np.abs(x) <= radius_px) & (np.abs(y) <= radius_px)
    return FieldStars(x[keep], y[keep], flux[keep], colour[keep])


def catalogue_field(
    seed: int, density: float, ra0: float, dec0: float, scale_arcsec: float, radius_px: float,
) -> FieldStars:
    """The real sky: Tycho-2 stars (:mod:`runner.devices.sim.catalogue`) on the synthetic
    sky's flux scale, plus synthetic stars fainter than the catalogue as filler (so that
    autofocus and registration find as many stars as on the synthetic sky, while the bright
    stars — those a plate solver uses — are all real)."""
    from runner.devices.sim.catalogue import (
        BRIGHTEST_MAG,
        FAINT_MAG,
        FILLER_BRIGHTEST_MAG,
        load_catalogue,
    )

    radius_deg = radius_px * math.sqrt(2.0) * scale_arcsec / 3600.0
    ra, dec, mag = load_catalogue().around(ra0, dec0, radius_deg)
    flux = FAINT_FLUX * 10.0 ** (-0.4 * (np.maximum(mag, BRIGHTEST_MAG) - FAINT_MAG))
    real = project_stars(ra, dec, flux, np.full(ra.shape, 0.1), ra0, dec0, scale_arcsec,
                         radius_px)
    filler = field_stars(seed, density, ra0, dec0, scale_arcsec, radius_px)
    faint = filler.flux < FAINT_FLUX * 10.0 ** (-0.4 * (FILLER_BRIGHTEST_MAG - FAINT_MAG))
    return FieldStars(
        np.concatenate([real.x, filler.x[faint]]), np.concatenate([real.y, filler.y[faint]]),
        np.concatenate([real.flux, filler.flux[faint]]),
        np.concatenate([real.colour, filler.colour[faint]]),
    )
