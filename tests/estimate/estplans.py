"""Plans and the simulator rig for the estimate tests; one night, so the sky is computed once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from runner.estimate import Timeline, estimate
from runner.plan.equipment import Equipment
from runner.plan.models import Plan

ROOT = Path(__file__).resolve().parents[2]
AMS = ZoneInfo("Europe/Amsterdam")
SITE = {"latitude": 52.37, "longitude": 4.89, "elevation": 5, "timezone": "Europe/Amsterdam"}
#: An explicit start late in the evening: targets without constraints run at once.
START = datetime(2026, 11, 25, 22, 0, tzinfo=AMS)

with (ROOT / "runner/plan/profiles/simulator.yaml").open() as fh:
    SIM = Equipment.model_validate(yaml.safe_load(fh))
#: The simulator without a mount: no implicit slews, so arithmetic stays simple.
NO_MOUNT = SIM.model_copy(update={"mount": None})

#: Profile figures the tests recompute by hand.
DOWNLOAD = SIM.camera.download_time  # 1.5 s
CHANGE = 3.0  # filter_wheel.change_time
SETTLE = 8.0 + 3 * 2.0  # defaults.settle.time + 3 guide exposures of guider.exposure
#: One autofocus with default settings: 9 × (3 s + download + 10 s) + travel 2·8·150 + 50 steps
#: at 1000 steps/s.
AUTOFOCUS = 9 * (3.0 + DOWNLOAD + 10.0) + (2 * 8 * 150 + 50) / 1000.0


def target(
    name: str = "T",
    sequence: list[dict[str, Any]] | None = None,
    ra: float = 10.684708,
    dec: float = 41.26875,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "coordinates": {"ra": ra, "dec": dec},
        "sequence": sequence or [{"expose": {"count": 1, "exposure": 60}}],
        **extra,
    }


def make_plan(targets: list[dict[str, Any]], **extra: Any) -> Plan:
    return Plan.model_validate(
        {"version": 1, "name": "test", "site": SITE, "targets": targets, **extra}
    )


def run(plan: Plan, equipment: Equipment = NO_MOUNT, start: datetime | None = START) -> Timeline:
    return estimate(plan, equipment, start=start)


def seconds(a: datetime | None, b: datetime | None) -> float:
    assert a is not None and b is not None
    return (b - a).total_seconds()
