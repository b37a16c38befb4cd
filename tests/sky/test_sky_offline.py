"""Astropy stays offline and quiet, and only the sky code imports it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date

import numpy as np
from skysites import AMSTERDAM

from runner.sky.events import night_events


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_plan_and_estimate_imports_do_not_load_astropy() -> None:
    proc = run_python(
        """
        import sys
        import runner.plan, runner.plan.models, runner.plan.loader
        import runner.estimate, runner.sky
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("astropy", "erfa"))
        print(loaded)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_night_is_computed_with_the_network_cut_off() -> None:
    proc = run_python(
        """
        import socket

        def refuse(*args, **kwargs):
            raise AssertionError("network access attempted")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from datetime import date
        from runner.plan.models import Site
        from runner.sky.events import night_events
        from astropy.utils import iers

        site = Site(latitude=52.37, longitude=4.89, timezone="Europe/Amsterdam")
        for day in (date(2026, 11, 25), date(2031, 1, 10), date(2045, 7, 1)):
            ev = night_events(site, day)
            assert ev.sunset.dusk is not None
        assert iers.conf.auto_download is False
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_far_future_nights_raise_no_warnings_here_either() -> None:
    # pytest turns warnings into errors: polar-motion and "dubious year" stay silenced.
    ev = night_events(AMSTERDAM, date(2040, 1, 15))
    assert ev.astronomical.dusk is not None
    assert np.isfinite(ev.moon_illumination)
