"""Helpers to run plans in-process on small, fast simulators."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.engine.journal import Journal
from runner.engine.run import Run, RunOptions, RunResult
from runner.plan.loader import load_plan

#: A winter evening at the demo site: NGC 188 is high, the Sun well down.
EVENING = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)

EQUIPMENT = """\
name: test-rig
camera: {{backend: simulator, width: 320, height: 240, download_time: 1}}
filter_wheel:
  backend: simulator
  change_time: 2
  filters: [{{name: L}}, {{name: R, focus_offset: 30}}, {{name: G}}, {{name: B}}]
focuser: {{backend: simulator, backlash: 20, step_size: 150}}
mount: {{backend: simulator, slew_rate: 5, settle_time: 2}}
safety: {{backend: simulator}}
{guider}
simulation:
  seed: 7
  stars: 120
  faults: {faults}
"""

PLAN_HEAD = """\
version: 1
name: {name}
site: {{latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}}
equipment: eq.yaml
"""

CLUSTER = '{ra: "00:48:26", dec: "+85:14:42"}'


@dataclass
class Rig:
    dir: Path
    data: Path

    def write(self, plan_body: str, *, name: str = "test plan", guider: bool = False,
              faults: str = "[]", shutdown: str = "") -> Path:
        guider_text = "guider: {backend: simulator, exposure: 1, pixel_scale: 2.5}" if guider \
            else ""
        (self.dir / "eq.yaml").write_text(EQUIPMENT.format(guider=guider_text, faults=faults))
        plan = self.dir / "plan.yaml"
        plan.write_text(PLAN_HEAD.format(name=name) + textwrap.dedent(plan_body) + shutdown)
        return plan

    def make_run(self, plan: Path, *, speed: float = 200.0, resume: bool = False,
                 start: datetime = EVENING) -> Run:
        result = load_plan(plan)
        assert result.ok, [d.format() for d in result.diagnostics]
        assert result.plan is not None and result.equipment is not None
        opts = RunOptions(data_dir=self.data, speed=speed, resume=resume, start=start,
                          progress="none", plan_text=plan.read_bytes(), plan_path=plan)
        return Run(result.plan, result.equipment, opts)

    def run(self, plan: Path, **kw: Any) -> RunResult:
        return asyncio.run(self.make_run(plan, **kw).execute())

    def events(self, result: RunResult) -> list[dict[str, Any]]:
        lines = (result.run_dir / "events.jsonl").read_text().splitlines()
        return [json.loads(x) for x in lines]

    def fits(self) -> list[Path]:
        return sorted(p for p in self.data.rglob("*.fits") if "stacked" not in p.parts)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, tmp_path / "data")


def names(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


RunFactory = Callable[..., RunResult]


def journalled_frames(journals: Iterable[Path]) -> dict[str, str]:
    """The journals' final word: frame key → path (a lost frame forgotten); asserts that no
    path stands for two frames."""
    frames: dict[str, str] = {}
    for journal in journals:
        for e in Journal.read(journal):
            if e["type"] == "frame":
                frames[e["key"]] = e["path"]
            elif e["type"] == "frame_lost":
                frames.pop(e["key"], None)
    paths = Counter(frames.values())
    assert all(n == 1 for n in paths.values()), paths
    return frames
