"""For cron and systemd users: the crontab line, and ``run --start-at`` waiting for the start.

The crontab line fires every afternoon (after local noon, so "tonight" is unambiguous) and
starts ``nightrunner run PLAN --start-at SPEC``, which computes tonight's start at the
plan's site and sleeps until it. The same rules as the hub's scheduler apply
(:func:`runner.schedule.when.late_ok`): a start found already past runs at once while it is
still dark and within the grace, never in daylight; a night without the twilight (69°N in
June) is "no night tonight", exit 0; an unfinished run of this plan begun this same night
resumes (so ``Restart=on-failure`` under systemd continues the night, never restarts it).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runner.plan.models import Site
from runner.schedule.store import DEFAULT_GRACE_S
from runner.schedule.when import StartSpec, late_ok, parse_at

#: Minute and hour (machine time) at which the crontab line starts the waiting run.
CRON_MINUTE, CRON_HOUR = 5, 12


@dataclass(frozen=True)
class StartDecision:
    start: bool
    resume: bool
    message: str
    when: datetime | None = None


def nightrunner_command() -> list[str]:
    """The absolute command that runs this Nightrunner (its console script if installed)."""
    script = Path(sys.executable).parent / "nightrunner"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from runner.entry import main; main()"]


def crontab_text(plan: Path, at: str, days: str | None, data_dir: Path,
                 log_file: Path | None = None) -> str:
    """Environment lines and the crontab line (everything absolute: cron has no cwd, a
    bare PATH and no site zone of its own)."""
    spec = parse_at(at, days)  # raises StartSpecError on a bad --at
    plan, data_dir = plan.resolve(), data_dir.resolve()
    log = (log_file or data_dir / "logs" / "nightrunner.log").resolve()
    cmd = [*nightrunner_command(), "run", str(plan)]
    if spec.kind == "cron":
        when = spec.text  # cron itself keeps the time; the run starts at once
        dow = "*"
    else:
        cmd += ["--start-at", spec.text]
        when = f"{CRON_MINUTE} {CRON_HOUR} * *"
        dow = ",".join(str((d + 1) % 7) for d in spec.days) if spec.days else "*"
        when = f"{when} {dow}"
    cmd += ["--data-dir", str(data_dir), "--log-file", str(log), "--progress", "plain"]
    path = os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), "/usr/local/bin",
                                          "/usr/bin", "/bin"]))
    env = [f"PATH={path}"]
    if os.environ.get("PYTHONPATH"):
        env.append(f"PYTHONPATH={os.environ['PYTHONPATH']}")
    line = f"{when} {shlex.join(cmd)}"
    return "\n".join([
        f"# nightrunner: {plan.name} --at {spec.text} (add with `crontab -e`; output in {log})",
        *env, line]) + "\n"


def decide_start(spec: StartSpec, site: Site, data_dir: Path, plan: Path, now: datetime,
                 grace_s: float = DEFAULT_GRACE_S) -> StartDecision:
    """What ``run --start-at`` does tonight: wait for ``when``, start now, or not at all."""
    from runner.schedule.loop import tonight_unfinished
    from runner.schedule.store import NightTrigger
    from runner.schedule.when import still_dark
    from runner.sky.timeutil import night_of, site_timezone

    trig = NightTrigger(spec.text, None, site.model_dump())
    unfinished = tonight_unfinished(data_dir, plan, now, trig)
    if unfinished is not None:
        if still_dark(spec, site, now):
            return StartDecision(True, True, f"resuming tonight's run {unfinished.name}")
        return StartDecision(False, False, f"tonight's run {unfinished.name} is unfinished "
                             "but the night is over (daylight): not resumed")
    tonight = night_of(now, site_timezone(site))
    s = spec.start_for(site, tonight)
    if s.when is None:
        return StartDecision(False, False, s.reason)
    if s.when > now:
        return StartDecision(True, False, f"waiting until {s.when.isoformat()}", s.when)
    why = late_ok(spec, site, s.when, now, grace_s)
    if why is not None:
        return StartDecision(False, False, f"tonight's start {s.when.isoformat()} {why}")
    return StartDecision(True, False, f"starting late (due {s.when.isoformat()})", s.when)


def wait_until(when: datetime) -> None:
    """Sleep in the real world until ``when`` (in steps, so a suspended laptop or a changed
    system clock is caught up with)."""
    while True:
        left = (when - datetime.now(UTC)).total_seconds()
        if left <= 0:
            return
        time.sleep(min(left, 60.0))
