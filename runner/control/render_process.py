"""Renderings for the web made in a separate, lower-priority process (``render_worker``).

Started at the first rendering (a night nobody watches starts nothing), one request at a
time, each with a time limit. Whatever goes wrong with the process — it cannot start, dies,
hangs, answers garbage — the rendering is made in a thread of this process instead, as before
the process existed, and the process is started again at the next rendering after a pause:
the web shows the picture either way, and the night never waits for any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import threading
import time
from typing import Any

from runner.control import render_worker

log = logging.getLogger("nightrunner.control")

TIMEOUT_S = 20.0  # one rendering; then the process is killed
RETRY_AFTER_S = 30.0  # after a failure, renderings are made here for this long


class RenderProcess:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._failed_at = -float("inf")
        self._closed = False

    async def call(self, name: str, *args: Any) -> Any:
        """``render_worker.FUNCTIONS[name](*args)``, in the process when it works."""
        return await asyncio.to_thread(self._call, name, args)

    def _call(self, name: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            proc = self._running()
            if proc is not None:
                try:
                    return self._roundtrip(proc, name, args)
                except _WorkerError as exc:
                    if self._closed:  # ended by close(): nothing to report
                        self._stop()
                    else:
                        self._fail(f"render process: {exc}; rendering in-process for a while")
        return render_worker.FUNCTIONS[name](*args)

    def _running(self) -> subprocess.Popen[bytes] | None:
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc
            self._stop()  # ended by itself (killed, say): start another
        if self._closed or time.monotonic() - self._failed_at < RETRY_AFTER_S:
            return None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "runner.control.render_worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True,  # a ^C at the terminal is the night's, not ours
            )
        except OSError as exc:
            self._fail(f"render process did not start: {exc}")
            return None
        return self._proc

    def _roundtrip(self, proc: subprocess.Popen[bytes], name: str, args: tuple[Any, ...]) -> Any:
        assert proc.stdin is not None and proc.stdout is not None
        timer = threading.Timer(TIMEOUT_S, proc.kill)  # a hung rendering ends the read below
        timer.start()
        try:
            render_worker.write_message(proc.stdin, (name, args))  # type: ignore[arg-type]
            status, value = render_worker.read_message(proc.stdout)  # type: ignore[arg-type]
        except (OSError, EOFError, ValueError) as exc:
            raise _WorkerError(f"{type(exc).__name__}: {exc}" if str(exc) else
                               "the process ended") from exc
        except Exception as exc:  # an unpickling error of any kind
            raise _WorkerError(f"unreadable reply ({type(exc).__name__})") from exc
        finally:
            timer.cancel()
        if status == "ok":
            return value
        raise RenderError(str(value))  # the rendering itself failed: the picture is bad

    def _fail(self, message: str) -> None:
        log.warning("%s", message)
        self._failed_at = time.monotonic()
        self._stop()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """End the process (it also ends by itself when this process dies: its input closes)."""
        self._closed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # a rendering in progress ends now, not at its time limit
        with self._lock:
            self._stop()


class RenderError(Exception):
    """The rendering failed in the process (an unreadable frame, say)."""


class _WorkerError(Exception):
    """The process failed, not the rendering."""
