"""Autofocus on the simulator finds best focus to within half a step_size.

Tolerance: the optical focuser position after the run is within ``step_size / 2`` of
``SimWorld.best_focus()`` (the simulator's truth), for a start near focus, a start far off,
and after the temperature moved focus. The sampled curves have noisy HFRs from real star
detection on rendered frames; the fit does the rest.
"""

from __future__ import annotations

import pytest

from runner.clock import ScaledClock
from runner.devices.sim import SimCamera, SimFocuser, SimWorld
from runner.engine.autofocus import AutofocusFailed, run_autofocus
from runner.plan.equipment import (
    CameraProfile,
    Equipment,
    FocuserProfile,
    Simulation,
)

STEP = 100


async def rig(**sim: object) -> tuple[SimWorld, SimCamera, SimFocuser]:
    eq = Equipment(
        name="af",
        camera=CameraProfile(width=800, height=600, download_time=0.5),
        focuser=FocuserProfile(speed=2000.0, backlash=60, step_size=STEP),
        simulation=Simulation(ambient_drift=0.0, tracking_drift=0.0, **sim),
    )
    world = SimWorld(ScaledClock(speed=400.0), eq)
    cam, foc = SimCamera(world), SimFocuser(world)
    await cam.connect()
    await foc.connect()
    return world, cam, foc


async def focus_from(world: SimWorld, foc: SimFocuser, position: int) -> None:
    await foc.move_to(position)
    while await foc.is_moving():
        await world.clock.sleep(0.1)


@pytest.mark.parametrize("fit", ["hyperbola", "parabola"])
async def test_finds_best_focus_near_the_start(fit: str) -> None:
    world, cam, foc = await rig()
    best = world.best_focus()
    await focus_from(world, foc, best + 230)
    result = await run_autofocus(
        cam,
        foc,
        clock=world.clock,
        steps=9,
        step_size=STEP,
        exposure=5.0,
        fit=fit,  # type: ignore[arg-type]
        backlash=80,
    )
    assert result.ok and result.r2 is not None and result.r2 > 0.9
    assert abs(world.focuser_position - world.best_focus()) <= STEP / 2
    assert len(result.positions) == 9 and all(h is not None for h in result.hfrs)
    assert result.final_hfr is not None and result.final_hfr < 1.3 * world.optics.hfr_min_px
    assert result.temperature == pytest.approx(world.ambient_temperature(), abs=0.1)


async def test_converges_from_far_off() -> None:
    world, cam, foc = await rig()
    await focus_from(world, foc, world.best_focus() - 1300)  # HFR ≈ 10 px, way outside ±400
    result = await run_autofocus(
        cam, foc, clock=world.clock, steps=9, step_size=STEP, exposure=5.0, backlash=80
    )
    assert result.ok and len(result.positions) > 9, "it had to move its window"
    assert abs(world.focuser_position - world.best_focus()) <= STEP / 2


async def test_refocus_follows_temperature_drift() -> None:
    world, cam, foc = await rig(focus_drift=-40.0)
    first = await run_autofocus(
        cam, foc, clock=world.clock, step_size=STEP, exposure=5.0, backlash=80
    )
    world.ambient_offset = -6.0  # a cold front: best focus moves out by 240 steps
    second = await run_autofocus(
        cam, foc, clock=world.clock, step_size=STEP, exposure=5.0, backlash=80
    )
    assert abs(world.focuser_position - world.best_focus()) <= STEP / 2
    assert first.temperature is not None and second.temperature is not None
    assert first.temperature - second.temperature == pytest.approx(6.0, abs=0.1)
    assert first.best_position is not None and second.best_position is not None
    assert second.best_position - first.best_position == pytest.approx(240, abs=STEP / 2)


async def test_backlash_compensation_is_what_makes_it_accurate() -> None:
    """The simulated focuser has 60 steps of play; the V-curve is sampled moving outward, so
    the final move must arrive outward too. Without the overshoot the optics stop up to the
    backlash off (the first sample, reached moving inward, also bends the curve a little)."""
    errors = {}
    for overshoot in (0, 80):
        world, cam, foc = await rig(seed=11)
        await focus_from(world, foc, world.best_focus() + 150)
        await run_autofocus(
            cam, foc, clock=world.clock, step_size=STEP, exposure=5.0, backlash=overshoot
        )
        errors[overshoot] = world.focuser_position - world.best_focus()
    assert abs(errors[80]) <= 15
    assert 25 <= errors[0] - errors[80] <= 75


async def test_no_stars_fails_and_returns_to_the_start() -> None:
    world, cam, foc = await rig(stars=0)
    start = await foc.position()
    with pytest.raises(AutofocusFailed, match="stars measured at only 0") as info:
        await run_autofocus(cam, foc, clock=world.clock, step_size=STEP, exposure=2.0, backlash=80)
    assert await foc.position() == start and not info.value.result.ok
    assert info.value.result.final_position == start
