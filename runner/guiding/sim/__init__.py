"""A PHD2 simulator that speaks PHD2's event-server protocol on TCP (``nightrunner sim phd2``)."""

from runner.guiding.sim.core import PHD2Core
from runner.guiding.sim.model import DEFAULT_PROFILES, RpcError, SimFaults, SimProfile
from runner.guiding.sim.server import PHD2Simulator
from runner.guiding.sim.star import GuideCameraParams, GuideStar

__all__ = [
    "DEFAULT_PROFILES",
    "GuideCameraParams",
    "GuideStar",
    "PHD2Core",
    "PHD2Simulator",
    "RpcError",
    "SimFaults",
    "SimProfile",
]
