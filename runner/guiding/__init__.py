"""Guiding through PHD2's event server: the client, the ``Guider`` built on it, the simulator.

Start with ``open_guider(equipment, clock, world)`` (runner.guiding.session); docs/guiding.md
explains the protocol rules the client follows and how the simulator behaves.
"""

from runner.guiding.phd2_client import PHD2Client, scan_servers
from runner.guiding.phd2_guider import PHD2Guider, StarLostRecovery
from runner.guiding.phd2_process import PHD2Process, start_phd2, stop_phd2
from runner.guiding.phd2_types import (
    EquipmentDevice,
    GuideStepInfo,
    NotGuidingError,
    PHD2Profile,
    PHD2RpcError,
    SettleParams,
    SettleProgress,
    SettleResult,
    StarImage,
)
from runner.guiding.session import open_guider
from runner.guiding.sim import PHD2Simulator, SimFaults

__all__ = [
    "EquipmentDevice",
    "GuideStepInfo",
    "NotGuidingError",
    "PHD2Client",
    "PHD2Guider",
    "PHD2Process",
    "PHD2Profile",
    "PHD2RpcError",
    "PHD2Simulator",
    "SettleParams",
    "SettleProgress",
    "SettleResult",
    "SimFaults",
    "StarImage",
    "StarLostRecovery",
    "open_guider",
    "scan_servers",
    "start_phd2",
    "stop_phd2",
]
