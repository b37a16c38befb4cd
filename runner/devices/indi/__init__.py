"""INDI back-end (pyindi-client): CCD, filter wheel, focuser, telescope, weather station.

pyindi-client is the optional extra ``indi``; it is imported on the first ``connect``. One
:class:`IndiServer` connection per indiserver address is shared by the devices on it. Notes and
limits: ``docs/backends.md``.
"""

from runner.devices.indi.build import build_indi_devices
from runner.devices.indi.camera import IndiCamera
from runner.devices.indi.client import DEFAULT_PORT, IndiServer, Unsupported
from runner.devices.indi.filterwheel import IndiFilterWheel
from runner.devices.indi.focuser import IndiFocuser
from runner.devices.indi.safety import IndiSafetyMonitor
from runner.devices.indi.telescope import IndiMount

__all__ = [
    "DEFAULT_PORT",
    "IndiCamera",
    "IndiFilterWheel",
    "IndiFocuser",
    "IndiMount",
    "IndiSafetyMonitor",
    "IndiServer",
    "Unsupported",
    "build_indi_devices",
]
