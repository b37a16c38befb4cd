"""The scheduler inside ``nightrunner serve``: starts each scheduled night at its time.

The jobs and their next start times live in APScheduler's SQLite job store
(:mod:`runner.schedule.store`); this loop reads them on the *engine clock*, so a simulated
week at ``--speed 5000`` starts every night at its dusk exactly as the real clock would.
(APScheduler's own scheduler loop reads the wall clock, which a simulated night cannot
follow.) The rules, in one place:

* **Coalescing**: starts missed while the hub was down run once, as the latest of them.
* **Misfire grace**: a missed start runs late only within the job's grace *and* while the
  Sun is still below the start's altitude — a reboot at 21:05 starts the 21:00 night,
  a reboot at 06:00 starts nothing in daylight (``runner.schedule.when.late_ok``).
* **Never twice**: the job's next start is stored before its night begins; a night already
  running refuses the start (and the data-directory lock refuses a second process).
* **Back after a reboot**: when the hub starts, an unfinished run of a scheduled plan that
  began this same night resumes from its journal (``--resume``), while it is still dark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from runner.clock import Clock
from runner.schedule.store import NightTrigger, ScheduleStore
from runner.schedule.when import still_dark

log = logging.getLogger("nightrunner.schedule")

DECISIONS_FILENAME = "schedule.jsonl"
#: The loop looks at the job store at least this often (real seconds): a job added with
#: ``nightrunner schedule add`` while the hub runs is seen within it.
POLL_REAL_S = 5.0


async def sleep_until(clock: Clock, when: datetime, *, cap_real: float = POLL_REAL_S) -> bool:
    """Sleep on the engine clock until ``when`` (True) or at most ``cap_real`` real seconds
    (False). The last 20 ms are polled, so a start on the real clock lands within a few
    microseconds of its time; on a simulated clock the loop's alarm (``hold_at``) stops time
    at ``when`` itself, so a late wake-up costs no clock time."""
    end_real = time.monotonic() + cap_real
    while True:
        left = (when - clock.now()).total_seconds()
        if left <= 0:
            return True
        real = clock.to_real(left)
        if time.monotonic() + real > end_real:
            await asyncio.sleep(max(0.0, end_real - time.monotonic()))
            return False
        await asyncio.sleep(real - 0.02 if real > 0.03 else 0)


@dataclass
class NightControl:
    """What the scheduler needs from the hub."""

    start_night: Callable[[Path, bool], Awaitable[Any]]
    night_active: Callable[[], bool]
    running_plan: Callable[[], str | None]
    abort_night: Callable[[str], None]
    #: a night started and still being set up (its Run holds the clock until it begins)
    night_starting: Callable[[], bool] = lambda: False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


async def start_scheduled(plan: str, until_dawn: bool = False, **context: Any) -> bool:
    """The job's function (the store's textual reference, called with the job's kwargs):
    start ``plan``'s night of ``context['planned']`` through ``context['scheduler']``."""
    sched: NightScheduler = context["scheduler"]
    return await sched.start_job(context["job"], context["planned"], context["now"])


