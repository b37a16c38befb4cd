"""The mid-night re-estimate: when will the current target, and the night, end?

The same machinery as ``nightrunner estimate`` (the executor on nominal devices, on a virtual
clock), started from the run's current state: frames already taken are skipped the way
``--resume`` skips them, targets already behind the night are done, and the trigger counters
carry over. The startup is replayed (a virtual rig starts cold) and its time left out.
Like the estimate it cannot know retries, errors or an HFR-triggered autofocus; the exposure in
progress is counted whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from runner.engine.journal import ResumeState
from runner.estimate.replay import replay

log = logging.getLogger("nightrunner.eta")


@dataclass(frozen=True)
class Eta:
    target: datetime | None  # when the current target ends (None: no target running)
    night: datetime  # when the shutdown has finished


def eta_of(run: Any) -> Eta | None:
    """The ETA of ``run`` (a :class:`runner.engine.run.Run`) from now; None before its
    executor exists or once the shutdown began. Blocking: call it in a thread."""
    ex = run.executor
    if ex is None or ex.model.state.startswith("shutdown") or ex.s.visibility is None:
        return None
    current = ex.target
    program = run.program
    done = {ct.id for ct in program.targets
            if current is not None and ct.index < current.index} | set(ex.resume.targets_done)
    state = dict(ex.state.to_dict())
    state["focus_time"] = None  # a clock reading of the real night: restart the minutes
    resume = ResumeState(run_id="eta", frames=dict(ex.done_frames), lights=set(ex.light_keys),
                         iterations=set(ex.resume.iterations), targets_done=done,
                         trigger_state=state)
    now: datetime = run.clock.now()
    rp = replay(run.plan, run.equipment, now, ex.s.visibility, ex.s.site_tz, resume=resume)
    began = next((float(e["t"]) for e in rp.events if e["event"] == "startup_done"), 0.0)

    def at(t: float) -> datetime:
        return now + timedelta(seconds=max(0.0, t - began))

    target_end = None
    if current is not None:
        target_end = next((at(float(e["t"])) for e in rp.events if e["event"] == "target_end"
                           and e.get("target") == current.target.name), None)
    return Eta(target_end, at(rp.end))


class EtaCache:
    """Re-estimates in the background, one at a time, after a frame was taken or the target
    changed and at most every ``every`` real seconds; a status request is answered from the
    last one at once (None until the first is ready)."""

    def __init__(self, every: float = 30.0) -> None:
        self.every = every
        self._key: tuple[Any, ...] | None = None
        self._value: tuple[int, Eta | None] = (0, None)  # (id of the run, its ETA)
        self._task: asyncio.Task[None] | None = None
        self._last = -1e9

    def get(self, run: Any) -> Eta | None:
        ex = run.executor
        if ex is None:
            return None
        key = (id(run), len(ex.done_frames), ex.target.index if ex.target else None,
               ex.model.state.split(":")[0])
        other_night = self._key is None or key[0] != self._key[0]
        fresh = not other_night and time.monotonic() - self._last < self.every
        if key != self._key and not fresh and (self._task is None or self._task.done()):
            self._key = key
            self._last = time.monotonic()
            self._task = asyncio.create_task(self._compute(run))
        owner, value = self._value
        return value if owner == id(run) else None

    async def _compute(self, run: Any) -> None:
        try:
            self._value = (id(run), await asyncio.to_thread(eta_of, run))
        except Exception as exc:  # an ETA that cannot be computed never breaks status
            log.warning("eta not computed: %s", exc)
