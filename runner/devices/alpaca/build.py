"""Build the Alpaca adapters an equipment profile asks for.

In the profile, a device with ``backend: alpaca`` takes ``address`` (``host:port`` of the
Alpaca server, default ``127.0.0.1:11111``) and ``device`` (the Alpaca device number, default
0). Keys of the result are the profile's field names: ``camera``, ``filter_wheel``,
``focuser``, ``mount``, ``safety``.
"""

from __future__ import annotations

from runner.clock import Clock
from runner.devices.alpaca.camera import AlpacaCamera
from runner.devices.alpaca.filterwheel import AlpacaFilterWheel
from runner.devices.alpaca.focuser import AlpacaFocuser
from runner.devices.alpaca.safety import AlpacaSafetyMonitor
from runner.devices.alpaca.telescope import AlpacaMount
from runner.devices.interfaces import Device
from runner.errors import PlanError
from runner.plan.equipment import Connection, Equipment

#: Where an Alpaca server listens when the profile gives no address (ASCOM Remote's default).
DEFAULT_ADDRESS = "127.0.0.1:11111"


def _address(conn: Connection) -> str:
    return conn.address or DEFAULT_ADDRESS


def _number(conn: Connection, what: str) -> int:
    device = conn.device
    if device is None:
        return 0
    if isinstance(device, int) and device >= 0:
        return device
    if isinstance(device, str) and device.strip().isdigit():
        return int(device.strip())
    raise PlanError(f"{what}: an Alpaca device is a device number (0, 1, …), got {device!r}")


def build_alpaca_devices(equipment: Equipment, clock: Clock) -> dict[str, Device]:
    """Unconnected adapters for every device of ``equipment`` whose backend is ``alpaca``.

    Raises:
        PlanError: a device number in the profile is not a non-negative integer.
    """
    devices: dict[str, Device] = {}
    cam = equipment.camera
    if cam.backend == "alpaca":
        devices["camera"] = AlpacaCamera(
            _address(cam),
            _number(cam, "camera"),
            clock,
            egain=cam.egain,
            download_timeout=max(30.0, 10.0 * cam.download_time),
        )
    fw = equipment.filter_wheel
    if fw is not None and fw.backend == "alpaca":
        devices["filter_wheel"] = AlpacaFilterWheel(_address(fw), _number(fw, "filter_wheel"))
    foc = equipment.focuser
    if foc is not None and foc.backend == "alpaca":
        devices["focuser"] = AlpacaFocuser(
            _address(foc),
            _number(foc, "focuser"),
            min_position=foc.min_position,
            max_position=foc.max_position,
        )
    mount = equipment.mount
    if mount is not None and mount.backend == "alpaca":
        devices["mount"] = AlpacaMount(
            _address(mount), _number(mount, "mount"), clock, slew_timeout=mount.slew_timeout
        )
    safety = equipment.safety
    if safety is not None and safety.backend == "alpaca":
        devices["safety"] = AlpacaSafetyMonitor(_address(safety), _number(safety, "safety"))
    return devices
