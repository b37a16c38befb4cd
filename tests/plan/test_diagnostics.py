"""`nightrunner validate` reports every problem as FILE:LINE:COL at the node at fault."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from runner.cli import app
from runner.plan.loader import load_plan

HEADER = """\
version: 1
name: test
site: {latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}
"""


def run_validate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", *args])
    return result.exit_code, result.output


def lines_of(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.strip()]


def test_every_problem_is_reported_at_its_own_line_and_column(
    write_plan: Callable[..., Path],
) -> None:
    path = write_plan(
        HEADER
        + """\
targets:
  - name: M31
    coordinates: {ra: "00:42:44.3", dec: "+41:16:09"}
    sequence:
      - expose: {count: 0, exposure: 120}
      - expose: {count: 2, exposure: 60, gian: 100}
      - exposee: {count: 3}
      - expose: {count: 10}
      - repeat: {count: 2}
        steps:
          - wait: {for: 10 parsecs}
"""
    )
    code, out = run_validate(str(path))
    assert code == 1
    got = {}
    for ln in lines_of(out):
        where, message = ln.split(": error: ")
        file, line, col = where.rsplit(":", 2)
        assert Path(file).name == path.name
        got[f"{line}:{col}"] = message
    assert "≥ 1" in got["8:25"]  # the value 0 itself
    assert "unknown key 'gian'" in got["9:42"] and "did you mean 'gain'" in got["9:42"]
    assert "did you mean 'expose'" in got["10:9"]
    assert "missing required key 'exposure'" in got["11:17"]  # the mapping that lacks it
    assert "not a duration" in got["14:25"]
    assert len(got) == 5


def test_semantic_errors_point_at_the_offending_value(write_plan: Callable[..., Path]) -> None:
    path = write_plan(
        HEADER
        + """\
targets:
  - name: Southern
    coordinates: {ra: 10, dec: -80}
    sequence:
      - filter: Q
      - expose: {count: 1, exposure: 5, binning: 9}
      - use: missing-block
  - name: M31
    coordinates: {ra: 10.68, dec: 41.27}
    constraints: {min_altitude: 30}
    sequence:
      - expose: {count: 1, exposure: 5}
blocks:
  a: [{use: b}]
  b: [{use: a}]
"""
    )
    result = load_plan(path)
    assert not result.ok
    msgs = {(d.line, d.column): d.message for d in result.diagnostics if d.severity == "error"}
    assert "never rises" in msgs[(6, 32)]
    assert "unknown filter 'Q'" in msgs[(8, 17)] and "L, R, G, B" in msgs[(8, 17)]
    assert "binning 9 exceeds" in msgs[(9, 50)]
    assert "no block named 'missing-block'" in msgs[(10, 14)]
    assert any("uses itself" in m for m in msgs.values())


def test_a_loop_that_could_never_end_is_refused(write_plan: Callable[..., Path]) -> None:
    """NGC 188 never sinks below 47.6° from 52.4° N: waiting for 40° would image into the day."""
    loop = """\
    sequence:
      - repeat: {until: {altitude_below: 40}}
        steps:
          - expose: {count: 1, exposure: 5}
"""
    forever = write_plan(HEADER + """\
targets:
  - name: NGC 188
    coordinates: {ra: 12.1, dec: 85.2}
""" + loop)
    result = load_plan(forever)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert [(d.line, d.column) for d in errors] == [(8, 42)]  # at the 40
    assert "never sinks below 40° at latitude 52.37° (lowest 47.6°)" in errors[0].message
    # a twilight constraint (or a frame count or a time) ends the same loop: accepted
    bounded = write_plan(HEADER + """\
targets:
  - name: NGC 188
    coordinates: {ra: 12.1, dec: 85.2}
    constraints: {twilight: astronomical}
""" + loop, name="bounded.yaml")
    assert load_plan(bounded).ok


def test_warnings_do_not_fail_validation(write_plan: Callable[..., Path]) -> None:
    path = write_plan(
        HEADER
        + """\
startup:
  - cool: {to: -10}
targets:
  - name: M31
    coordinates: {ra: 10.68, dec: 41.27}
    sequence:
      - expose: {count: 1, exposure: 5}
"""
    )
    code, out = run_validate(str(path))
    assert code == 0
    assert ": warning: " in out and "does not warm it" in out


def test_json_format_carries_the_same_records(write_plan: Callable[..., Path]) -> None:
    path = write_plan(HEADER + "targets: 3\n")
    code, out = run_validate("--format", "json", str(path))
    assert code == 1
    records = json.loads(out)
    assert records == [
        {
            "file": records[0]["file"],
            "line": 4,
            "column": 10,
            "severity": "error",
            "message": records[0]["message"],
        }
    ]
    assert "list" in records[0]["message"]


def test_valid_and_invalid_plans_together_exit_1_and_name_each_file(
    write_plan: Callable[..., Path], project_root: Path
) -> None:
    bad = write_plan(HEADER + "bogus: 1\n", "bad.yaml")
    good = project_root / "plans" / "m31-m42-lrgb.yaml"
    code, out = run_validate(str(good), str(bad))
    assert code == 1
    assert all("bad.yaml:4:1: error: unknown key 'bogus'" in ln for ln in lines_of(out))


def test_usage_errors_exit_2() -> None:
    code, _ = run_validate()
    assert code == 2
    code, _ = run_validate("--format", "xml", "x.yaml")
    assert code == 2
