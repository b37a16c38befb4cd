"""The schedule: APScheduler jobs in an SQLite job store in the data directory.

``nightrunner schedule add`` writes a job whose trigger is a :class:`NightTrigger` (the
plan's start spec at the plan's site, recomputed every night); ``nightrunner serve`` reads
the same file and starts the nights (:mod:`runner.schedule.loop`). The file is the only
state: jobs survive a reboot, and each keeps the time of its next start, so a start missed
while the machine was off is known when it comes back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from runner.plan.models import Site
from runner.schedule.when import NightStart, StartSpec, parse_at

STORE_FILENAME = "schedule.sqlite"
#: A start missed by more than this is dropped (and never in daylight: see ``late_ok``).
DEFAULT_GRACE_S = 8 * 3600.0
_FUNC = "runner.schedule.loop:start_scheduled"


class ScheduleError(Exception):
    """A schedule operation that cannot be done (unknown id, duplicate, bad file)."""


class NightTrigger(BaseTrigger):  # type: ignore[misc]
    """APScheduler trigger: the start of each night at a site (pickled into the job store,
    so it keeps only plain values and parses them again)."""

    def __init__(self, at: str, days: str | None, site: dict[str, Any]) -> None:
        self.at = at
        self.days = days
        self.site_fields = dict(site)

    @property
    def spec(self) -> StartSpec:
        return parse_at(self.at, self.days)

    @property
    def site(self) -> Site:
        return Site(**self.site_fields)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is None:
            s = self.spec.next_start(self.site, now)
        else:
            s = self.spec.next_start(self.site, previous_fire_time, strictly=True)
        return None if s is None else s.when

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "at": self.at, "days": self.days, "site": self.site_fields}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.at, self.days, self.site_fields = state["at"], state["days"], state["site"]

    def __str__(self) -> str:
        return f"night[{self.at}{' ' + self.days if self.days else ''}]"


@dataclass(frozen=True)
class ScheduledNight:
    """One job of the schedule, as ``schedule list`` shows it."""

    id: str
    plan: Path
    at: str
    days: str | None
    until_dawn: bool
    grace_s: float
    site: Site
    next_run: datetime | None

    @property
    def spec(self) -> StartSpec:
        return parse_at(self.at, self.days)

    def upcoming(self, first_night: Any, nights: int) -> list[NightStart]:
        return self.spec.starts(self.site, first_night, nights)


class ScheduleStore:
    """The job store of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / STORE_FILENAME
        self._store = SQLAlchemyJobStore(url=f"sqlite:///{self.path.resolve()}")
        # jobs belong to a scheduler (for its time zone); this one is never started: the
        # hub's loop on the engine clock runs the jobs (runner.schedule.loop)
        self._owner = AsyncIOScheduler(timezone=UTC)
        self._store.start(self._owner, "default")

    def close(self) -> None:
        self._store.shutdown()

    # ------------------------------------------------------------------ jobs

    def add(self, plan: Path, at: str, *, days: str | None, until_dawn: bool, site: Site,
            now: datetime, grace_s: float = DEFAULT_GRACE_S) -> ScheduledNight:
        from apscheduler.job import Job
        from apscheduler.jobstores.base import ConflictingIdError

        spec = parse_at(at, days)  # raises StartSpecError before anything is stored
        plan = plan.resolve()
        job_id = _job_id(plan, spec)
        trigger = NightTrigger(at, days, site.model_dump())
        job = Job(self._owner, id=job_id, func=_FUNC, trigger=trigger, executor="default",
                  args=(), kwargs={"plan": str(plan), "until_dawn": until_dawn},
                  name=plan.name, misfire_grace_time=int(grace_s), coalesce=True,
                  max_instances=1, next_run_time=trigger.get_next_fire_time(None, now))
        try:
            self._store.add_job(job)
        except ConflictingIdError:
            raise ScheduleError(f"{plan.name} is already scheduled --at {at!r} (id {job_id}); "
                                "`nightrunner schedule remove` it first") from None
        return _view(job)

    def remove(self, job_id: str) -> None:
        from apscheduler.jobstores.base import JobLookupError

        try:
            self._store.remove_job(job_id)
        except JobLookupError:
            known = ", ".join(j.id for j in self.jobs()) or "none"
            raise ScheduleError(f"no scheduled night {job_id!r} (scheduled: {known})") from None

    def jobs(self) -> list[ScheduledNight]:
        return [_view(j) for j in self._store.get_all_jobs()]

    def raw_jobs(self) -> list[Any]:
        return list(self._store.get_all_jobs())

    def due(self, now: datetime) -> list[Any]:
        return list(self._store.get_due_jobs(now))

    def next_run_time(self) -> datetime | None:
        t: datetime | None = self._store.get_next_run_time()
        return t

    def advance(self, job: Any, next_run: datetime | None) -> None:
        """Record the job's next start before its night begins: a crash during the night can
        then never start the same night again (the journal resumes it instead)."""
        job._modify(next_run_time=next_run)
        self._store.update_job(job)


def _view(job: Any) -> ScheduledNight:
    trig: NightTrigger = job.trigger
    return ScheduledNight(
        id=job.id, plan=Path(job.kwargs["plan"]), at=trig.at, days=trig.days,
        until_dawn=bool(job.kwargs.get("until_dawn")), grace_s=float(job.misfire_grace_time),
        site=trig.site, next_run=job.next_run_time)


def _job_id(plan: Path, spec: StartSpec) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{plan.stem} {spec.text}".lower()).strip("-")
    return slug[:60] or "night"

