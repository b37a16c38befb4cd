"""The live stacker: seed 004's stacker API as a Python object the engine and control plane call.

Acquisition must never wait for stacking. :meth:`LiveStacker.submit` only puts the frame (a
FITS path, normally) on a bounded queue and returns at once; when the queue is full the frame
is dropped and counted. One worker thread does all the work.

Thread, not process (measured, see docs/stacking.md and ``benchmarks/bench_stacking.py``): the
numpy, OpenCV and sep calls that make up >95 % of the work release the GIL, so a thread runs at
full speed beside the asyncio loop while the loop stays responsive (loop latency is measured by
the benchmark), and status, histograms and previews are read from shared memory instead of
being shipped between processes. Frames travel as paths either way.

Status follows seed 004: ``status`` (idle, stacking, paused, finished, failed), ``frames``
(received), ``processed``, ``stacked``, ``dropped`` and ``error_message``. ``dropped`` counts
both frames the worker could not keep up with (``dropped_overload``) and frames that could
not be registered or read (``unregistered``, ``failed``): none of them is in the stack.

The package's modules, one part of :class:`LiveStacker` each: ``state`` (counters, the
session, status), ``outputs`` (histograms, preview, result files, the debug log), ``worker``
(the worker thread) and ``control`` (start, submit, pause, resume, stretch, save, cancel).
"""

from runner.stacking.live.control import LiveStacker

__all__ = ["LiveStacker"]
