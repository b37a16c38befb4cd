"""`nightrunner run` as cron and a user see it: exit codes, --json, --dry-run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.engine.conftest import CLUSTER, Rig

NR = str(Path(sys.executable).parent / "nightrunner")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NR, "run", *args], capture_output=True, text=True, timeout=180,
                          check=False)


def test_dry_run_walks_the_plan_and_writes_no_frames(rig: Rig) -> None:
    plan = rig.write(f"""\
        startup: [{{cool: {{to: -5}}}}]
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - each_filter: [L, R, G, B]
                steps: [{{expose: {{count: 20, exposure: 300}}}}]
        shutdown: [{{warm: {{to: 10}}}}]
        """)
    done = _run(str(plan), "--data-dir", str(rig.data), "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["dry_run"] is True and summary["outcome"] == "completed"
    assert summary["frames"]["light"] == 80
    assert summary["clock_seconds"] >= 80 * 300  # the night, walked on the simulated clock
    assert not rig.fits()


def test_an_invalid_plan_never_touches_a_device(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{filter: Purple}}, {{expose: {{exposure: 5}}}}]
        """)
    done = _run(str(plan), "--data-dir", str(rig.data))
    assert done.returncode == 1
    assert f"{plan}:8:25: error: unknown filter 'Purple'" in done.stderr
    assert not rig.data.exists()


def test_an_unusable_data_directory_is_one_clear_error(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{expose: {{exposure: 5}}}}]
        """)
    blocker = rig.dir / "file"
    blocker.write_text("not a directory")
    done = _run(str(plan), "--data-dir", str(blocker / "data"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: data directory") and "Traceback" not in done.stderr


def test_usage_errors_exit_2(rig: Rig) -> None:
    assert _run().returncode == 2
    assert _run("plan.yaml", "--speed", "-3").returncode == 2
    assert _run("plan.yaml", "--progress", "loud").returncode == 2


def test_plain_progress_lines_for_cron(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{filter: L}}, {{expose: {{count: 2, exposure: 5}}}}]
        """)
    done = _run(str(plan), "--data-dir", str(rig.data), "--speed", "50")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("target NGC 188 started" in ln for ln in lines)
    assert sum("frame light L 5s" in ln for ln in lines) == 2
    assert lines[-1].startswith("completed: 2 light frames")
    report = Path(lines[-1].rsplit(" ", 1)[1]).read_text()
    assert "# Night report" in report and "## NGC 188" in report
    assert "- frames: L 2" in report and "outcome: **completed**" in report
    assert "\x1b[" not in done.stdout  # no terminal control codes in a log
