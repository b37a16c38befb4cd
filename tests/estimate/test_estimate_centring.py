"""The estimate counts plate-solved centring: nominal devices cannot solve, so one attempt —
its exposure, the download and NOMINAL_SOLVE_S — is charged, and solve-field never runs."""

from __future__ import annotations

import shutil

import pytest
from estplans import DOWNLOAD, SIM, make_plan, run, seconds, target

from runner.engine.exec_centre import NOMINAL_SOLVE_S


def _night(slew: dict[str, object]) -> float:
    seq = [{"slew": slew}, {"expose": {"count": 2, "exposure": 30}}]
    t = run(make_plan([target(sequence=seq)]), SIM).targets[0]
    return seconds(t.start, t.end)


def test_centring_costs_one_attempt_in_the_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    # were solve-field called, it would not be found
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    plain = _night({})
    centred = _night({"center": {"exposure": 10, "attempts": 5}})
    assert centred - plain == pytest.approx(10 + DOWNLOAD + NOMINAL_SOLVE_S)
    assert _night({"center": True}) - plain == pytest.approx(5 + DOWNLOAD + NOMINAL_SOLVE_S)
