"""Build the INDI adapters an equipment profile asks for.

In the profile, a device with ``backend: indi`` takes ``address`` (``host:port`` of the
indiserver, default ``127.0.0.1:7624``) and ``device`` (the INDI device name, e.g.
``"CCD Simulator"``; when omitted, the only device of the right kind on that server). Devices
on the same server share one connection. Keys of the result are the profile's field names:
``camera``, ``filter_wheel``, ``focuser``, ``mount``, ``safety`` (an INDI weather station).
"""

from __future__ import annotations

from runner.clock import Clock
from runner.devices.indi.camera import IndiCamera
from runner.devices.indi.client import IndiServer, parse_address
from runner.devices.indi.filterwheel import IndiFilterWheel
from runner.devices.indi.focuser import IndiFocuser
from runner.devices.indi.safety import IndiSafetyMonitor
from runner.devices.indi.telescope import IndiMount
from runner.devices.interfaces import Device
from runner.errors import DeviceError, PlanError
from runner.plan.equipment import Connection, Equipment


def _name(conn: Connection, what: str) -> str | None:
    device = conn.device
    if device is None or isinstance(device, str):
        return device or None
    raise PlanError(f"{what}: an INDI device is named by a string, got {device!r}")


def build_indi_devices(equipment: Equipment, clock: Clock) -> dict[str, Device]:
    """Unconnected adapters for every device of ``equipment`` whose backend is ``indi``.

    Building does no I/O and does not need pyindi-client; ``connect`` does.

    Raises:
        PlanError: a device is given by number, or an address is malformed.
    """
    servers: dict[str, IndiServer] = {}

    def server(conn: Connection, what: str) -> IndiServer:
        try:
            host, port = parse_address(conn.address)
        except DeviceError as exc:
            raise PlanError(f"{what}: {exc}") from exc
        key = f"{host}:{port}"
        if key not in servers:
            servers[key] = IndiServer(key)
        return servers[key]

    devices: dict[str, Device] = {}
    cam = equipment.camera
    if cam.backend == "indi":
        devices["camera"] = IndiCamera(
            server(cam, "camera"),
            _name(cam, "camera"),
            clock,
            egain=cam.egain,
            download_timeout=max(30.0, 10.0 * cam.download_time),
        )
    fw = equipment.filter_wheel
    if fw is not None and fw.backend == "indi":
        devices["filter_wheel"] = IndiFilterWheel(
            server(fw, "filter_wheel"), _name(fw, "filter_wheel")
        )
    foc = equipment.focuser
    if foc is not None and foc.backend == "indi":
        devices["focuser"] = IndiFocuser(
            server(foc, "focuser"),
            _name(foc, "focuser"),
            min_position=foc.min_position,
            max_position=foc.max_position,
        )
    mount = equipment.mount
    if mount is not None and mount.backend == "indi":
        devices["mount"] = IndiMount(server(mount, "mount"), _name(mount, "mount"), clock)
    safety = equipment.safety
    if safety is not None and safety.backend == "indi":
        devices["safety"] = IndiSafetyMonitor(server(safety, "safety"), _name(safety, "safety"))
    return devices
