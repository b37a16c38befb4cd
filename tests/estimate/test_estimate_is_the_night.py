"""One set of rules: for any valid plan the estimate is what ``run --dry-run`` does, and a night
on the simulators takes every frame the estimate predicts."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runner.clock import VirtualLoop
from runner.engine.run import Run, RunOptions
from runner.estimate import TargetStatus, Timeline, estimate
from runner.plan.diagnostics import Severity
from runner.plan.loader import load_plan
from tests.engine.conftest import EQUIPMENT, EVENING

SITE = {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"}
#: Targets across the sky: circumpolar, setting in the evening, rising late, crossing the
#: meridian during the night (flips).
SKY = [("NGC 188", 12.1, 85.2), ("M31", 10.68, 41.27), ("M42", 83.82, -5.39),
       ("M45", 56.75, 24.12), ("M33", 23.46, 30.66)]
FILTERS = ["L", "R", "G", "B"]

exposures = st.sampled_from([30, 60, 120, 300])


def expose() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda n, e, f: {"expose": {"count": n, "exposure": e, **({"filter": f} if f else {})}},
        st.integers(1, 4), exposures, st.none() | st.sampled_from(FILTERS))


def body() -> st.SearchStrategy[list[dict[str, Any]]]:
    leaf = st.one_of(expose(), st.sampled_from(FILTERS).map(lambda f: {"filter": f}),
                     st.just({"focus": "auto"}))
    each = st.builds(lambda fs, steps: {"each_filter": fs, "steps": steps},
                     st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3, unique=True),
                     st.lists(expose(), min_size=1, max_size=2))
    counted = st.builds(lambda n, steps: {"repeat": {"count": n}, "steps": steps},
                        st.integers(1, 3), st.lists(st.one_of(expose(), each), min_size=1,
                                                    max_size=2))
    until = st.builds(
        lambda cond, steps: {"repeat": {"until": cond}, "steps": steps},
        st.one_of(st.integers(1, 6).map(lambda n: {"frames": n}),
                  st.sampled_from(["21:10", "23:45", "01:30", "03:00"]).map(
                      lambda t: {"time": t}),
                  st.sampled_from([25, 40]).map(lambda a: {"altitude_below": a})),
        st.lists(st.one_of(expose(), each), min_size=1, max_size=2))
    return st.lists(st.one_of(leaf, each, counted, until), min_size=1, max_size=3)


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    targets = []
    for name, ra, dec in draw(st.lists(st.sampled_from(SKY), min_size=1, max_size=3,
                                       unique_by=lambda s: s[0])):
        t: dict[str, Any] = {"name": name, "coordinates": {"ra": ra, "dec": dec},
                             "sequence": [{"slew": {}}, *draw(body())]}
        constraints = draw(st.fixed_dictionaries({}, optional={
            "min_altitude": st.sampled_from([15, 30]),
            "until": st.sampled_from(["22:30", "02:00"]),
            "after": st.sampled_from(["20:30", "23:00"]),
        }))
        if constraints:
            t["constraints"] = constraints
            if draw(st.booleans()):
                t["wait"] = {"max": draw(st.sampled_from(["30min", "3h"]))}
        targets.append(t)
    triggers: list[dict[str, Any]] = draw(st.lists(st.sampled_from([
        {"dither": {"every": 2}}, {"dither": {"every": 3}},
        {"autofocus": {"every_frames": 4}}, {"autofocus": {"filter_change": True}},
        {"autofocus": {"every_minutes": 45}}, {"meridian_flip": {"after": 5}},
    ]), max_size=3, unique_by=lambda d: next(iter(d))))
    return {"version": 1, "name": "random", "site": SITE, "equipment": "eq.yaml",
            "startup": [{"cool": {"to": -5, "rate": 5}}, {"guide": "start"}],
            "triggers": triggers, "targets": targets,
            "shutdown": [{"guide": "stop"}, {"warm": {"to": 10}}, {"park": {}}]}


def _write(where: Path, plan: dict[str, Any]) -> Path:
    guider = "guider: {backend: simulator, exposure: 1, pixel_scale: 2.5}"
    (where / "eq.yaml").write_text(EQUIPMENT.format(guider=guider, faults="[]"))
    path = where / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _frames(events: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    """(target, filter, type, exposure) of every frame the night took."""
    target_of: dict[str, Any] = {}
    out: Counter[tuple[Any, ...]] = Counter()
    for e in events:
        if e["event"] == "exposure_start":
            target_of[e["key"]] = e["target"]
        elif e["event"] == "frame":
            out[(target_of[e["key"]], e["filter"], e["type"], float(e["exposure"]))] += 1
    return out


def _predicted(tl: Timeline) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    for te in tl.targets:
        for (filt, kind), tally in te.frames.items():
            out[(te.name, filt, kind, -1.0)] += tally.count
    return out


def _by_target(frames: Counter[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    for (target, filt, kind, _), n in frames.items():
        out[(target, filt, kind, -1.0)] += n
    return out


def _dry_run(path: Path, data: Path, start: datetime) -> list[dict[str, Any]]:
    loaded = load_plan(path)
    assert loaded.plan is not None and loaded.equipment is not None
    run = Run(loaded.plan, loaded.equipment,
              RunOptions(data_dir=data, dry_run=True, start=start, progress="none",
                         plan_text=path.read_bytes(), plan_path=path))
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        result = runner.run(run.execute())
    lines = (result.run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(), hours=st.sampled_from([0, 2, 4, 6]))
def test_the_estimate_is_what_the_dry_run_does(plan: dict[str, Any], hours: int) -> None:
    start = EVENING + timedelta(hours=hours)
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), plan)
        loaded = load_plan(path)
        problems = [d.format() for d in loaded.diagnostics if d.severity is Severity.error]
        # the one refusal a random plan may earn: a loop that would never end (a circumpolar
        # target waited for to sink below an altitude it never reaches)
        assume(not problems or not all("would never end" in p for p in problems))
        assert loaded.ok, problems
        assert loaded.plan is not None and loaded.equipment is not None
        tl = estimate(loaded.plan, loaded.equipment, start=start)
        events = _dry_run(path, Path(tmp) / "data", start)
    # the same frames, target by target and filter by filter
    assert _predicted(tl) == _by_target(_frames(events))
    # and the same night: each target ends when the dry run's does
    ends = {e["target"]: datetime.fromisoformat(e["clock"])
            for e in events if e["event"] == "target_end" and e["status"] == "completed"}
    for te in tl.targets:
        if te.status is TargetStatus.complete:
            assert te.end is not None
            assert abs((te.end - ends[te.name]).total_seconds()) < 1e-3


@settings(max_examples=2, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.lists(st.one_of(expose(), st.builds(
    lambda fs: {"each_filter": fs, "steps": [{"expose": {"count": 2, "exposure": 30}}]},
    st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3, unique=True))),
    min_size=1, max_size=3))
def test_a_night_on_the_simulators_takes_every_frame_the_estimate_predicts(
    seq: list[dict[str, Any]],
) -> None:
    plan = {"version": 1, "name": "sim", "site": SITE, "equipment": "eq.yaml",
            "triggers": [{"dither": {"every": 2}}],
            "startup": [{"guide": "start"}],
            "targets": [{"name": "NGC 188", "coordinates": {"ra": 12.1, "dec": 85.2},
                         "sequence": [{"slew": {}}, *seq]}],
            "shutdown": [{"guide": "stop"}, {"park": {}}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), plan)
        loaded = load_plan(path)
        assert loaded.plan is not None and loaded.equipment is not None
        tl = estimate(loaded.plan, loaded.equipment, start=EVENING)
        run = Run(loaded.plan, loaded.equipment,
                  RunOptions(data_dir=Path(tmp) / "data", speed=300, start=EVENING,
                             progress="none", plan_text=path.read_bytes(), plan_path=path))
        result = asyncio.run(run.execute())
        assert result.outcome == "completed"
        lines = (result.run_dir / "events.jsonl").read_text().splitlines()
        taken = _frames([json.loads(x) for x in lines])
    assert _by_target(taken) == _predicted(tl)
