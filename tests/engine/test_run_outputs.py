"""A plan run on the simulators leaves complete FITS files, an index, a log and a summary."""

from __future__ import annotations

import json

from astropy.io import fits
from typer.testing import CliRunner

from runner.cli import app
from runner.storage.index import ImageIndex
from tests.engine.conftest import CLUSTER, Rig, names


def test_lrgb_run_leaves_readable_frames_with_the_headers_stackers_read(rig: Rig) -> None:
    plan = rig.write(f"""\
        startup:
          - cool: {{to: -5, rate: 10}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            constraints: {{min_altitude: 20}}
            sequence:
              - slew: {{}}
              - each_filter: [L, R]
                steps:
                  - expose: {{count: 2, exposure: 20, gain: 120, offset: 12}}
              - expose: {{count: 1, exposure: 10, type: dark}}
        shutdown:
          - warm: {{to: 10, rate: 20}}
          - park: {{}}
        """)
    result = rig.run(plan)
    assert result.outcome == "completed" and result.exit_code == 0
    frames = rig.fits()
    assert sorted(p.name for p in frames) == [
        "NGC 188_L_20s_0001.fits", "NGC 188_L_20s_0002.fits", "NGC 188_R_10s_0001.fits",
        "NGC 188_R_20s_0001.fits", "NGC 188_R_20s_0002.fits",
    ]
    lights = [p for p in frames if "_20s_" in p.name]
    with fits.open(lights[0]) as hdul:
        h = hdul[0].header
        data = hdul[0].data
        assert data.shape == (240, 320)
        assert h["EXPTIME"] == 20 and h["EXPOSURE"] == 20
        assert h["IMAGETYP"] == "Light Frame"
        assert h["FILTER"] == "L" and h["OBJECT"] == "NGC 188"
        assert h["GAIN"] == 120 and h["OFFSET"] == 12
        assert h["XBINNING"] == 1 and h["YBINNING"] == 1
        assert abs(h["CCD-TEMP"] - (-5)) < 1.0 and h["SET-TEMP"] == -5
        assert abs(h["RA"] - 12.108) < 0.01 and abs(h["DEC"] - 85.245) < 0.01
        assert h["OBJCTRA"].startswith("00 48 26") and h["SITELAT"] == 52.37
        assert "FOCUSPOS" in h and "DATE-OBS" in h and h["INSTRUME"]
        assert h["DATE-OBS"].startswith("2026-11-25T19:")
    darks = [p for p in frames if p not in lights]
    assert len(darks) == 1
    with fits.open(darks[0]) as hdul:
        assert hdul[0].header["IMAGETYP"] == "Dark Frame"
    # the index knows every frame, the summary counts them, the log tells the story
    index = ImageIndex(rig.data)
    assert index.count() == 5
    assert index.count(target="NGC 188", filter="R") == 3
    assert {r.run_id for r in index.query()} == {result.run_dir.name}
    index.close()
    recalled = CliRunner().invoke(app, ["images", "--data-dir", str(rig.data), "--type", "dark",
                                        "--json"])
    assert recalled.exit_code == 0
    [dark] = json.loads(recalled.output)
    assert dark["frame_type"] == "dark" and dark["exposure"] == 10
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["outcome"] == "completed"
    assert summary["frames"]["light"] == 4 and summary["frames"]["dark"] == 1
    events = rig.events(result)
    phases = [e["phase"] for e in names(events, "phase")]
    assert phases == ["startup", "shutdown"]
    assert names(events, "parked")
    # no temporary files left behind
    assert not [p for p in rig.data.rglob("*.part")]


def test_a_second_run_on_the_same_data_directory_is_refused(rig: Rig) -> None:
    from runner.engine.lock import DataDirLock
    from runner.errors import RunLockedError

    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{expose: {{exposure: 1}}}}]
        """)
    with DataDirLock(rig.data):
        try:
            rig.run(plan)
        except RunLockedError as exc:
            assert "another run" in str(exc)
        else:
            raise AssertionError("a second run must not start")


def test_new_nights_never_overwrite_earlier_frames(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{filter: L}}, {{expose: {{count: 2, exposure: 5}}}}]
        """)
    rig.run(plan)
    rig.run(plan)
    assert [p.name for p in rig.fits()] == [f"NGC 188_L_5s_000{i}.fits" for i in (1, 2, 3, 4)]


def test_live_stacking_runs_beside_acquisition_and_saves_per_target(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            stack: {{align: stars, reject: sigma, kappa: 3}}
            sequence: [{{filter: L}}, {{expose: {{count: 6, exposure: 30}}}}]
        """)
    result = rig.run(plan, speed=100)
    assert result.outcome == "completed"
    saved = names(rig.events(result), "stack_saved")
    assert len(saved) == 1
    status = saved[0]["status"]
    assert status["frames"] == 6 and status["stacked"] + status["dropped"] == 6
    assert status["stacked"] >= 4
    final = json.loads((rig.data / "stacked" / "NGC_188_L_final.json").read_text())
    assert final["stacked_frames"] == status["stacked"]
    assert (rig.data / "stacked" / "NGC_188_L_final.tiff").stat().st_size > 0


def test_the_terminal_panel_shows_target_frames_and_temperature() -> None:
    import io

    from rich.console import Console

    from runner.engine.progress import RichProgress

    out = io.StringIO()
    panel = RichProgress(4, console=Console(file=out, force_terminal=True, width=100))
    for e in (
        {"event": "phase", "phase": "imaging"},
        {"event": "target_start", "target": "NGC 188"},
        {"event": "temperature", "ccd_temp": -9.8, "set_temp": -10},
        {"event": "filter", "filter": "Ha"},
        {"event": "frame", "type": "light", "hfr": 2.31, "guiding_rms": 0.62, "filter": "Ha",
         "exposure": 300.0, "path": "x.fits"},
    ):
        panel({"time": "2026-11-25T20:00:00+00:00", **e})
    panel.close()
    screen = out.getvalue()
    for text in ("NGC 188", "1 / 4 lights", "-9.8 °C", "2.31 px", "0.62", "Ha"):
        assert text in screen
