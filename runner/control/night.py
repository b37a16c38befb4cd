"""A night with its control plane around it (``nightrunner run``): the plane starts before
the devices connect and stops after the shutdown, and its failure never touches the night."""

from __future__ import annotations

from typing import Any

from runner.control.hub import Hub
from runner.control.server import ControlPlane


async def run_served(run: Any, plane: ControlPlane | None) -> Any:
    """``await run.execute()`` with ``plane`` serving it (None: no control plane)."""
    import asyncio

    if plane is None:
        return await run.execute()
    hub: Hub = plane.hub
    run.listeners.append(hub.events)
    hub.attach(run)  # before the plane answers: its first status is the night's, never idle
    try:
        await plane.start()
        run.warnings.extend(f"control plane: {p}; the night goes on without it"
                            for p in plane.problems)
        task = asyncio.create_task(run.execute())
        hub.night_task = task
        return await task
    finally:
        hub.detach()
        await plane.stop()

