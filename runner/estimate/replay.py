"""The night on the virtual clock: the executor itself, on nominal devices.

``nightrunner estimate``, ``run --dry-run`` and the mid-night ETA all come from here, so there
is one set of rules (the executor's) and the estimate cannot drift from the night. A night of
hours runs in the time its bookkeeping takes (:class:`runner.clock.VirtualLoop`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from runner.clock import VIRTUAL_HORIZON_S, VirtualClock, run_virtual
from runner.devices.sim.nominal import BusyLog, NominalRig
from runner.engine.compiler import FilterLoop, Leaf, Loop, Node, Program, compile_plan
from runner.engine.events import EventBus
from runner.engine.executor import Executor, FatalRunError
from runner.engine.journal import Journal, ResumeState
from runner.engine.run_services import nominal_services
from runner.errors import NightrunnerError
from runner.plan.equipment import Equipment
from runner.plan.models import Plan, Step, Target


class _NoJournal(Journal):
    """A virtual night records nothing on disk."""

    def __init__(self) -> None:
        self.path = Path("(virtual)")

    def record(self, kind: str, *, durable: bool = True, **fields: Any) -> None:
        return None

    def close(self) -> None:
        return None


class _NoFrames:
    def __init__(self) -> None:
        self.count = 0

    def allocate(self, frame: Any, meta: dict[str, Any]) -> Path:
        self.count += 1
        return Path(f"(virtual)/{self.count}")

    async def save(self, frame: Any, meta: dict[str, Any], path: Path | None = None) -> Path:
        return path or self.allocate(frame, meta)


@dataclass
class Replay:
    """What the executor did: its events (each with ``t``, clock seconds from the start), when
    each nominal device was busy, and how the night ended."""

    start: datetime
    events: list[dict[str, Any]] = field(default_factory=list)
    busy: BusyLog = field(default_factory=BusyLog)
    outcome: str = "completed"
    fatal: str | None = None
    horizon_hit: bool = False
    steps: dict[str, Step] = field(default_factory=dict)
    end: float = 0.0


def leaf_steps(program: Program) -> dict[str, Step]:
    """Compiled step id → the plan step (the estimate reads a failed step's arguments)."""
    out: dict[str, Step] = {}
    todo: list[Node] = [*program.startup, *program.shutdown]
    for ct in program.targets:
        todo.extend(ct.body)
    while todo:
        node = todo.pop()
        if isinstance(node, Leaf):
            out[node.id] = node.step  # type: ignore[assignment]
        elif isinstance(node, Loop | FilterLoop):
            todo.extend(node.body)
    return out


def replay(
    plan: Plan,
    equipment: Equipment,
    start: datetime,
    visibility: Callable[[Target], Any],
    tz: tzinfo,
    *,
    horizon: float = VIRTUAL_HORIZON_S,
    resume: ResumeState | None = None,
    listener: Callable[[dict[str, Any]], None] | None = None,
    frames: Any = None,
    prepare: Callable[[NominalRig, Any], None] | None = None,
) -> Replay:
    """Run ``plan`` on nominal devices on a virtual clock from ``start``; ``horizon`` clock
    seconds bound the night before the shutdown (a loop that never ends), and again the
    shutdown. ``resume`` starts from a run's current state (the mid-night ETA).

    For tests of what the night does: ``frames`` replaces the store that keeps nothing, and
    ``prepare(rig, services)`` may change the connected rig and the services before the
    executor is built."""

    async def night(clock: VirtualClock) -> Replay:
        return await _night(plan, equipment, clock, visibility, tz, horizon, resume, listener,
                            frames, prepare)

    result: Replay = run_virtual(night, start)
    return result


async def _night(
    plan: Plan, equipment: Equipment, clock: VirtualClock, visibility: Callable[[Target], Any],
    tz: tzinfo, horizon: float, resume: ResumeState | None,
    listener: Callable[[dict[str, Any]], None] | None, frames: Any,
    prepare: Callable[[NominalRig, Any], None] | None,
) -> Replay:
    program = compile_plan(plan, equipment)
    out = Replay(start=clock.now(), steps=leaf_steps(program))
    # events carry ``t`` (clock seconds) instead of an ISO clock string, and no wall time
    bus = EventBus(wall_time=False)

    def record(ev: dict[str, Any]) -> None:
        ev["t"] = clock.monotonic()
        out.events.append(ev)

    bus.subscribe(record)
    if listener is not None:
        bus.subscribe(listener)
    rig = NominalRig.build(equipment, clock, plan.site.latitude, plan.site.longitude)
    out.busy = rig.log
    await rig.connect()
    services = nominal_services(rig, equipment, clock, visibility, tz,
                                frames if frames is not None else _NoFrames())
    if prepare is not None:
        prepare(rig, services)
    ex = Executor(program, services, bus, _NoJournal(), resume)
    try:
        async with asyncio.timeout(horizon):
            await ex.run_night()
    except TimeoutError:
        out.horizon_hit = True
        out.outcome = "failed"
    except FatalRunError as exc:
        ex._error(f"fatal: {exc}")
        out.fatal = str(exc)
        out.outcome = "failed"
    except NightrunnerError as exc:  # an engine error ends the night like a fatal one
        ex._error(f"fatal: {exc}")
        out.fatal = str(exc)
        out.outcome = "failed"
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(horizon):
            await ex.run_shutdown()
    await ex.writer.drain_quietly()
    out.end = clock.monotonic()
    return out
