"""The back-end packages' public names, lazy INDI import and error conversion (no server)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from alpaca import exceptions as ax

import runner.devices.alpaca as alpaca_pkg
import runner.devices.indi as indi_pkg
from runner.devices.alpaca.transport import Unsupported, convert
from runner.errors import DeviceDisconnected, DeviceError, DeviceTimeout, PlanError
from runner.plan.equipment import Equipment


def test_public_names() -> None:
    assert set(alpaca_pkg.__all__) == {
        "DEFAULT_ADDRESS",
        "AlpacaCamera",
        "AlpacaFilterWheel",
        "AlpacaFocuser",
        "AlpacaMount",
        "AlpacaSafetyMonitor",
        "Unsupported",
        "build_alpaca_devices",
    }
    assert set(indi_pkg.__all__) == {
        "DEFAULT_PORT",
        "IndiCamera",
        "IndiFilterWheel",
        "IndiFocuser",
        "IndiMount",
        "IndiSafetyMonitor",
        "IndiServer",
        "Unsupported",
        "build_indi_devices",
    }


def test_indi_package_does_not_import_pyindi() -> None:
    """Nightrunner runs without the `indi` extra until an INDI device connects."""
    code = "import sys, runner.devices.indi; assert 'PyIndi' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ax.NotConnectedException("x"), DeviceDisconnected),
        (requests.ConnectionError("refused"), DeviceDisconnected),
        (requests.ConnectTimeout("slow connect"), DeviceDisconnected),
        (requests.ReadTimeout("slow"), DeviceTimeout),
        (ax.NotImplementedException("x"), Unsupported),
        (ax.InvalidValueException("x"), DeviceError),
        (ax.DriverException(0x500, "boom"), DeviceError),
    ],
)
def test_alpaca_errors_become_ours(exc: Exception, kind: type[DeviceError]) -> None:
    converted = convert(exc, "camera: Gain")
    assert type(converted) is kind
    assert converted.args[0].startswith("camera: Gain")


def test_profile_device_identifiers_are_checked() -> None:
    """At validation (the profile never loads); the builders keep the same rule for profiles
    made in code without validation."""
    from pydantic import ValidationError

    from runner.clock import ScaledClock
    from runner.plan.equipment import CameraProfile

    with pytest.raises(ValidationError, match="device number"):
        Equipment.model_validate(
            {"name": "x", "camera": {"backend": "alpaca", "device": "main camera"}}
        )
    with pytest.raises(ValidationError, match="named by a string"):
        Equipment.model_validate({"name": "x", "camera": {"backend": "indi", "device": 3}})
    eq = Equipment(name="x", camera=CameraProfile.model_construct(
        backend="alpaca", device="main camera", **{
            k: f.default for k, f in CameraProfile.model_fields.items()
            if k not in ("backend", "device")
        }))
    with pytest.raises(PlanError, match="device number"):
        alpaca_pkg.build_alpaca_devices(eq, ScaledClock())
