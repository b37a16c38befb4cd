"""How long the sky takes: a night's visibility for 10 targets, and the example plan's estimate.

Run: ``.venv/bin/python benchmarks/bench_sky.py`` (a fresh process, so "cold" includes
importing astropy and loading its bundled IERS tables). Prints figures; asserts nothing.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

T0 = time.perf_counter()

from runner.plan.loader import load_plan  # noqa: E402
from runner.plan.models import Site, Target  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SITE = Site(latitude=52.37, longitude=4.89, elevation=5, timezone="Europe/Amsterdam")
NIGHT = date(2026, 11, 25)


def targets(n: int) -> list[Target]:
    return [
        Target.model_validate(
            {
                "name": f"T{i}",
                "coordinates": {"ra": (i * 37.0) % 360, "dec": -20 + i * 8.0},
                "constraints": {
                    "min_altitude": 30,
                    "twilight": "astronomical",
                    "moon_separation": 30,
                },
                "sequence": [{"expose": {"exposure": 60}}],
            }
        )
        for i in range(n)
    ]


def night(day: date, n: int) -> tuple[float, int]:
    from runner.sky.events import night_events
    from runner.sky.timeutil import local_noon, site_timezone
    from runner.sky.visibility import TargetVisibility

    t = time.perf_counter()
    ev = night_events(SITE, day)
    noon = local_noon(day, site_timezone(SITE))
    vis = [TargetVisibility(x, SITE, noon) for x in targets(n)]
    assert ev.sunset.dusk is not None and ev.sunset.dawn is not None
    vis[0].prefetch(vis[1:], ev.sunset.dusk, ev.sunset.dawn)
    windows = sum(len(v.windows(ev.sunset.dusk, ev.sunset.dawn)) for v in vis)
    return time.perf_counter() - t, windows


def main() -> None:
    imported = time.perf_counter() - T0
    cold, w = night(NIGHT, 10)
    warm, _ = night(NIGHT + timedelta(days=1), 10)
    print(f"import runner.plan: {imported * 1000:.0f} ms (no astropy)")
    print(
        f"10 targets, one night (events + grids + windows): cold {cold:.2f} s "
        f"(astropy import + IERS load included), warm {warm:.2f} s; {w} windows"
    )

    from runner.sky.timeutil import local_noon, site_timezone
    from runner.sky.visibility import TargetVisibility

    v = TargetVisibility(targets(1)[0], SITE, local_noon(NIGHT, site_timezone(SITE)))
    t = local_noon(NIGHT, site_timezone(SITE)) + timedelta(hours=9)
    v.holds_at(t)
    n = 20_000
    s = time.perf_counter()
    for k in range(n):
        v.holds_at(t + timedelta(seconds=k))
    per = (time.perf_counter() - s) / n
    print(f"holds_at (3 constraints, cached grid): {per * 1e6:.0f} µs per call")

    from runner.estimate import estimate

    loaded = load_plan(ROOT / "plans" / "m31-m42-lrgb.yaml")
    assert loaded.plan is not None and loaded.equipment is not None
    s = time.perf_counter()
    tl = estimate(loaded.plan, loaded.equipment, date=NIGHT)
    print(
        f"estimate of plans/m31-m42-lrgb.yaml for {NIGHT}: {time.perf_counter() - s:.2f} s; "
        f"{tl.start:%H:%M}–{tl.end:%H:%M}, exposure {tl.exposure / 3600:.2f} h, "
        f"overhead {tl.overhead / 3600:.2f} h"
    )


if __name__ == "__main__":
    main()
