"""Running a plan: in-process (Dask's synchronous scheduler) or on a Dask cluster.

The same graph either way, so the same bits either way. On a cluster the client submits the
graph and watches the per-frame report keys for progress; a worker that dies takes its
in-memory results with it and the scheduler recomputes them from their inputs (every task is
pure), so the outputs do not change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from distributed import WorkerPlugin

from runner.memory import keep_frame_buffers
from runner.restack.graph import Key, Plan
from runner.restack.output import GroupSummary
from runner.restack.tasks import FrameReport

OnReport = Callable[[int, FrameReport], None]  # (group index, report)

CONNECT_TIMEOUT_S = 10.0  # to reach a scheduler given with --scheduler
TINY_JOB_FRAMES = 24  # fewer frames than this: in-process (a cluster costs ~2 s to start)


@dataclass(frozen=True)
class Target:
    """Where to run: in-process, a LocalCluster of ``workers``, or a scheduler address."""

    scheduler: str | None = None
    workers: int | None = None  # None: sized to the machine; 0: in-process

    def in_process(self, frames: int) -> bool:
        if self.scheduler is not None:
            return False
        if self.workers is None:
            return frames < TINY_JOB_FRAMES
        return self.workers == 0


def run_in_process(plan: Plan, on_report: OnReport | None = None) -> list[GroupSummary]:
    from dask.callbacks import Callback
    from dask.local import get_sync

    keep_frame_buffers()

    def posttask(key: Any, result: Any, *_: Any) -> None:
        where = plan.reports.get(key)
        if where is not None and on_report is not None:
            on_report(where[0], result)

    with Callback(posttask=posttask):
        out = get_sync(plan.dsk, plan.writes)
    return list(out)


class OneOpenCVThread(WorkerPlugin):
    """Worker plugin: OpenCV single-threaded in the workers, and freed frame buffers kept for
    the next frame (:mod:`runner.memory`).

    Dask's worker threads are the parallelism; OpenCV's own thread pool on top of them would
    oversubscribe the cores (and let a 1-worker run use every core, hiding the scaling).
    Registered as a plugin, so a worker that joins or restarts later gets it too.
    """

    name = "nightrunner-restack-opencv-threads"

    def setup(self, worker: Any) -> None:
        import cv2

        cv2.setNumThreads(1)
        keep_frame_buffers()


def run_on_client(
    plan: Plan, client: Any, on_report: OnReport | None = None
) -> list[GroupSummary]:
    from distributed import as_completed

    if plan.in_process:
        raise ValueError("this plan updates accumulators in place: in-process only")
    client.register_plugin(OneOpenCVThread())
    report_keys: list[Key] = list(plan.reports)
    futures = client.get(plan.dsk, [*plan.writes, *report_keys], sync=False)
    writes, reports = futures[: len(plan.writes)], futures[len(plan.writes) :]
    where = {f.key: plan.reports[k] for f, k in zip(reports, report_keys, strict=True)}
    try:
        for fut in as_completed(reports):
            report = fut.result()
            if on_report is not None:
                on_report(where[fut.key][0], report)
        return list(client.gather(writes))
    finally:
        for f in futures:
            f.release()


@contextmanager
def connect(target: Target) -> Iterator[Any]:
    """A distributed Client for ``target`` (a LocalCluster is closed on exit)."""
    from distributed import Client, LocalCluster

    if target.scheduler is not None:
        with Client(target.scheduler, timeout=f"{CONNECT_TIMEOUT_S}s") as client:
            yield client
        return
    n = target.workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run(plan: Plan, target: Target, on_report: OnReport | None = None,
        on_client: Callable[[Any], None] | None = None) -> list[GroupSummary]:
    """Run ``plan`` (built with ``in_process=target.in_process(frames)``) on ``target``."""
    frames = sum(len(g.frames) for g in plan.groups)
    if target.in_process(frames) != plan.in_process:
        raise ValueError("the plan was built for another target")
    if plan.in_process:
        return run_in_process(plan, on_report)
    with connect(target) as client:
        if on_client is not None:
            on_client(client)
        return run_on_client(plan, client, on_report)
