"""The embedded simulators: every device on one shared ``SimWorld`` (see docs/simulators.md)."""

from runner.devices.sim.camera import SimCamera
from runner.devices.sim.filter_wheel import SimFilterWheel
from runner.devices.sim.focuser import SimFocuser
from runner.devices.sim.mount import SimMount
from runner.devices.sim.safety import SimSafetyMonitor
from runner.devices.sim.world import Optics, SimWorld

__all__ = [
    "Optics",
    "SimCamera",
    "SimFilterWheel",
    "SimFocuser",
    "SimMount",
    "SimSafetyMonitor",
    "SimWorld",
]
