"""The night's page: report.html parses, every plot is a PNG that decodes, and the numbers
it shows are the journal's and the events'; `nightrunner report` redraws any past night."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from runner.cli import app
from tests.engine.conftest import CLUSTER, Rig


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, str] = {}
        self.cells: list[str] = []
        self._in_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images[a.get("id") or a.get("alt") or "?"] = a["src"] or ""
        self._in_td = tag == "td"

    def handle_data(self, data: str) -> None:
        if self._in_td:
            self.cells.append(data)


def test_the_report_page_shows_the_night_the_journal_recorded(tmp_path: Path) -> None:
    rig = Rig(tmp_path, tmp_path / "data")
    plan = rig.write(f"""\
        startup:
          - cool: {{to: -5, rate: 10}}
        triggers:
          - dither: {{every: 2}}
          - autofocus: {{hfr_increase: 5.0}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - slew: {{}}
              - guide: start
              - focus: auto
              - each_filter: [L, R]
                steps:
                  - expose: {{count: 3, exposure: 30}}
        """, guider=True)
    result = rig.run(plan)
    assert result.outcome == "completed"
    run_dir = result.run_dir
    page = _Page()
    page.feed((run_dir / "report.html").read_text())
    plots = {k.removeprefix("plot-"): v for k, v in page.images.items()
             if k.startswith("plot-")}
    assert {"hfr", "guiding", "temperature", "altitude", "frames", "timeline"} <= set(plots)
    for src in plots.values():
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert im.format == "PNG" and im.width > 300
    # its numbers are the journal's and the events'
    journal = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    lights = [j for j in journal if j["type"] == "frame" and j.get("light", True)]
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    shown = json.loads((run_dir / "report.json").read_text())
    assert shown["light_frames"] == len(lights) == 6
    assert {(f["filter"], f["taken"]) for f in shown["frames"]} == {("L", 3), ("R", 3)}
    assert {i["filter"]: i["seconds"] for i in shown["integration_s"]} == {"L": 90, "R": 90}
    dithered = sum(e["event"] == "dithered" for e in events)
    assert shown["dithers"] == dithered
    # two dithers were due; on a busy machine the guider may not be guiding at one of them
    assert dithered + result.summary["dithers_skipped"] >= 2
    assert shown["autofocus_runs"] == sum(e["event"] == "autofocus" for e in events) == 1
    assert [str(x) for x in (shown["light_frames"], shown["autofocus_runs"],
                             shown["dithers"])] == page.cells[:3]
    assert "1.5 min" in page.cells  # 3 × 30 s per filter
    # and summary.json keeps every figure the page shows, beside the engine's record
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["report"] == {k: v for k, v in shown.items() if k != "plots"}
    assert summary["frames"]["light"] == 6
    # any past night, again, from its run or data directory
    (run_dir / "report.html").unlink()
    done = CliRunner().invoke(app, ["report", str(rig.data)])
    assert done.exit_code == 0, done.output
    assert (run_dir / "report.html").is_file()
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert bad.exit_code == 1 and "neither a run directory" in bad.output


def test_the_report_sets_the_estimate_against_the_night_and_plots_the_cooler(
        tmp_path: Path) -> None:
    from datetime import datetime

    from runner.estimate.night import estimate
    from runner.plan.loader import load_plan

    rig = Rig(tmp_path, tmp_path / "data")
    plan = rig.write(f"""\
        startup:
          - cool: {{to: -5, rate: 10}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - each_filter: [L, R]
                steps:
                  - expose: {{count: 2, exposure: 60}}
        """)
    result = rig.run(plan)
    assert result.outcome == "completed"
    run_dir = result.run_dir
    events = rig.events(result)
    shown = json.loads((run_dir / "report.json").read_text())
    # what `nightrunner estimate` says of this plan for a night starting when this one did
    loaded = load_plan(plan)
    assert loaded.plan is not None and loaded.equipment is not None
    start = datetime.fromisoformat(events[0]["clock"])
    [target] = estimate(loaded.plan, loaded.equipment, start=start).to_dict()["targets"]
    predicted = {f["filter"]: (f["count"], f["exposure_s"]) for f in target["frames"]}
    versus = shown["estimate"]
    assert {r["filter"]: (r["frames_predicted"], r["seconds_predicted"])
            for r in versus["rows"]} == predicted == {"L": (2, 120.0), "R": (2, 120.0)}
    assert {r["filter"]: (r["frames_taken"], r["seconds_taken"]) for r in versus["rows"]} \
        == {"L": (2, 120.0), "R": (2, 120.0)}
    [t] = versus["targets"]
    assert t["start_predicted"] == target["start"] and t["end_predicted"] == target["end"]
    began = next(e["clock"] for e in events if e["event"] == "target_start")
    ended = next(e["clock"] for e in events if e["event"] == "target_end")
    assert (t["start_actual"], t["end_actual"]) == (began, ended)
    assert "<h2 id='estimate'>Estimate against what happened</h2>" in \
        (run_dir / "report.html").read_text()
    md = (run_dir / "report.md").read_text()
    assert "## Estimate against what happened" in md and "| NGC 188 | L | 2 | 2 |" in md
    # the cooler, minute by minute, is in the events and on the temperature plot
    cooler = [e for e in events if e["event"] == "cooler"]
    assert len(cooler) >= 3 and all(e["cooler_power"] is not None for e in cooler)
    assert max(e["cooler_power"] for e in cooler) > 0  # it worked to reach -5 °C
    assert shown["cooler"]["samples"] == len(cooler)
    assert shown["cooler"]["power_max"] == max(e["cooler_power"] for e in cooler)
    assert "temperature" in shown["plots"]
    # a past night keeps the numbers that need astropy: redrawn in a fresh process, its
    # page is the same and astropy is never imported (it costs more than all the rest)
    before = json.loads((run_dir / "report.json").read_text())
    # (no fork: a child would hide an import of astropy from this process's modules)
    code = ("import os, sys; del os.fork; from pathlib import Path;"
            " from runner.report import write_html_report;"
            f" write_html_report(Path({str(run_dir)!r}));"
            " print('astropy.coordinates' in sys.modules)")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                           check=True)
    assert fresh.stdout.strip() == "False"
    assert json.loads((run_dir / "report.json").read_text()) == before
    # a plan edited since the night is not estimated again: the page says why
    (run_dir / "estimate.json").unlink()
    plan.write_text(plan.read_text().replace("count: 2", "count: 5"))
    done = CliRunner().invoke(app, ["report", str(run_dir)])
    assert done.exit_code == 0, done.output
    again = json.loads((run_dir / "report.json").read_text())["estimate"]
    assert again == {"unavailable": f"the plan {plan} changed since the night"}
    assert "No estimate: the plan" in (run_dir / "report.html").read_text()


def test_the_stacker_is_reported_per_target_and_filter(tmp_path: Path) -> None:
    rig = Rig(tmp_path, tmp_path / "data")
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            stack: true
            sequence:
              - each_filter: [L, R]
                steps: [{{expose: {{count: 3, exposure: 30}}}}]
        """)
    result = rig.run(plan, speed=100)
    assert result.outcome == "completed"
    saved = {e["filter"]: e["status"] for e in rig.events(result) if e["event"] == "stack_saved"}
    assert set(saved) == {"L", "R"}
    shown = json.loads((result.run_dir / "report.json").read_text())
    assert shown["stacks"] == [
        {"target": "NGC 188", "filter": f, "stacked": saved[f]["stacked"],
         "dropped": saved[f]["dropped"], "refused": 0} for f in ("L", "R")]
    page = _Page()
    page.feed((result.run_dir / "report.html").read_text())
    assert "plot-frames" in page.images
    row = ["NGC 188", "R", str(saved["R"]["stacked"]), str(saved["R"]["dropped"]), "0"]
    assert any(page.cells[i:i + 5] == row for i in range(len(page.cells)))
