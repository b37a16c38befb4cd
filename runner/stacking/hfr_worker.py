"""The HFR of every light, measured in a child process.

``sep`` (background and extraction) holds the GIL for its whole call: 120 ms on a 2048² frame,
about 2 s on a 61 MP one. In a thread beside the night's event loop that stalled the loop for
as long — every status request and event of the control plane waited (``bench_control``:
loop lag p99 124 ms against 50 ms, status p99 106 ms against 20 ms). One long-lived worker
process measures instead: ``python -m runner.stacking.hfr_worker``, a fresh interpreter (not
a fork of this threaded process, and unlike multiprocessing's spawn it never re-imports the
caller's main module, which would run a user's script again). The frame travels through shared
memory, one copy; requests and answers are JSON lines on the child's stdin and stdout; the
numbers are those of :func:`runner.stacking.detect.measure_hfr` in-process.
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import threading
from multiprocessing import shared_memory
from typing import IO, Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger("nightrunner.engine")

#: real seconds one measurement may take (a 61 MP frame takes ~2 s)
TIME_LIMIT_S = 120.0


class HfrWorker:
    """``measure_hfr`` with the work in a child process; blocking (call it in a thread).
    Started at the first frame; :meth:`close` at the end of the night. A child that fails
    is replaced by in-process measurement (slower for the loop, never a lost number)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._broken = False

    def __call__(self, data: npt.NDArray[Any]) -> float | None:
        from runner.stacking.detect import measure_hfr

        if self._broken:
            return measure_hfr(data)
        with self._lock:  # one frame at a time (the frame writer sends them in order)
            shm = shared_memory.SharedMemory(create=True, size=max(1, data.nbytes))
            try:
                np.ndarray(data.shape, dtype=data.dtype, buffer=shm.buf)[...] = data
                return self._ask({"shm": shm.name, "shape": list(data.shape),
                                  "dtype": data.dtype.str})
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("HFR worker failed (%s); measuring in-process from now on", exc)
                self._broken = True
                self._stop()
                return measure_hfr(data)
            finally:
                shm.close()
                shm.unlink()

    def _ask(self, request: dict[str, Any]) -> float | None:
        if self._proc is not None and self._proc.poll() is not None:
            self._stop()  # it died: its pipes go with it, a new one starts
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "runner.stacking.hfr_worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, bufsize=1)
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        # one answer per request, so nothing is buffered ahead: the pipe itself says when
        ready, _, _ = select.select([stdout], [], [], TIME_LIMIT_S)
        if not ready:
            self._proc.kill()
            raise RuntimeError(f"no answer within {TIME_LIMIT_S:g} s")
        line = stdout.readline()
        if not line:
            raise RuntimeError("the worker exited")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(str(answer["error"]))
        hfr = answer["hfr"]
        return None if hfr is None else float(hfr)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the worker ends at EOF
        except OSError:  # it died with a request half sent
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def close(self) -> None:
        with self._lock:
            self._stop()


def _serve(requests: IO[str], answers: IO[str]) -> None:
    """The child: one JSON request per line, one answer per line, until EOF."""
    from runner.stacking.detect import measure_hfr

    for line in requests:
        try:
            req = json.loads(line)
            shm = shared_memory.SharedMemory(name=req["shm"])
            try:
                frame = np.ndarray(tuple(req["shape"]), dtype=np.dtype(req["dtype"]),
                                   buffer=shm.buf)
                answer: dict[str, Any] = {"hfr": measure_hfr(frame)}
                del frame
            finally:
                shm.close()
        except Exception as exc:  # the parent measures in-process from then on
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    # the parent created the segment and unlinks it: this process only looks at it, so its
    # resource tracker must not unlink it at exit
    from multiprocessing import resource_tracker

    resource_tracker.register = lambda *a, **k: None
    _serve(sys.stdin, sys.stdout)
