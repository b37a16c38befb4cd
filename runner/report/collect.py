"""One night's facts for the report, from what the run left behind.

Sources, each optional so that a night cut short still gets its page: ``events.jsonl``
(the time line, autofocus runs, dithers, the stacker), ``summary.json`` (totals),
``run.json`` (the plan, hence the site and targets for the altitude plot) and the data
directory's image index (per-frame HFR, guiding RMS in RA and Dec, sensor temperatures).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass
class FramePoint:
    """One light frame: when, what, and how good."""

    time: datetime
    target: str | None
    filter: str | None
    exposure: float
    hfr: float | None = None
    rms: float | None = None
    rms_ra: float | None = None
    rms_dec: float | None = None
    ccd_temp: float | None = None
    set_temp: float | None = None


@dataclass
class Night:
    run_dir: Path
    summary: dict[str, Any]
    events: list[dict[str, Any]]
    frames: list[FramePoint] = field(default_factory=list)
    site: Any = None
    targets: list[tuple[str, float, float]] = field(default_factory=list)  # name, ra, dec

    def tz(self) -> Any:
        """Times are shown on the site's wall clock (UTC without a plan to name the site)."""
        if self.site is None:
            from datetime import UTC

            return UTC
        from runner.sky.timeutil import site_timezone

        return site_timezone(self.site)

    def times(self, *names: str) -> list[datetime]:
        return [_t(e) for e in self.events if e.get("event") in names and "clock" in e]

    def span(self) -> tuple[datetime, datetime] | None:
        clocks = [_t(e) for e in self.events if "clock" in e]
        return (min(clocks), max(clocks)) if clocks else None

    def counts(self) -> dict[tuple[str, str], int]:
        """Light frames taken per target × filter."""
        out: Counter[tuple[str, str]] = Counter()
        for f in self.frames:
            out[(f.target or "-", f.filter or "-")] += 1
        return dict(out)

    def stacks(self) -> dict[tuple[str, str], dict[str, int]]:
        """The live stacker per target × filter (a stack each): stacked and dropped
        (overload, unregistered, failed) from its last saved status, and refused at
        submission (``stack_dropped``, after the frame's own event, which names the filter)."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        current: str | None = None
        last_filter = "-"
        for e in self.events:
            ev = e.get("event")
            if ev == "target_start":
                current = e.get("target")
            elif current is None:
                continue
            elif ev == "frame":
                last_filter = e.get("filter") or "-"
            elif ev == "stack_saved":
                st = e.get("status") or {}
                row = out.setdefault((current, e.get("filter") or "-"),
                                     {"stacked": 0, "dropped": 0, "refused": 0})
                row["stacked"] = int(st.get("stacked") or 0)
                row["dropped"] = int(st.get("dropped") or 0)
            elif ev == "stack_dropped":
                row = out.setdefault((current, last_filter),
                                     {"stacked": 0, "dropped": 0, "refused": 0})
                row["refused"] += 1
        return out

    def integration(self) -> dict[tuple[str, str], float]:
        """Seconds of light per target × filter."""
        total: dict[tuple[str, str], float] = {}
        for f in self.frames:
            key = (f.target or "-", f.filter or "-")
            total[key] = total.get(key, 0.0) + f.exposure
        return total


def _t(e: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(e["clock"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_events(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return events


def collect(run_dir: Path) -> Night:
    """Every fact of the night (:func:`collect_sky`, then :func:`add_frames`)."""
    return add_frames(collect_sky(run_dir))


def add_frames(night: Night) -> Night:
    """The night's light frames, from the image index (else from the frame events)."""
    data_dir = Path(night.summary.get("data_dir") or night.run_dir.parent.parent)
    night.frames = _index_frames(data_dir, night.run_dir.name, night.events) or \
        _event_frames(night.events)
    return night


def collect_sky(run_dir: Path) -> Night:
    """What the altitude plot needs (the events' span, the plan's site and targets) and the
    summary, without the frames: enough to start the sky's numbers before the rest."""
    summary = _read_json(run_dir / "summary.json")
    night = Night(run_dir, summary, read_events(run_dir / "events.jsonl"))
    plan_path = _read_json(run_dir / "run.json").get("plan")
    if plan_path:
        with contextlib.suppress(Exception):  # a plan since moved or changed: no altitudes
            from runner.plan.loader import load_plan

            result = load_plan(Path(plan_path))
            if result.plan is not None:
                night.site = result.plan.site
                night.targets = [(t.name, float(t.coordinates.ra), float(t.coordinates.dec))
                                 for t in result.plan.targets]
    return night


