"""A plan runs unchanged on real back-ends: the engine drives the Alpaca simulators and
indiserver's simulator drivers and writes the same FITS files it writes on the built-in
simulators."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from astropy.io import fits
from backend_rigs import equipment

from runner.engine.run import Run, RunOptions
from runner.plan.models import Plan

PLAN = {
    "version": 1,
    "name": "real back-end",
    "site": {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"},
    "targets": [
        {
            "name": "NGC 188",
            "coordinates": {"ra": "00:48:26", "dec": "+85:14:42"},
            "sequence": [
                {"slew": {}},
                {"focus": {"by": 200}},
                {"filter": "L"},
                {"expose": {"count": 2, "exposure": 1, "binning": 2}},
            ],
        }
    ],
    "shutdown": [{"park": {}}],
}


@pytest.mark.parametrize("backend", ["alpaca", "indi"])
def test_the_engine_runs_a_plan_on_real_servers(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    address = request.getfixturevalue(f"{backend}_server")
    eq = equipment(backend, address)
    first_filter = eq.filter_wheel.filters[0].name if eq.filter_wheel else "L"
    data = {**PLAN, "targets": [dict(PLAN["targets"][0])]}  # type: ignore[index]
    data["targets"][0]["sequence"][2] = {"filter": first_filter}  # type: ignore[index]
    plan = Plan.model_validate(data)
    opts = RunOptions(data_dir=tmp_path / "data", speed=1.0, progress="none")
    result = asyncio.run(Run(plan, eq, opts).execute())
    assert result.outcome == "completed", result.summary["errors"]
    frames = sorted((tmp_path / "data").rglob("*.fits"))
    assert len(frames) == 2, result.summary
    with fits.open(frames[0]) as hdul:
        h = hdul[0].header
        assert h["IMAGETYP"] == "Light Frame" and h["XBINNING"] == 2
        assert h["EXPTIME"] == 1 and h["FILTER"] == first_filter
        assert hdul[0].data.dtype.kind in "iu" and hdul[0].data.ndim == 2


@pytest.mark.parametrize("backend", ["alpaca", "indi"])
def test_scanning_a_server_lists_its_devices(backend: str, request: pytest.FixtureRequest) -> None:
    from runner.devices.scan import scan

    address = request.getfixturevalue(f"{backend}_server")
    found = asyncio.run(scan(backend, address))
    names = {d.name for d in found}
    if backend == "alpaca":
        assert {"camera", "filter_wheel", "focuser", "mount"} <= {d.kind for d in found}
    else:
        assert {"CCD Simulator", "Telescope Simulator"} <= names


def test_camera_parameters_by_name_follow_the_typed_api() -> None:
    from runner.clock import ScaledClock
    from runner.devices.factory import build_devices
    from runner.plan.equipment import Equipment

    async def scenario() -> dict[str, object]:
        cam = build_devices(Equipment(name="sim"), ScaledClock(100)).camera
        await cam.connect()
        await cam.set_parameter("gain", 120)
        await cam.set_parameter("roi", {"start_x": 8, "start_y": 4, "width": 64, "height": 32})
        await cam.set_parameter("binning", [2, 2])
        with pytest.raises(KeyError, match="cannot be set"):
            await cam.set_parameter("temperature", 5)
        return await cam.poll()

    info = asyncio.run(scenario())
    assert info["gain"] == 120 and info["binning"] == 2 and info["exposure"] == "idle"
    assert info["roi"] == {"start_x": 8, "start_y": 4, "width": 64, "height": 32}
    assert "temperature" in info and "cooler_power" in info
