"""Astropy without the network.

By default astropy refreshes its Earth-orientation (IERS-A) and leap-second tables from the
internet the first time a time-scale conversion needs them. At an observatory at 3 a.m. that
means a hang of ``remote_timeout`` seconds per attempt, or an exception, or — for dates beyond
the bundled tables — a ``ValueError`` because the predictions are "stale". None of that may
happen to an unattended night, so every module of :mod:`runner.sky` calls
:func:`configure_offline` before touching ``astropy.time``:

* ``iers.conf.auto_download = False``: use the tables bundled in ``astropy-iers-data`` (the
  package version fixes how far the predictions reach; ``pip install -U astropy-iers-data``
  refreshes them).
* ``iers.conf.auto_max_age = None``: never call bundled predictions stale (otherwise astropy
  raises for any date past the table's prediction start plus 30 days).
* ``iers.conf.iers_degraded_accuracy = "ignore"``: outside the tables UT1−UTC and polar motion
  are extrapolated; the error (< 1 s of time, < 1″ on the sky) is far below what scheduling
  needs.
* ``astropy.utils.data.conf.allow_internet = False``: any download that slips through fails at
  once instead of hanging.

:func:`quiet` silences the two warnings astropy still emits for far-future dates (polar motion
from the 50-year mean; ERFA's "dubious year" beyond the leap-second table) — both harmless at
arc-second level, both fatal under ``-W error``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_configured = False
_iers_ready = False
_lock = threading.Lock()

#: Serialises astropy computations: astropy's lazy table loading is not thread-safe, and
#: ``warnings.catch_warnings`` (used by :func:`quiet`) mutates process-global state.
ASTROPY_LOCK = threading.RLock()


def configure_offline() -> None:
    """Point astropy at its bundled IERS and leap-second tables; idempotent, cheap after once."""
    global _configured
    if _configured:
        return
    with _lock:
        if _configured:
            return
        from astropy.utils import data, iers

        iers.conf.auto_download = False
        iers.conf.auto_max_age = None
        iers.conf.iers_degraded_accuracy = "ignore"
        data.conf.allow_internet = False
        _configured = True


@contextmanager
def quiet() -> Iterator[None]:
    """Hold the astropy lock and hide the harmless far-future precision warnings; the first
    time, give astropy its IERS table from the cache (:mod:`runner.sky.iers_cache`)."""
    from astropy.utils.exceptions import AstropyWarning
    from erfa import ErfaWarning  # type: ignore[import-untyped]

    global _iers_ready
    with ASTROPY_LOCK, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Tried to get polar motions", category=AstropyWarning
        )
        warnings.filterwarnings("ignore", message=r".*dubious year", category=ErfaWarning)
        if not _iers_ready:  # the Earth-orientation table from the cache (1 s saved)
            from runner.sky import iers_cache

            iers_cache.install()
            _iers_ready = True
        yield
