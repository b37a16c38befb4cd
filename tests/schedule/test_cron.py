"""Cron users: the printed crontab line parses as cron, and its command waits until
tonight's start, runs the night and writes everything to its log file; a night without a
twilight starts nothing."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from runner.plan.models import Site
from runner.schedule.cron import decide_start
from runner.schedule.when import parse_at
from tests.schedule.schedkit import write_plan

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _nightrunner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from runner.entry import main; main()",
                           *args], capture_output=True, text=True, env=ENV, timeout=300)


def test_the_crontab_line_parses_and_its_command_waits_for_the_start(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, frames=2, exposure=5)
    data = tmp_path / "data"
    printed = _nightrunner("cron", str(plan), "--at", "dusk", "--days", "mon-fri",
                           "--data-dir", str(data))
    assert printed.returncode == 0, printed.stderr
    lines = [x for x in printed.stdout.splitlines() if x and not x.startswith("#")]
    env = dict(x.split("=", 1) for x in lines[:-1])
    assert Path(env["PATH"].split(":")[0]).is_absolute()
    fields = lines[-1].split(maxsplit=5)
    trigger = CronTrigger.from_crontab(" ".join(fields[:5]).replace("1,2,3,4,5", "mon-fri"),
                                       timezone=UTC)
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 28, 0, 0, tzinfo=UTC))  # a Sat
    assert fire is not None and fire.hour >= 12 and fire.weekday() == 0  # Monday afternoon
    assert fields[4] == "1,2,3,4,5"  # crontab's Monday..Friday
    argv = shlex.split(fields[5])
    assert Path(argv[0]).is_absolute() and argv[0].endswith("nightrunner")
    assert argv[1:5] == ["run", str(plan.resolve()), "--start-at", "dusk"]
    log = Path(argv[argv.index("--log-file") + 1])
    assert log.is_absolute() and Path(argv[argv.index("--data-dir") + 1]) == data.resolve()
    # run the command as cron would, with tonight's start a few seconds away
    soon = (datetime.now(ZoneInfo("Europe/Amsterdam")) + timedelta(seconds=4))
    argv[argv.index("--start-at") + 1] = soon.strftime("%H:%M:%S")
    cmd = [sys.executable, "-c", "from runner.entry import main; main()", *argv[1:],
           "--speed", "50", "--no-rpc"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**ENV, **env},
                          timeout=300)
    assert done.returncode == 0, log.read_text() if log.exists() else done.stderr
    assert done.stdout == "" and done.stderr == ""  # all of it went to the log file
    text = log.read_text()
    assert f"--start-at {soon:%H:%M:%S}: waiting until " in text
    assert "completed: 2 light frames" in text
    [run_dir] = (data / "runs").iterdir()
    first = (run_dir / "events.jsonl").read_text().splitlines()[0]
    began = datetime.fromisoformat(first.split('"clock": "')[1].split('"')[0])
    assert began >= soon.replace(microsecond=0)


def test_no_night_tonight_starts_nothing_and_a_late_start_needs_the_dark(
        tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    tromso = Site(latitude=69.65, longitude=18.96, timezone="Europe/Oslo")
    june = datetime(2026, 6, 21, 14, 0, tzinfo=ZoneInfo("Europe/Oslo"))
    d = decide_start(parse_at("dusk"), tromso, tmp_path / "data", plan, june)
    assert not d.start and d.message.startswith("no night tonight")
    ams = Site(latitude=52.37, longitude=4.89, timezone="Europe/Amsterdam")
    tz = ZoneInfo("Europe/Amsterdam")
    afternoon = decide_start(parse_at("dusk"), ams, tmp_path / "data", plan,
                             datetime(2026, 11, 25, 12, 5, tzinfo=tz))
    assert afternoon.start and afternoon.when is not None and afternoon.when.hour == 18
    late = decide_start(parse_at("dusk"), ams, tmp_path / "data", plan,
                        datetime(2026, 11, 25, 23, 0, tzinfo=tz))
    assert late.start and late.message.startswith("starting late")
    morning = decide_start(parse_at("21:00"), ams, tmp_path / "data", plan,
                           datetime(2026, 11, 26, 11, 0, tzinfo=tz))
    assert not morning.start and "grace" in morning.message
