"""The estimate as users meet it: `nightrunner estimate` output, exit codes, `validate --sky`."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from estplans import ROOT, SIM, make_plan, run, target

from runner.estimate import TargetStatus, estimate, estimate_main, render_table, sky_diagnostics
from runner.estimate.render import timeline_json
from runner.plan.diagnostics import Severity
from runner.plan.loader import load_plan
from runner.sky.events import night_events

EXAMPLE = ROOT / "plans" / "m31-m42-lrgb.yaml"
NIGHT = "2026-11-25"

PLAN = """\
version: 1
name: cli test
site: {latitude: 52.37, longitude: 4.89, elevation: 5, timezone: Europe/Amsterdam}
targets:
  - name: M31
    coordinates: {ra: "00:42:44.3", dec: "+41:16:09"}
    constraints: {min_altitude: 30, twilight: astronomical}
    sequence:
      - filter: L
      - expose: {count: 10, exposure: 120}
  - name: Late riser
    coordinates: {ra: "05:35:17.3", dec: "-05:23:28"}
    constraints: {min_altitude: 20, until: "21:00"}
    sequence:
      - expose: {count: 1, exposure: 60}
  - name: Early
    coordinates: {ra: 10.68, dec: 41.27}
    constraints: {until: "18:00"}
    sequence:
      - expose: {count: 1, exposure: 60}
"""


def test_json_has_the_documented_shape() -> None:
    tl = run(make_plan([target("A", sequence=[{"filter": "L"}, {"expose": {"exposure": 60}}])]))
    data = json.loads(timeline_json(tl))
    assert set(data) >= {
        "plan",
        "date",
        "timezone",
        "start",
        "end",
        "duration_s",
        "night",
        "startup",
        "targets",
        "shutdown",
        "totals",
        "warnings",
        "assumptions",
    }
    t = data["targets"][0]
    assert t["status"] == "complete" and t["frames"] == [
        {"filter": "L", "type": "light", "count": 1, "each_s": 60.0, "exposure_s": 60.0}
    ]
    assert datetime.fromisoformat(t["start"]).utcoffset() is not None
    assert data["timezone"] == "Europe/Amsterdam"
    assert data["totals"]["light_frames"] == 1


def test_the_table_names_every_target_and_the_night() -> None:
    tl = run(make_plan([target("Alpha"), target("Beta", constraints={"until": "21:00"})]))
    out = io.StringIO()
    render_table(tl, file=out)
    text = out.getvalue()
    assert "Alpha" in text and "Beta" in text
    assert "complete" in text and "skipped" in text
    assert "sunset" in text and "assumptions:" in text


def test_estimate_main_prints_a_table_and_exits_0(
    write_plan: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_plan(PLAN)
    assert estimate_main(path, NIGHT, as_json=False) == 0
    out = capsys.readouterr().out
    assert "M31" in out and "never meets its constraints on 2026-11-25" in out


def test_estimate_main_json(
    write_plan: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_plan(PLAN)
    assert estimate_main(path, NIGHT, as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    statuses = {t["name"]: t["status"] for t in data["targets"]}
    assert statuses == {"M31": "complete", "Late riser": "skipped", "Early": "skipped"}


def test_estimate_main_reports_an_invalid_plan_with_exit_1(
    write_plan: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_plan(PLAN.replace("exposure: 120", "exposure: -5"))
    assert estimate_main(path, NIGHT, as_json=False) == 1
    err = capsys.readouterr().err
    assert ": error: " in err and str(path.name) in err


def test_estimate_main_rejects_a_bad_date_with_exit_2(
    write_plan: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert estimate_main(write_plan(PLAN), "25/11/2026", as_json=False) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_an_unknown_time_zone_is_an_error_at_its_node(
    write_plan: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_plan(PLAN.replace("Europe/Amsterdam", "Mars/Olympus_Mons"))
    assert estimate_main(path, NIGHT, as_json=False) == 1
    err = capsys.readouterr().err
    assert ":3:" in err and "unknown time zone 'Mars/Olympus_Mons'" in err


def test_sky_diagnostics_point_at_the_target(write_plan: Callable[..., Path]) -> None:
    path = write_plan(PLAN)
    loaded = load_plan(path)
    assert loaded.plan is not None
    diags = sky_diagnostics(loaded.plan, loaded.equipment, loaded.positions, date(2026, 11, 25))
    by_line = {d.line: d for d in diags}
    assert all(d.severity is Severity.warning for d in diags)
    lines = PLAN.splitlines()
    south = next(i for i, s in enumerate(lines, 1) if "min_altitude: 20" in s)
    assert "target 'Late riser' never meets its constraints" in by_line[south].message
    assert "the constraints never hold at the same time" in by_line[south].message
    early = next(i for i, s in enumerate(lines, 1) if "name: Early" in s)
    assert "target 'Early' is skipped on 2026-11-25" in by_line[early].message
    # Without equipment: only the "never" check, which needs no walk.
    bare = sky_diagnostics(loaded.plan, None, loaded.positions, "2026-11-25")
    assert [d.line for d in bare] == [south]
    bad = sky_diagnostics(loaded.plan, None, loaded.positions, "tonight")
    assert len(bad) == 1 and bad[0].severity is Severity.error and "YYYY-MM-DD" in bad[0].message


def test_the_example_plan_fills_the_night() -> None:
    loaded = load_plan(EXAMPLE)
    assert loaded.plan is not None and loaded.equipment is not None
    tl = estimate(loaded.plan, loaded.equipment, date=date(2026, 11, 25))
    ev = night_events(loaded.plan.site, date(2026, 11, 25))
    assert tl.start == ev.astronomical.dusk
    assert [t.status for t in tl.targets] == [TargetStatus.complete] * len(tl.targets)
    first, second = tl.targets[0], tl.targets[1]
    assert second.start == first.end
    assert {f.filter for f in first.frames.values()} == {"L", "R", "G", "B"}
    assert tl.warnings == []
    assert SIM.name == loaded.equipment.name
