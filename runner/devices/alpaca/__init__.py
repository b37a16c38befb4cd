"""ASCOM Alpaca back-end (alpyca): camera, filter wheel, focuser, telescope, safety monitor.

Every alpyca call runs in a worker thread with a timeout; alpyca and ``requests`` errors are
converted to :mod:`runner.errors` in :mod:`runner.devices.alpaca.transport`. Notes and limits:
``docs/backends.md``.
"""

from runner.devices.alpaca.build import DEFAULT_ADDRESS, build_alpaca_devices
from runner.devices.alpaca.camera import AlpacaCamera
from runner.devices.alpaca.filterwheel import AlpacaFilterWheel
from runner.devices.alpaca.focuser import AlpacaFocuser
from runner.devices.alpaca.safety import AlpacaSafetyMonitor
from runner.devices.alpaca.telescope import AlpacaMount
from runner.devices.alpaca.transport import Unsupported

__all__ = [
    "DEFAULT_ADDRESS",
    "AlpacaCamera",
    "AlpacaFilterWheel",
    "AlpacaFocuser",
    "AlpacaMount",
    "AlpacaSafetyMonitor",
    "Unsupported",
    "build_alpaca_devices",
]
