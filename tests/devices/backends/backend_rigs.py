"""Real simulator servers and connected rigs for the back-end contract suite.

* Alpaca: ``alpaca-simulators`` (PyPI) run as ``python -m alpaca_simulators.run_simulator``
  with a config written here (smaller sensor, a realistic focal length, an offline SQLite star
  catalogue instead of its default online Gaia query).
* INDI: ``indiserver`` (Debian ``indi-bin``) with the simulator drivers, ``HOME`` pointed at a
  temporary directory so that driver configs and park data neither leak in nor out.

Both listen on 127.0.0.1 on a free port, start once per session (only if a test asks for them)
and are stopped at the end. A missing server is a test failure, not a skip: CI installs them
with ``scripts/install-backends.sh``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from runner.clock import ScaledClock
from runner.devices.interfaces import Camera, Device, FilterWheel, Focuser, Mount, SafetyMonitor
from runner.plan.equipment import Equipment

PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
INSTALL_HINT = "install the simulator servers with: bash scripts/install-backends.sh"
START_TIMEOUT = 30.0

# What the Alpaca simulator is configured with (and what the tests then expect back).
ALPACA_SENSOR = (640, 480)
ALPACA_PIXEL_UM = 3.76
ALPACA_MAX_BIN = 4
ALPACA_FILTERS = ["L", "R", "G", "B", "Ha"]

INDI_CCD, INDI_WHEEL, INDI_FOCUSER, INDI_MOUNT, INDI_WEATHER = (
    "CCD Simulator",
    "Filter Simulator",
    "Focuser Simulator",
    "Telescope Simulator",
    "Weather Simulator",
)
INDI_DRIVERS = [
    "indi_simulator_ccd",
    "indi_simulator_wheel",
    "indi_simulator_focus",
    "indi_simulator_telescope",
    "indi_simulator_weather",
]
# Set on the CCD simulator before the tests (its SIMULATOR_SETTINGS; the default is 1280×1024).
INDI_SENSOR = (800, 600)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the forked child: get SIGTERM when pytest dies, so that a killed or crashed run
    (whose fixture finalizers never run) leaves no server behind. Linux ``prctl``."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_ready(proc: subprocess.Popen[bytes], ready: Any, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.1)
    stop(proc)
    pytest.fail(f"{what} did not start within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


# ---------------------------------------------------------------------------- Alpaca


def _star_catalogue(path: Path) -> None:
    """A small synthetic catalogue in the SQLite layout cabaret reads (offline Gaia)."""
    rng = np.random.default_rng(7)
    n = 3000
    # Stars around where the simulated telescope points at start (near the pole) …
    ra = rng.uniform(0.0, 360.0, n)
    dec = 90.0 - np.degrees(np.sqrt(rng.uniform(0.0, 1.0, n)) * np.radians(3.0))
    mag = 16.0 - rng.exponential(1.5, n).clip(0.0, 8.0)
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE gaia_sources (ra REAL, dec REAL, pmra REAL, pmdec REAL, "
            "phot_g_mean_mag REAL)"
        )
        con.executemany(
            "INSERT INTO gaia_sources VALUES (?, ?, 0, 0, ?)",
            zip(ra.tolist(), dec.tolist(), mag.tolist(), strict=True),
        )


def _alpaca_config(directory: Path) -> Path:
    spec = importlib.util.find_spec("alpaca_simulators")
    assert spec is not None and spec.origin is not None
    template = Path(spec.origin).parent / "config" / "template.yaml"
    config: dict[str, Any] = yaml.safe_load(template.read_text())
    cam = config["devices"]["camera"][0]
    width, height = ALPACA_SENSOR
    cam.update(
        cameraxsize=width,
        cameraysize=height,
        numx=width,
        numy=height,
        pixelsizex=ALPACA_PIXEL_UM,
        pixelsizey=ALPACA_PIXEL_UM,
        maxbinx=ALPACA_MAX_BIN,
        maxbiny=ALPACA_MAX_BIN,
    )
    config["devices"]["telescope"][0].update(focallength=0.4, aperturediameter=0.08)
    wheel = config["devices"]["filterwheel"][0]
    wheel.update(names=ALPACA_FILTERS, focusoffsets=[0] * len(ALPACA_FILTERS))
    catalogue = directory / "stars.sqlite"
    _star_catalogue(catalogue)
    config["tap_source"] = str(catalogue)
    config["gaia_query_timeout"] = 10
    path = directory / "alpaca-simulators.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_alpaca(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """Start alpaca-simulators on ``port`` (config and log in ``directory``) and wait until it
    answers. Called again with the same arguments, it restarts the server as it was."""
    if importlib.util.find_spec("alpaca_simulators") is None:
        pytest.fail(f"alpaca-simulators is not installed; {INSTALL_HINT}")
    config = directory / "alpaca-simulators.yaml"
    if not config.exists():
        config = _alpaca_config(directory)
    log = directory / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alpaca_simulators.run_simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--config",
                str(config),  # absolute: the simulator joins it to its own config dir
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    url = f"http://127.0.0.1:{port}/api/v1/camera/0/connected"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    _wait_ready(proc, ready, log, "alpaca-simulators")
    return proc


@pytest.fixture(scope="session")
def alpaca_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running alpaca-simulators server."""
    port = free_port()
    proc = start_alpaca(tmp_path_factory.mktemp("alpaca"), port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


# ---------------------------------------------------------------------------- INDI


def _indi_home(home: Path) -> None:
    """A saved config for the CCD simulator, which it loads on start: poll every 100 ms (the
    end of an exposure is noticed on a poll; the default is 1 s)."""
    indi = home / ".indi"
    indi.mkdir(parents=True)
    (indi / f"{INDI_CCD}_config.xml").write_text(
        "<INDIDriver>\n"
        f'<newNumberVector device="{INDI_CCD}" name="POLLING_PERIOD">\n'
        '<oneNumber name="PERIOD_MS">100</oneNumber>\n'
        "</newNumberVector>\n"
        "</INDIDriver>\n"
    )


def _indi_sensor_size(port: int) -> None:
    """Give the CCD simulator a non-default sensor (it does not load this from its config)."""
    import PyIndi

    client = PyIndi.BaseClient()
    client.setServer("127.0.0.1", port)
    assert client.connectServer(), "indiserver does not accept connections"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            device = client.getDevice(INDI_CCD)
            settings = device.getNumber("SIMULATOR_SETTINGS") if device else None
            if settings is not None and settings.isValid():
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{INDI_CCD} did not define SIMULATOR_SETTINGS")
            time.sleep(0.05)
        width, height = INDI_SENSOR
        settings.findWidgetByName("SIM_XRES").setValue(width)
        settings.findWidgetByName("SIM_YRES").setValue(height)
        client.sendNewNumber(settings)
        time.sleep(0.2)
    finally:
        client.disconnectServer()


def start_indi(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """Start indiserver with the simulator drivers on ``port`` (``HOME``, socket and log in
    ``directory``), wait until it answers and set the CCD simulator's sensor size. Called again
    with the same arguments, it restarts the server as it was (saved configs and park data
    included)."""
    exe = shutil.which("indiserver")
    missing = [d for d in INDI_DRIVERS if shutil.which(d) is None]
    if exe is None or missing:
        pytest.fail(
            f"indiserver or drivers missing ({', '.join(missing) or 'indiserver'}); {INSTALL_HINT}"
        )
    if importlib.util.find_spec("PyIndi") is None:
        pytest.fail(f"pyindi-client is not installed; {INSTALL_HINT}")
    home = directory / "home"
    if not home.exists():
        _indi_home(home)
    log = directory / "server.log"
    env = {**os.environ, "HOME": str(home)}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                exe,
                "-p",
                str(port),
                "-u",
                str(directory / "indiserver.sock"),
                "-r",
                "0",
                *INDI_DRIVERS,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    try:
        _wait_ready(proc, ready, log, "indiserver")
        _indi_sensor_size(port)
    except BaseException:
        stop(proc)
        raise
    return proc


@pytest.fixture(scope="session")
def indi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running indiserver with the simulator drivers."""
    port = free_port()
    proc = start_indi(tmp_path_factory.mktemp("indi"), port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


# ---------------------------------------------------------------------------- rigs


@dataclass
class Rig:
    """One back-end's devices, connected, and what its simulator was configured with."""

    backend: str
    camera: Camera
    filter_wheel: FilterWheel
    focuser: Focuser
    mount: Mount
    safety: SafetyMonitor
    sensor: tuple[int, int]
    filters: list[str] | None  # expected names, None: whatever the simulator has
    address: str

    def all(self) -> list[Device]:
        return [self.camera, self.filter_wheel, self.focuser, self.mount, self.safety]


SIM_SENSOR = (640, 480)


def sim_equipment() -> Equipment:
    """The built-in simulator, configured like the Alpaca simulator where it matters."""
    width, height = SIM_SENSOR
    return Equipment.model_validate(
        {
            "name": "simulator",
            "camera": {"width": width, "height": height, "download_time": 0.05},
            "filter_wheel": {"filters": [{"name": n} for n in ALPACA_FILTERS], "change_time": 0.2},
            "focuser": {"max_position": 100_000, "speed": 5000},
            "mount": {"slew_rate": 10, "settle_time": 0},
            "safety": {},
        }
    )


def equipment(backend: str, address: str) -> Equipment:
    by_backend: dict[str, dict[str, int | str]] = {
        "alpaca": dict.fromkeys(("camera", "filter_wheel", "focuser", "mount", "safety"), 0),
        "indi": {
            "camera": INDI_CCD,
            "filter_wheel": INDI_WHEEL,
            "focuser": INDI_FOCUSER,
            "mount": INDI_MOUNT,
            "safety": INDI_WEATHER,
        },
    }
    names = by_backend[backend]

    def conn(key: str) -> dict[str, Any]:
        return {"backend": backend, "address": address, "device": names[key]}

    return Equipment.model_validate(
        {
            "name": f"{backend}-simulators",
            "camera": conn("camera"),
            "filter_wheel": {**conn("filter_wheel"), "filters": [{"name": "L"}]},
            "focuser": {**conn("focuser"), "max_position": 100_000},
            "mount": conn("mount"),
            "safety": conn("safety"),
        }
    )


BACKENDS = ["alpaca", "indi"]
#: The contract also holds for the built-in simulator (no server, built by the factory).
RIG_BACKENDS = ["simulator", *BACKENDS]


def build(backend: str, eq: Equipment) -> dict[str, Device]:
    """The back-end's builder, as the device factory calls it."""
    clock = ScaledClock()
    if backend == "alpaca":
        from runner.devices.alpaca import build_alpaca_devices

        return build_alpaca_devices(eq, clock)
    from runner.devices.indi import build_indi_devices

    return build_indi_devices(eq, clock)


def _sim_devices(rigset: Any) -> Iterator[tuple[str, Device]]:
    for key in ("camera", "filter_wheel", "focuser", "mount", "safety"):
        device = getattr(rigset, key)
        assert isinstance(device, Device), f"the simulator rig has no {key}"
        yield key, device


@pytest.fixture(params=RIG_BACKENDS)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    backend: str = request.param
    devices: dict[str, Device]
    filters: list[str] | None
    if backend == "simulator":
        from runner.devices.factory import build_devices

        address = ""
        devices = dict(_sim_devices(build_devices(sim_equipment(), ScaledClock())))
        sensor, filters = SIM_SENSOR, ALPACA_FILTERS
    else:
        address = request.getfixturevalue(f"{backend}_server")
        devices = build(backend, equipment(backend, address))
        sensor, filters = (
            (ALPACA_SENSOR, ALPACA_FILTERS) if backend == "alpaca" else (INDI_SENSOR, None)
        )
    assert set(devices) == {"camera", "filter_wheel", "focuser", "mount", "safety"}
    camera, wheel, focuser, mount, safety = (
        devices["camera"],
        devices["filter_wheel"],
        devices["focuser"],
        devices["mount"],
        devices["safety"],
    )
    assert isinstance(camera, Camera) and isinstance(wheel, FilterWheel)
    assert isinstance(focuser, Focuser) and isinstance(mount, Mount)
    assert isinstance(safety, SafetyMonitor)
    connected: list[Device] = []
    try:
        for device in devices.values():
            await device.connect()
            connected.append(device)
        yield Rig(backend, camera, wheel, focuser, mount, safety, sensor, filters, address)
    finally:
        for device in connected:
            await device.disconnect()
