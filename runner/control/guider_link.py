"""The hub's own hold on PHD2 between nights, and which PHD2 connection a guider method uses.

While a night runs with a guider, the guider methods act on the night's own ``PHD2Client``
(``PHD2Guider.client``), so a remote guide or dither is serialised with the night's and the
night's state tracking sees it. Otherwise they act on the hub's own client, opened by
``guider.connect_server`` and kept here per hub, with the simulator or PHD2 process that
``guider.start_phd2`` started. ``close_hub_guider`` lets go of all of it when the hub stops.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.control.hub import Hub, is_loopback
from runner.control.protocol import RpcError
from runner.guiding.phd2_client import PHD2Client
from runner.guiding.phd2_process import PHD2Process

DEFAULT_PORT = 4400


@dataclass
class HubGuider:
    """What the hub holds of PHD2 between nights."""

    client: PHD2Client | None = None
    simulator: Any = None  # runner.guiding.sim.PHD2Simulator started by start_phd2
    process: PHD2Process | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def started_port(self) -> int | None:
        if self.simulator is not None:
            port: int = self.simulator.port
            return port
        return self.process.port if self.process is not None and self.process.running else None


_LINKS: weakref.WeakKeyDictionary[Hub, HubGuider] = weakref.WeakKeyDictionary()


def hub_guider(hub: Hub) -> HubGuider:
    link = _LINKS.get(hub)
    if link is None:
        link = _LINKS[hub] = HubGuider()
    return link


async def close_hub_guider(hub: Hub) -> None:
    """Close the hub's own PHD2 connection and stop the simulator it started (a PHD2
    executable it started keeps running: it is the user's application)."""
    link = _LINKS.pop(hub, None)
    if link is None:
        return
    if link.client is not None:
        await link.client.disconnect_server()
    if link.simulator is not None:
        await link.simulator.stop()


def night_client(hub: Hub) -> PHD2Client | None:
    run = hub.run
    services = getattr(getattr(run, "executor", None), "s", None)
    client = getattr(getattr(services, "guider", None), "client", None)
    return client if isinstance(client, PHD2Client) else None


def guider_client(hub: Hub) -> PHD2Client:
    night = night_client(hub)
    if night is not None:
        return night
    own = hub_guider(hub).client
    if own is None:
        raise RpcError("no PHD2 connection: no night is guiding; call guider.connect_server "
                       "first")
    return own


def guider_profile(hub: Hub) -> Any:
    return getattr(hub.equipment, "guider", None)


def guider_host(hub: Hub) -> str:
    prof = guider_profile(hub)
    return str(prof.host) if prof is not None else "127.0.0.1"


async def start_simulator(hub: Hub, link: HubGuider, port: int) -> int:
    from runner.clock import ScaledClock
    from runner.guiding.sim import PHD2Simulator

    world = getattr(hub.devices, "world", None)
    sim = PHD2Simulator.from_equipment(hub.equipment, clock=hub.clock or ScaledClock(),
                                       world=world, port=port)
    try:
        await sim.start()
    except OSError:
        sim.port = 0  # the profile's port is taken (a real PHD2?): any free one
        await sim.start()
    link.simulator = sim
    return int(sim.port)


async def start_executable(link: HubGuider, host: str, port: int, path: str | None) -> int:
    from runner.guiding.phd2_process import start_phd2 as run_phd2

    if not is_loopback(host):
        raise RpcError(f"start_phd2: the profile's PHD2 runs on {host}, not on this hub; "
                       "start it there")
    if not path:
        raise RpcError("start_phd2: give path, the full path of the PHD2 executable")
    exe = Path(path)
    if not exe.is_absolute() or exe.stem.lower() != "phd2":
        raise RpcError(f"start_phd2: {path!r} is not a PHD2 executable (an absolute path to "
                       "phd2, phd2.bin, phd2.exe or PHD2)")
    if port < DEFAULT_PORT:
        raise RpcError(f"start_phd2: PHD2 listens on 4400 + instance - 1, not {port}")
    link.process = await run_phd2(exe, instance=port - DEFAULT_PORT + 1, host=host)
    return link.process.port