def _index_frames(data_dir: Path, run_id: str,
                  events: list[dict[str, Any]]) -> list[FramePoint]:
    """The index's light frames of the run; their HFR from the frame events (the engine
    measures it after the file is written, so the index row may not have it)."""
    from runner.storage.index import INDEX_FILENAME, ImageIndex

    if not (data_dir / INDEX_FILENAME).is_file():
        return []
    index = ImageIndex(data_dir)
    try:
        rows = index.query(run_id=run_id, frame_type="light")
    finally:
        index.close()
    hfr = {str(Path(e["path"]).resolve()): e.get("hfr") for e in events
           if e.get("event") == "frame" and e.get("path")}
    root = data_dir.resolve()
    return [FramePoint(time=r.date_obs, target=r.target, filter=r.filter, exposure=r.exposure,
                       hfr=r.hfr if r.hfr is not None else hfr.get(str(root / r.path)),
                       rms=r.guide_rms, rms_ra=r.guide_rms_ra,
                       rms_dec=r.guide_rms_dec, ccd_temp=r.ccd_temp, set_temp=r.set_temp)
            for r in rows]


def _event_frames(events: list[dict[str, Any]]) -> list[FramePoint]:
    """Without an index (a dry run): the frame events, which carry HFR and total RMS."""
    out: list[FramePoint] = []
    current: str | None = None
    for e in events:
        if e.get("event") == "target_start":
            current = e.get("target")
        elif e.get("event") == "frame" and e.get("type") == "light" and "clock" in e:
            out.append(FramePoint(time=_t(e), target=current, filter=e.get("filter"),
                                  exposure=float(e.get("exposure") or 0), hfr=e.get("hfr"),
                                  rms=e.get("guiding_rms")))
    return out


ALTITUDES_FILENAME = "altitudes.json"


def _altitudes_key(night: Night) -> dict[str, Any] | None:
    span = night.span()
    if night.site is None or not night.targets or span is None:
        return None
    return {"site": night.site.model_dump(mode="json"), "targets": night.targets,
            "span": [span[0].isoformat(), span[1].isoformat()]}


def kept_altitudes(night: Night) -> tuple[bool, dict[str, Any] | None]:
    """``(True, series)`` when ``altitudes.json`` holds the series of this very night (same
    site, targets and span: a resumed night's longer span is computed again)."""
    key = _altitudes_key(night)
    if key is None:
        return True, None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        kept = json.loads((night.run_dir / ALTITUDES_FILENAME).read_text(encoding="utf-8"))
        if json.loads(json.dumps(key)) == kept["key"]:
            return True, kept["series"]
    return False, None


def altitudes(night: Night) -> dict[str, Any] | None:
    """The altitude plot's numbers, computed once per night and kept in ``altitudes.json``
    beside it: astropy's import and tables cost more than the rest of the report, and a
    past night's sky does not change (``nightrunner report`` then needs no astropy)."""
    known, series = kept_altitudes(night)
    if known:
        return series
    series = altitude_series(night)
    with contextlib.suppress(OSError):
        (night.run_dir / ALTITUDES_FILENAME).write_text(
            json.dumps({"key": _altitudes_key(night), "series": series}), encoding="utf-8")
    return series


def altitude_series(night: Night) -> dict[str, Any] | None:
    """The numbers of the altitude plot (plain values: they may come from another process).
    The Sun's altitude on the same grid gives the twilight bands: one astropy call more."""
    span = night.span()
    if night.site is None or not night.targets or span is None:
        return None
    from datetime import timedelta

    import numpy as np

    from runner.sky.ephemeris import sun_altitude, targets_altaz

    t0 = span[0] - timedelta(hours=2)
    t1 = span[1] + timedelta(hours=2)
    grid = np.linspace(t0.timestamp(), t1.timestamp(), 121)
    ra = np.array([t[1] for t in night.targets])
    dec = np.array([t[2] for t in night.targets])
    alt, _ = targets_altaz(night.site, ra, dec, grid)
    return {"grid": grid.tolist(), "alt": alt.tolist(),
            "sun": sun_altitude(night.site, grid).tolist()}
