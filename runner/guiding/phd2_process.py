"""Start and stop a PHD2 executable (seed 001's start_phd2 / stop_phd2).

PHD2 opens its event server on port 4400 + instance − 1 a moment after it starts; "started" here
means that port answers with PHD2's Version event, not merely that the process exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.errors import GuiderConnectionError, GuiderError
from runner.guiding.phd2_client import PHD2Client, scan_servers

log = logging.getLogger(__name__)


@dataclass
class PHD2Process:
    """A PHD2 we started: the process and the event-server port it listens on."""

    process: asyncio.subprocess.Process
    path: Path
    host: str
    port: int

    @property
    def running(self) -> bool:
        return self.process.returncode is None


def default_port(instance: int) -> int:
    return 4400 + instance - 1


async def start_phd2(
    path: str | Path,
    *,
    instance: int = 1,
    args: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout_s: float = 60.0,
) -> PHD2Process:
    """Run the PHD2 executable at ``path`` and wait until its event server answers.

    ``instance`` > 1 passes ``-i N`` as PHD2 expects; ``port`` overrides the port probed (for
    wrappers that choose their own). Timeouts here are real seconds: a process starts in wall
    time whatever the engine clock says.
    """
    exe = Path(path)
    runnable = await asyncio.to_thread(lambda: exe.is_file() and os.access(exe, os.X_OK))
    if not runnable:
        raise GuiderError(f"PHD2 executable not found or not executable: {exe}")
    argv = [str(exe), *(["-i", str(instance)] if instance != 1 else []), *args]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        raise GuiderError(f"cannot start PHD2 ({exe}): {exc}") from exc
    target = port if port is not None else default_port(instance)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + startup_timeout_s
    while loop.time() < deadline:
        if proc.returncode is not None:
            raise GuiderError(f"PHD2 ({exe}) exited with code {proc.returncode} during startup")
        if await scan_servers(host, [target], timeout_s=1.0):
            log.info("PHD2 started (pid %s), event server on %s:%s", proc.pid, host, target)
            return PHD2Process(process=proc, path=exe, host=host, port=target)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await proc.wait()
    await _terminate(proc, 5.0)
    raise GuiderError(
        f"PHD2 ({exe}) did not open its event server on {host}:{target} "
        f"within {startup_timeout_s:g} s"
    )


async def stop_phd2(
    phd2: PHD2Process, *, client: PHD2Client | None = None, timeout_s: float = 15.0
) -> None:
    """Ask PHD2 to shut down (over ``client`` or a fresh connection); terminate it if it
    does not exit within ``timeout_s`` real seconds."""
    if not phd2.running:
        return
    try:
        if client is not None and client.connected:
            await client.shutdown_phd2()
        else:
            tmp = PHD2Client(phd2.host, phd2.port, auto_reconnect=False)
            await tmp.connect_server()
            await tmp.shutdown_phd2()
    except GuiderConnectionError as exc:
        log.warning("could not ask PHD2 to shut down (%s); terminating it", exc)
    try:
        async with asyncio.timeout(timeout_s):
            await phd2.process.wait()
    except TimeoutError:
        log.warning("PHD2 (pid %s) ignored shutdown; terminating", phd2.process.pid)
        await _terminate(phd2.process, timeout_s)


async def _terminate(proc: asyncio.subprocess.Process, timeout_s: float) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        async with asyncio.timeout(timeout_s):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
