"""``slew: {center: ...}``: `true` means the defaults, a mapping sets them, and every wrong
value is reported at its own FILE:LINE:COL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.plan.loader import load_plan
from runner.plan.models import CenterArgs, SlewStep

PLAN = """\
version: 1
name: centre
site: {{latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}}
targets:
  - name: M31
    coordinates: {{ra: "00:42:44.3", dec: "+41:16:09"}}
    sequence:
      - slew:
          center: {center}
"""


def _slew(write_plan: Callable[..., Path], center: str) -> SlewStep:
    result = load_plan(write_plan(PLAN.format(center=center)))
    assert result.ok, [d.format() for d in result.diagnostics]
    assert result.plan is not None
    step = result.plan.targets[0].sequence[0]
    assert isinstance(step, SlewStep)
    return step


def test_center_true_means_the_documented_defaults(write_plan: Callable[..., Path]) -> None:
    c = _slew(write_plan, "true").slew.center
    assert c == CenterArgs()
    assert (c.tolerance, c.attempts, c.exposure, c.solve_timeout) == (30.0, 5, 5.0, 30.0)


def test_center_false_is_a_plain_slew(write_plan: Callable[..., Path]) -> None:
    assert _slew(write_plan, "false").slew.center is None


def test_center_options_are_taken_as_written(write_plan: Callable[..., Path]) -> None:
    c = _slew(write_plan, "{tolerance: 15, attempts: 3, exposure: 2.5, solve_timeout: 1 min}"
              ).slew.center
    assert c is not None
    assert (c.tolerance, c.attempts, c.exposure, c.solve_timeout) == (15.0, 3, 2.5, 60.0)


@pytest.mark.parametrize(
    ("center", "at", "message"),
    [
        ("{tolerance: 0}", "0}", "must be > 0"),
        ("{attempts: 0}", "0}", "must be ≥ 1"),
        ("{exposure: 0}", "0}", "must be more than 0 s"),
        ("{solve_timeout: -1}", "-1}", "cannot be negative"),
        ("{tolerence: 30}", "tolerence", "tolerence"),
    ],
)
def test_a_wrong_center_option_is_reported_at_its_line_and_column(
    write_plan: Callable[..., Path], center: str, at: str, message: str
) -> None:
    path = write_plan(PLAN.format(center=center))
    line = path.read_text().splitlines()[8]
    diags = [d.format() for d in load_plan(path).diagnostics]
    assert len(diags) == 1, diags  # reported once, not also as "not a boolean"
    assert diags[0].startswith(f"{path}:9:{line.index(at) + 1}: error: "), diags
    assert message in diags[0], diags


@pytest.mark.parametrize(("sky", "warned"), [("synthetic", True), ("catalogue", False)])
def test_centring_on_the_synthetic_sky_is_warned_about(
    write_plan: Callable[..., Path], sky: str, warned: bool
) -> None:
    write_plan(f"name: sim\nmount: {{backend: simulator}}\nsimulation: {{sky: {sky}}}\n",
               "eq.yaml")
    path = write_plan(PLAN.format(center="true").replace(
        "targets:", "equipment: eq.yaml\ntargets:"))
    result = load_plan(path)
    assert result.ok, [d.format() for d in result.diagnostics]
    warnings = [d.format() for d in result.diagnostics if "synthetic sky" in d.format()]
    assert bool(warnings) is warned, warnings
    if warned:  # at the option, in the plan
        assert warnings[0].startswith(f"{path}:10:") and ": warning: " in warnings[0]
