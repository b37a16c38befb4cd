"""`nightrunner schedule add | list | next | remove` as a user types them: the job's next
starts are the plan site's dusks, a duplicate or an unknown id is a one-line error."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from runner.cli import app
from runner.plan.models import Site
from runner.schedule.when import parse_at
from runner.sky.timeutil import night_of, site_timezone
from tests.schedule.schedkit import write_plan

SITE = Site(latitude=52.37, longitude=4.89, timezone="Europe/Amsterdam")


def test_add_list_next_remove(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    data = str(tmp_path / "data")
    cli = CliRunner()
    added = cli.invoke(app, ["schedule", "add", str(plan), "--at", "dusk+30m",
                             "--data-dir", data])
    assert added.exit_code == 0, added.output
    assert added.output.startswith("scheduled nightly-dusk-30m: ")
    again = cli.invoke(app, ["schedule", "add", str(plan), "--at", "dusk+30m",
                             "--data-dir", data])
    assert again.exit_code == 1 and "already scheduled --at 'dusk+30m'" in again.output
    shown = cli.invoke(app, ["schedule", "list", "--nights", "3", "--data-dir", data])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith(f"nightly-dusk-30m: {plan.resolve()} --at dusk+30m")
    # the next three nights, each at astronomical dusk + 30 min at the plan's site
    tz = site_timezone(SITE)
    expected = parse_at("dusk+30m").starts(SITE, night_of(datetime.now(UTC), tz), 3)
    nights = [x.strip() for x in lines[1:]]
    assert len(nights) == 3
    for line, start in zip(nights, expected, strict=True):
        assert start.when is not None
        assert line.startswith(f"night of {start.night}: ")
        assert start.when.astimezone(tz).strftime("%H:%M") in line
    nxt = cli.invoke(app, ["schedule", "next", "--data-dir", data])
    assert nxt.exit_code == 0 and re.search(r"\(in \d+ h \d\d min\)", nxt.output), nxt.output
    gone = cli.invoke(app, ["schedule", "remove", "nightly-dusk-30m", "--data-dir", data])
    assert gone.exit_code == 0 and gone.output.strip() == "removed nightly-dusk-30m"
    unknown = cli.invoke(app, ["schedule", "remove", "nightly-dusk-30m", "--data-dir", data])
    assert unknown.exit_code == 1
    assert "no scheduled night 'nightly-dusk-30m' (scheduled: none)" in unknown.output
    empty = cli.invoke(app, ["schedule", "next", "--data-dir", data])
    assert empty.exit_code == 1 and "nothing scheduled" in empty.output
