"""Keep frame-sized buffers in the heap (glibc only), in every process that handles frames: the
night's, ``nightrunner restack`` in-process and its Dask workers.

Every frame allocates a few arrays of 16–64 MB. glibc serves such sizes with fresh ``mmap``s and
returns them on ``free``, so each frame faults its buffers in again: measured 31 ms instead of
19 ms to render one 2048² simulated frame in the engine process (benchmarks/bench_engine.py).
Raising the mmap and trim thresholds lets freed frame buffers be reused. The cost is that the
process keeps up to a few frames' worth of freed memory — nothing for a sequencer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_THRESHOLD = 512 * 1024 * 1024  # bytes; glibc caps the mmap threshold at HEAP_MAX/2 on 64-bit
_done = False


def keep_frame_buffers() -> bool:
    """Tune malloc once per process; False where it is not glibc (nothing to tune)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and friends: no mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, _THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, 2 * _THRESHOLD)
    )
    _done = ok
    return ok
