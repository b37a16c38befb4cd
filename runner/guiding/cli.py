"""``nightrunner sim phd2``: run the PHD2 simulator as a standalone server.

The lead mounts ``app`` under the ``sim`` group; any PHD2 client (N.I.N.A., Ekos, phd2client,
ours) can then connect to it as to a real PHD2. It runs until interrupted or until a client
sends ``shutdown``.
"""

from __future__ import annotations

import asyncio
import logging

import typer

from runner.clock import ScaledClock
from runner.guiding.sim import GuideCameraParams, PHD2Simulator

app = typer.Typer(help="Simulators.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Keeps ``phd2`` a named sub-command when this app is mounted as a group."""


@app.command("phd2")
def phd2(
    port: int = typer.Option(4400, help="TCP port (PHD2 instance N listens on 4400+N-1)."),
    speed: float = typer.Option(1.0, min=0.001, help="Simulated seconds per real second."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    exposure: float = typer.Option(2.0, min=0.01, help="Guide exposure, s."),
    pixel_scale: float = typer.Option(2.5, min=0.01, help="Guide camera scale, arcsec/px."),
    seed: int = typer.Option(42, help="Random seed (the simulation is deterministic)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log requests and clients."),
) -> None:
    """Run a simulated PHD2 event server."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        sim = PHD2Simulator(
            clock=ScaledClock(speed=speed), host=host, port=port, exposure_s=exposure,
            camera=GuideCameraParams(pixel_scale_arcsec=pixel_scale), seed=seed,
        )
        try:
            await sim.start()
        except OSError as exc:
            typer.echo(f"error: cannot listen on {host}:{port}: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"PHD2 simulator listening on {host}:{sim.port} (speed ×{speed:g})")
        try:
            await sim.serve_until_shutdown()
        finally:
            await sim.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        typer.echo("stopped")


if __name__ == "__main__":
    app()
