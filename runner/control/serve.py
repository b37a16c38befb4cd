"""``nightrunner serve``: a hub that holds the rig's devices between nights, serves the
control plane and runs plans sent over RPC (``run_plan``), at most one night at a time."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from runner.clock import ScaledClock
from runner.control.hub import Hub
from runner.control.server import ControlPlane, parse_address, read_token
from runner.errors import ConfigError
from runner.schedule.hub_link import start_scheduler, stop_scheduler


async def serve_forever(
    equipment_path: Path | None, data_dir: Path, rpc: str, tcp: str,
    token_file: Path | None, tls_cert: Path | None, tls_key: Path | None,
    speed: float | None, plan_dirs: list[Path] | None = None,
) -> int:
    from runner.devices.factory import build_devices
    from runner.plan.loader import BUILTIN_PROFILES, load_equipment

    path = equipment_path or BUILTIN_PROFILES / "simulator.yaml"
    equipment, diags = load_equipment(path)
    if equipment is None:
        raise ConfigError("; ".join(d.format() for d in diags) or f"cannot load {path}")
    clock = ScaledClock(speed=speed or equipment.simulation.speed)
    devices = build_devices(equipment, clock)
    hub = Hub(data_dir, token=read_token(None, token_file), devices=devices,
              equipment=equipment, clock=clock,
              plan_dirs=[*(plan_dirs or []), data_dir / "plans"])
    plane = ControlPlane(hub, http=parse_address(rpc, 8765), tcp=parse_address(tcp, 8800),
                         certfile=tls_cert, keyfile=tls_key)
    plane.check()
    await devices.connect_all()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if hub.night_active:
            hub.run.abort(f"signal {name}: the hub is stopping")
        stop.set()

    def ignored(name: str) -> None:
        # SIGUSR1/2 would kill the hub, and with it a night, without its safe shutdown
        bus = getattr(hub.run, "bus", None) if hub.night_active else None
        if bus is not None:
            bus.emit("warning", message=f"signal {name} ignored (the hub goes on)")

    # the same signals as `nightrunner run`: each ends the night in its safe shutdown (and
    # stops the hub), or is harmless
    from runner.engine.run import HARMLESS_SIGNALS, SAFE_STOP_SIGNALS

    for sig in SAFE_STOP_SIGNALS + HARMLESS_SIGNALS:
        loop.add_signal_handler(sig, on_signal if sig in SAFE_STOP_SIGNALS else ignored,
                                signal.Signals(sig).name)
    hub.start_night = lambda plan, resume=False: _start_night(hub, plan, speed, resume)
    scheduler = None
    try:
        await plane.start()
        for problem in plane.problems:
            print(f"warning: {problem}", flush=True)
        if not plane.bound:
            return 1
        print(f"nightrunner serve: {plane.url() or '-'} (HTTP, WebSocket /ws), "
              f"tcp {plane.bound.get('tcp')}; data {data_dir}", flush=True)
        scheduler = start_scheduler(hub, data_dir, clock)
        await stop.wait()
        if hub.night_task is not None:
            await asyncio.wait({hub.night_task})
        return 0
    finally:
        for sig in SAFE_STOP_SIGNALS + HARMLESS_SIGNALS:
            loop.remove_signal_handler(sig)
        await stop_scheduler(scheduler)
        await plane.stop()  # closes the hub's PHD2 link and simulator too
        with contextlib.suppress(Exception):
            await devices.disconnect_all()


async def _start_night(
    hub: Hub, plan_path: Path, speed: float | None, resume: bool = False
) -> dict[str, Any]:
    from runner.control.protocol import RpcError
    from runner.engine.run import Run, RunOptions
    from runner.notify import attach_notifier
    from runner.plan.loader import load_plan

    if not await asyncio.to_thread(plan_path.is_file):
        raise RpcError(f"no plan file at {plan_path}")
    result = await asyncio.to_thread(load_plan, plan_path)
    text = await asyncio.to_thread(plan_path.read_bytes)
    if not result.ok or result.plan is None or result.equipment is None:
        raise RpcError("invalid plan: " + "; ".join(d.format() for d in result.diagnostics))
    options = RunOptions(data_dir=hub.data_dir, speed=speed, progress="none", resume=resume,
                         plan_text=text, plan_path=plan_path)
    # the plan's devices are the hub's: it runs on the rig the hub holds
    run = Run(result.plan, hub.equipment, options, devices=hub.devices, clock=hub.clock,
              listeners=[hub.events])
    attach_notifier(run)  # delivered in the background; the workers end with the night
    task = asyncio.create_task(run.execute())
    hub.attach(run, task)
    task.add_done_callback(lambda _t: hub.detach())
    return {"started": True, "plan": result.plan.name}
