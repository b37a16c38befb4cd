"""J2000 ↔ equinox-of-date for mounts that work in "JNow" (INDI always, ASCOM when
``EquatorialSystem`` is topocentric).

Nightrunner's :class:`~runner.devices.interfaces.Mount` speaks J2000 degrees. Many mounts take
and report mean coordinates of the date. The conversion here is astropy's FK5 precession
(IAU 1976) — offline, no IERS table needed beyond the bundled leap seconds.
Nutation and annual aberration (together at most ~30″) are not applied: a mount's own pointing
model and a plate-solve centring step correct far more than that.

Blocking (astropy import, matrix computation): call it from a worker thread, as the adapters do.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import numpy.typing as npt

from runner.sky.offline import ASTROPY_LOCK, configure_offline


def _precession_matrix(when: datetime) -> npt.NDArray[np.float64]:
    """J2000 → mean equator and equinox of ``when`` (rotation matrix, 3×3, IAU 1976)."""
    from astropy.coordinates import FK5, CartesianRepresentation, SkyCoord
    from astropy.time import Time

    configure_offline()
    with ASTROPY_LOCK:
        axes = SkyCoord(
            CartesianRepresentation(np.eye(3)), frame=FK5(equinox="J2000")
        ).transform_to(FK5(equinox=Time(when)))
        columns = axes.cartesian.xyz.value
    return np.asarray(columns, dtype=np.float64)


def _unit(ra_deg: float, dec_deg: float) -> npt.NDArray[np.float64]:
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    return np.array(
        [math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)],
        dtype=np.float64,
    )


def _angles(v: npt.NDArray[np.float64]) -> tuple[float, float]:
    x, y, z = (float(c) for c in v)
    ra = math.degrees(math.atan2(y, x)) % 360.0
    dec = math.degrees(math.atan2(z, math.hypot(x, y)))
    return ra, dec


def j2000_to_date(ra_deg: float, dec_deg: float, when: datetime) -> tuple[float, float]:
    """Precess J2000 RA/Dec (degrees) to the mean equinox of ``when`` (degrees)."""
    return _angles(_precession_matrix(when) @ _unit(ra_deg, dec_deg))


def date_to_j2000(ra_deg: float, dec_deg: float, when: datetime) -> tuple[float, float]:
    """Inverse of :func:`j2000_to_date`."""
    return _angles(_precession_matrix(when).T @ _unit(ra_deg, dec_deg))
