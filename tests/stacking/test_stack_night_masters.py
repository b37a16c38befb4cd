"""Calibration masters built during the night, through the engine's stacking link."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from runner.engine.compiler import CompiledTarget
from runner.engine.events import EventBus
from runner.engine.stacking_link import StackingLink
from runner.plan.models import ErrorPolicy, Target
from runner.stacking.calibrate import CalibrationLibrary
from runner.stacking.synthetic import Sensor, StarField, Transform

WriteFits = Callable[..., Path]


def _target(name: str) -> CompiledTarget:
    t = Target.model_validate({"name": name, "coordinates": {"ra": "05:35:17", "dec": "-05:23:28"},
                               "stack": True, "sequence": [{"expose": {"count": 1,
                                                                        "exposure": 30}}]})
    return CompiledTarget(0, name, t, (), ErrorPolicy())


def _events(bus: EventBus) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    bus.subscribe(lambda e: seen.append(e))
    return seen


async def test_a_dark_set_becomes_the_offline_master_and_calibrates_the_lights_after_it(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    data = tmp_path / "data"
    bus = EventBus()
    events = _events(bus)
    link = StackingLink(data, bus)
    darks = [tmp_path / "frames" / f"dark_{i}.fits" for i in range(5)]
    for i, p in enumerate(darks[:4]):
        write_fits(p.name, sensor.dark(30.0, seed=50 + i), kind="Dark Frame")
        link.calibration_frame(p, "dark")
    link.calibration_frame(darks[4], "dark")  # announced while the writer still writes it
    await asyncio.sleep(0.2)
    write_fits(darks[4].name, sensor.dark(30.0, seed=54), kind="Dark Frame")

    assert link.begin(_target("M 42")) is link  # the set is complete: combined now
    lights = [write_fits(f"m42_{i}.fits", sensor.light(field, 30.0, seed=i,
                                                     transform=Transform(1.5 * i, -i)),
                         FILTER="L") for i in range(6)]
    assert all(link.submit(p) for p in lights)  # held until the master is ready
    out = await link.end()
    await link.close()

    [built] = [e for e in events if e["event"] == "calibration_master"]
    assert (built["kind"], built["frames"]) == ("dark", 5)
    entry = next(e for e in json.loads((data / "calibration" / "index.json").read_text())
                 if e["id"] == built["id"])
    assert entry["settings"]["exposure"] == 30.0 and entry["settings"]["gain"] == 100
    assert entry["settings"]["temperature"] == -10.0 and entry["camera"] == "SimCam"
    offline = CalibrationLibrary(tmp_path / "offline").build_master("dark", darks)
    night = fits.getdata(data / "calibration" / entry["path"])
    np.testing.assert_array_equal(night, CalibrationLibrary(tmp_path / "offline").load(offline))
    assert fits.getheader(data / "calibration" / entry["path"])["IMAGETYP"] == "Master Dark"

    assert out is not None and out["stacks"]["M_42_L"]["stacked"] == 6
    meta = json.loads((data / "stacked" / "M_42_L_final.json").read_text())
    assert meta["stacking"]["calibration"]["darks"] == built["id"]
    stack = fits.getdata(data / "stacked" / "M_42_L_final.fits")
    # the dark (with its bias) is gone: the sky is the sky, not 500 ADU of pedestal on top
    assert abs(float(np.median(stack)) - 200.0 * float(np.median(sensor.flat_map))) < 25.0
    # and the hot pixels with it
    hot = sensor.dark_map > 10
    ys, xs = np.nonzero(hot)
    sky = float(np.median(stack))
    assert np.max(stack[ys[5:-5], xs[5:-5]] - sky) < 0.5 * 30 * sensor.hot_current


async def test_flats_follow_the_filter_and_lights_of_other_settings_get_no_master(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    data = tmp_path / "data"
    bus = EventBus()
    events = _events(bus)
    link = StackingLink(data, bus)
    for i in range(3):
        link.calibration_frame(write_fits(f"bias_{i}.fits", sensor.bias(seed=i), kind="Bias",
                                          exposure=0.0), "bias")
    for i in range(3):
        link.calibration_frame(write_fits(f"flat_{i}.fits", sensor.flat(seed=10 + i),
                                          kind="Flat Field", exposure=1.0, FILTER="R"), "flat")
    link.begin(_target("M 42"))
    for i in range(3):
        for f, gain in (("R", 100), ("G", 100), ("B", 200)):
            link.submit(write_fits(f"{f}_{i}.fits", sensor.light(field, 30.0, seed=20 + i),
                                   FILTER=f, gain=gain))
    await link.end()
    await link.close()

    built = {e["kind"]: e["id"] for e in events if e["event"] == "calibration_master"}
    assert set(built) == {"bias", "flat"}
    cal = {f: json.loads((data / "stacked" / f"M_42_{f}_final.json").read_text())
           ["stacking"]["calibration"] for f in "RGB"}
    assert cal["R"] == {"darks": None, "flats": built["flat"], "bias": built["bias"]}
    assert cal["G"] == {"darks": None, "flats": None, "bias": built["bias"]}  # no G flat
    assert cal["B"] == {"darks": None, "flats": None, "bias": None}  # another gain


def test_a_plan_needs_the_link_for_masters_only_when_a_step_asks_for_one() -> None:
    from runner.plan.loader import load_plan
    from runner.plan.models import CalibrationArgs
    from runner.stacking.night_masters import plan_builds_masters

    demo = load_plan(Path(__file__).parents[2] / "plans" / "demo.yaml")
    assert demo.plan is not None and not plan_builds_masters(demo.plan)
    wanted = CalibrationArgs.model_construct(kind="dark", count=2, exposures=[30.0], master=True)
    assert plan_builds_masters({"shutdown": [{"steps": [wanted]}]})
