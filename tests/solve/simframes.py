"""A simulated frame of the real sky, written as the engine writes lights (FITS with RA/DEC,
FOCALLEN, XPIXSZ), for the solver tests and the benchmark."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runner.clock import ScaledClock
from runner.devices.sim import SimCamera, SimMount, SimWorld
from runner.engine import actions
from runner.plan.equipment import Equipment, MountProfile, PointingError, Simulation
from runner.records import Frame
from runner.storage.fits import FrameMeta, write_fits


def equipment(seed: int = 5, error_arcmin: float = 0.0) -> Equipment:
    """The default simulated camera (1024×768 px at 1.94″/px: a 33′×25′ field)."""
    pe = PointingError(arcmin=error_arcmin) if error_arcmin else None
    return Equipment(name="solve", mount=MountProfile(settle_time=0, slew_rate=50),
                     simulation=Simulation(seed=seed, sky="catalogue", pointing_error=pe))


async def take_frame(eq: Equipment, ra: float, dec: float, exposure: float = 5.0
                     ) -> tuple[Frame, tuple[float, float], tuple[float, float]]:
    """Slew to (ra, dec), expose; (frame, where the mount says it points, the true centre)."""
    clock = ScaledClock(speed=500)
    world = SimWorld(clock, eq)
    cam, mount = SimCamera(world), SimMount(world)
    await cam.connect()
    await mount.connect()
    await actions.slew(mount, clock, ra, dec, 600)
    frame = await actions.expose(cam, clock, exposure, "light", exposure + 60)
    reported = await mount.coordinates()
    truth = world.pointing()
    await cam.close()
    return frame, reported, truth


def write_frame(path: Path, eq: Equipment, ra: float, dec: float, *, exposure: float = 5.0,
                ) -> tuple[Path, Frame, tuple[float, float]]:
    """Take a frame and write it with the mount's coordinates; (path, frame, true centre)."""
    frame, (m_ra, m_dec), truth = asyncio.run(take_frame(eq, ra, dec, exposure))
    meta = FrameMeta(object_name="field", ra=m_ra, dec=m_dec, focal_length=eq.focal_length,
                     pixel_size=eq.camera.pixel_size)
    write_fits(path, frame, meta)
    return path, frame, truth
