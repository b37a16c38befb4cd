"""The IERS table is parsed once per installed version: later processes load it from the cache
and get exactly the same sky; a damaged or untrusted cache only costs the parse again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_SKY = """
import json, sys
import numpy as np
from astropy.utils import iers
if sys.argv[1] == "no-parse":
    def refuse(*a, **k):
        raise AssertionError("the IERS table was parsed")
    iers.IERS_Auto.read = classmethod(refuse)
from runner.plan.models import Site
from runner.sky.ephemeris import sun_altitude
site = Site(latitude=52.37, longitude=4.89, timezone="Europe/Amsterdam")
print(json.dumps(sun_altitude(site, np.array([1.79e9, 1.80e9, 1.81e9])).tolist()))
"""


def _sky(cache: Path, mode: str = "parse") -> list[float]:
    env = {**os.environ, "NIGHTRUNNER_CACHE_DIR": str(cache),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", _SKY, mode], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out: list[float] = json.loads(done.stdout)
    return out


def test_the_second_process_loads_the_table_and_sees_the_same_sky(tmp_path: Path) -> None:
    first = _sky(tmp_path)
    [cached] = tmp_path.glob("iers-*.pickle")
    assert cached.stat().st_mode & 0o077 == 0  # the user's own
    assert _sky(tmp_path, "no-parse") == first  # bit for bit


def test_a_damaged_cache_is_parsed_again_and_replaced(tmp_path: Path) -> None:
    first = _sky(tmp_path)
    [cached] = tmp_path.glob("iers-*.pickle")
    cached.write_bytes(b"not a pickle")
    assert _sky(tmp_path) == first
    assert _sky(tmp_path, "no-parse") == first  # the parse wrote it whole again


def test_a_cache_others_may_write_is_not_loaded(tmp_path: Path) -> None:
    _sky(tmp_path)
    [cached] = tmp_path.glob("iers-*.pickle")
    cached.chmod(0o666)
    done = subprocess.run(
        [sys.executable, "-c", _SKY, "no-parse"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "NIGHTRUNNER_CACHE_DIR": str(tmp_path),
             "PYTHONPATH": str(Path(__file__).resolve().parents[2])}, check=False)
    assert "the IERS table was parsed" in done.stderr  # it parsed rather than trust the file
