"""A night's stacks: one per target and filter, a colour preview, FITS for post-processing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from runner.stacking.calibrate import CalibrationLibrary
from tests.engine.conftest import CLUSTER, Rig, names


def test_an_lrgb_target_gets_a_stack_per_filter_and_a_colour_preview(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            stack: true
            sequence:
              - each_filter: [L, R, G, B]
                steps: [{{expose: {{count: 3, exposure: 30}}}}]
        """)
    result = rig.run(plan, speed=100)
    assert result.outcome == "completed"
    events = rig.events(result)
    started = {e["filter"]: e["stacking_id"] for e in names(events, "stack_start")}
    assert started == {f: f"NGC_188_{f}" for f in "LRGB"}
    saved = {e["filter"]: e for e in names(events, "stack_saved")}
    assert set(saved) == set("LRGB")
    stacked = rig.data / "stacked"
    for f, e in saved.items():
        assert e["status"]["frames"] == 3 and e["status"]["stacked"] >= 2
        log = (rig.data / "debug" / f"NGC_188_{f}" / "log.txt").read_text().splitlines()
        sources = [x["source"] for x in map(json.loads, log) if x["event"] == "frame"]
        assert len(sources) == 3
        assert {fits.getheader(p)["FILTER"] for p in sources} == {f}
        h = fits.getheader(stacked / f"NGC_188_{f}_final.fits")
        assert (h["FILTER"], h["OBJECT"], h["IMAGETYP"]) == (f, "NGC 188", "Master Light")
        assert h["NCOMBINE"] == e["status"]["stacked"]
        assert Path(e["paths"]["fits"]).name == f"NGC_188_{f}_final.fits"
    [colour] = names(events, "stack_colour")
    assert Path(colour["paths"]["jpeg"]).name == "NGC_188_colour.jpeg"
    assert Path(colour["paths"]["lrgb"]).name == "NGC_188_LRGB.jpeg"
    assert fits.getdata(stacked / "NGC_188_colour.fits").shape[0] == 3


def test_a_master_dark_built_during_the_night_calibrates_the_lights_after_it(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            stack: {{align: none, reject: none}}
            sequence:
              - calibration: {{kind: dark, exposures: [30], count: 5, master: true}}
              - expose: {{count: 4, exposure: 30, filter: L}}
        """)
    result = rig.run(plan, speed=100)
    assert result.outcome == "completed"
    events = rig.events(result)
    [built] = names(events, "calibration_master")
    assert (built["kind"], built["frames"]) == ("dark", 5)
    darks = sorted(p for p in rig.fits() if fits.getheader(p)["IMAGETYP"] == "Dark Frame")
    assert len(darks) == 5
    offline = CalibrationLibrary(rig.dir / "offline")
    master = fits.getdata(built["path"])
    np.testing.assert_array_equal(master, offline.load(offline.build_master("dark", darks)))

    meta = json.loads((rig.data / "stacked" / "NGC_188_L_final.json").read_text())
    assert meta["stacking"]["calibration"]["darks"] == built["id"]
    # the dark's pedestal (offset, bias pattern, dark current) is gone from the stack
    lights = [p for p in rig.fits() if fits.getheader(p)["IMAGETYP"] == "Light Frame"]
    raw_sky = float(np.median([np.median(fits.getdata(p)) for p in lights]))
    stack = fits.getdata(rig.data / "stacked" / "NGC_188_L_final.fits")
    pedestal = float(np.median(master))
    assert pedestal > 50
    assert abs(float(np.median(stack)) - (raw_sky - pedestal)) < 0.1 * pedestal