class NightScheduler:
    def __init__(self, data_dir: Path, clock: Clock, control: NightControl) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.control = control
        self.store = ScheduleStore(data_dir)
        self.decisions = data_dir / DECISIONS_FILENAME

    def note(self, job_id: str, action: str, **fields: Any) -> None:
        """One decision, to stdout (the hub's log) and ``schedule.jsonl`` (the record)."""
        entry = {"clock": self.clock.now().isoformat(), "job": job_id, "action": action,
                 **{k: (v.isoformat() if isinstance(v, datetime) else v)
                    for k, v in fields.items()}}
        words = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("clock", "job"))
        print(f"schedule: {job_id}: {words}", flush=True)
        with contextlib.suppress(OSError), self.decisions.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")

    async def run(self) -> None:
        """Until cancelled. Simulated time stops at each job's start (an alarm on the clock:
        however late the loop wakes, the clock reads the start itself) and stands still while
        the loop looks at its jobs and sets the night up, until the night's Run releases it
        as the night begins: a start is made at the very instant it was due, even at 5000x."""
        try:
            _hold(self.clock)
            if not await self.resume_tonight():
                _release(self.clock)
            while True:
                _hold(self.clock)
                started = False
                try:
                    now = self.clock.now()
                    for job in await asyncio.to_thread(self.store.due, now):
                        started = await self.fire(job, now) or started
                    nxt = await asyncio.to_thread(self.store.next_run_time)
                finally:
                    # a night being set up keeps the clock held until its Run releases it
                    # as the night begins (releasing it here would let set-up time run on
                    # the simulated clock: at 5000x, tens of seconds late from dusk)
                    if not started and not self.control.night_starting():
                        _release(self.clock)
                    _hold_at(self.clock, nxt)
                await sleep_until(self.clock, nxt or now + timedelta(days=1))
        finally:
            # a scheduler that goes leaves time flowing (a rung alarm would hold it for good,
            # and a night's shutdown waits on clock time), unless a night is being set up
            _hold_at(self.clock, None)
            if not self.control.night_starting():
                _release(self.clock)
            for t in list(self.control.tasks):
                t.cancel()
            self.store.close()

    async def fire(self, job: Any, now: datetime) -> bool:
        """A due job: coalesce its missed starts, store the next one, then start (or not).
        True when a night started."""
        run_times = job._get_run_times(now)
        if not run_times:
            return False
        planned = run_times[-1] if job.coalesce else run_times[0]
        nxt = job.trigger.get_next_fire_time(planned, now)
        await asyncio.to_thread(self.store.advance, job, nxt)
        if len(run_times) > 1:
            self.note(job.id, "coalesced", missed=len(run_times), kept=planned)
        started: bool = await job.func(**job.kwargs, scheduler=self, job=job, planned=planned,
                                       now=now)
        self.note(job.id, "next", next_start=nxt)
        return started

    async def start_job(self, job: Any, planned: datetime, now: datetime) -> bool:
        trig: NightTrigger = job.trigger
        why = _late_reason(trig, planned, now, float(job.misfire_grace_time or 0))
        if why is not None:
            self.note(job.id, "skipped", planned=planned, reason=why)
            return False
        if self.control.night_active():
            self.note(job.id, "refused", planned=planned,
                      reason=f"night {self.control.running_plan()!r} is running "
                      "(`nightrunner status`)")
            return False
        plan = Path(job.kwargs["plan"])
        resume = await asyncio.to_thread(tonight_unfinished, self.data_dir, plan, now, trig)
        try:
            await self.control.start_night(plan, resume is not None)
        except Exception as exc:  # an invalid plan, a lock held by a cron run: logged, next night
            self.note(job.id, "failed", planned=planned, reason=str(exc))
            return False
        self.note(job.id, "resumed" if resume else "started", planned=planned,
                  late_s=round((now - planned).total_seconds(), 3), plan=str(plan))
        if job.kwargs.get("until_dawn"):
            self._stop_at_dawn(job, planned)
        return True

    async def resume_tonight(self) -> bool:
        """After a crash or reboot mid-night: resume tonight's unfinished scheduled run.
        True when a night started."""
        now = self.clock.now()
        for job in await asyncio.to_thread(self.store.raw_jobs):
            trig: NightTrigger = job.trigger
            plan = Path(job.kwargs["plan"])
            run_dir = await asyncio.to_thread(tonight_unfinished, self.data_dir, plan, now, trig)
            if run_dir is None or self.control.night_active():
                continue
            if not still_dark(trig.spec, trig.site, now):
                self.note(job.id, "not_resumed", run=run_dir.name,
                          reason="the night it belongs to is over (daylight)")
                continue
            try:
                await self.control.start_night(plan, True)
            except Exception as exc:
                self.note(job.id, "failed", run=run_dir.name, reason=str(exc))
                continue
            self.note(job.id, "resumed", run=run_dir.name, plan=str(plan))
            if job.kwargs.get("until_dawn"):
                self._stop_at_dawn(job, now)
            return True
        return False

    def _stop_at_dawn(self, job: Any, planned: datetime) -> None:
        from runner.schedule.when import dawn_after

        trig: NightTrigger = job.trigger
        dawn = dawn_after(trig.spec, trig.site, planned)
        if dawn is None:
            return

        async def stop() -> None:
            await _sleep_until_forever(self.clock, dawn)
            if self.control.night_active():
                self.note(job.id, "dawn", reason="--until-dawn: stopping the night")
                self.control.abort_night("dawn reached (--until-dawn)")

        task = asyncio.create_task(stop())
        self.control.tasks.add(task)
        task.add_done_callback(self.control.tasks.discard)


def _hold(clock: Clock) -> None:
    hold = getattr(clock, "hold", None)
    if hold is not None:
        hold()


def _hold_at(clock: Clock, when: datetime | None) -> None:
    hold_at = getattr(clock, "hold_at", None)
    if hold_at is not None:
        hold_at(when)


def _release(clock: Clock) -> None:
    release = getattr(clock, "release", None)
    if release is not None:
        release()


async def _sleep_until_forever(clock: Clock, when: datetime) -> None:
    while not await sleep_until(clock, when, cap_real=3600.0):
        pass


def _late_reason(trig: NightTrigger, planned: datetime, now: datetime,
                 grace_s: float) -> str | None:
    from runner.schedule.when import late_ok

    return late_ok(trig.spec, trig.site, planned, now, grace_s)


def tonight_unfinished(data_dir: Path, plan: Path, now: datetime,
                       trig: NightTrigger) -> Path | None:
    """The latest run of this plan text, when it is unfinished and began this night."""
    from runner.engine.journal import plan_digest
    from runner.engine.run_dirs import find_resumable
    from runner.sky.timeutil import night_of, site_timezone

    try:
        digest = plan_digest(plan.read_bytes())
    except OSError:
        return None
    run_dir = find_resumable(data_dir / "runs", digest)
    if run_dir is None:
        return None
    began = first_clock(run_dir)
    tz = site_timezone(trig.site)
    if began is None or night_of(began, tz) != night_of(now, tz):
        return None
    return run_dir


def first_clock(run_dir: Path) -> datetime | None:
    """The engine-clock instant of a run's first event (when its night began)."""
    try:
        with (run_dir / "events.jsonl").open(encoding="utf-8") as f:
            first = json.loads(f.readline())
        return datetime.fromisoformat(first["clock"])
    except (OSError, ValueError, KeyError):
        return None
