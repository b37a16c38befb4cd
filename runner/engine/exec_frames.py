"""Exposures and frames: settings sent to the camera, a frame taken (intent journalled first),
written behind the loop (FrameWriter: HFR measured, file written, journalled, stacked), the
calibration sets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from runner.devices.interfaces import Frame, GuideStats
from runner.engine import actions
from runner.engine import triggers as trig
from runner.engine.compiler import Leaf
from runner.engine.exec_gaps import GapsMixin
from runner.engine.exec_types import (
    Scope,
    _Taken,
)
from runner.engine.journal import frame_entry
from runner.errors import (
    DeviceError,
)
from runner.plan.models import (
    CalibrationStep,
    ExposeArgs,
    FrameType,
)

log = logging.getLogger("nightrunner.engine")


def _not_cancelled() -> None:
    """Before each frame of a step: a cancellation (an abort, a skip) that a device call
    swallowed — asyncio.wait_for in a library, a thread's result landing with it — still ends
    the step, instead of the step taking all its frames first."""
    me = asyncio.current_task()
    if me is not None and me.cancelling():
        raise asyncio.CancelledError


class FramesMixin(GapsMixin):
    """Taking and writing frames."""

    def _settings(self, a: ExposeArgs) -> tuple[int, int | None, int | None]:
        d = self.p.plan.defaults.expose
        binning = a.binning or d.binning
        gain = a.gain if a.gain is not None else d.gain
        offset = a.offset if a.offset is not None else d.offset
        return binning, gain, offset

    async def _expose_step(self, leaf: Leaf, a: ExposeArgs, scope: Scope) -> None:
        if a.filter is not None:
            await self._change_filter(a.filter)
        for n in range(a.count):
            _not_cancelled()
            key = f"{leaf.id}{scope.suffix}#f{n}"
            if key in self.done_frames:
                self.counters.skipped_resume += 1
                continue
            await self._take_frame(key, a, a.type, a.exposure, scope, of=(n + 1, a.count))

    async def _take_frame(
        self, key: str, a: ExposeArgs, frame_type: FrameType, seconds: float, scope: Scope,
        *, subdir: str | None = None, of: tuple[int, int] | None = None,
    ) -> Path:
        """``of``: this is frame k of the step's n (status and events say so)."""
        light = frame_type is FrameType.light
        if light:
            await self._before_light(scope, seconds)
        s = self.s
        cam = s.camera
        await self._apply_settings(a)
        timeout = seconds + self.p.equipment.camera.download_time + self.p.equipment.exposure_margin
        if s.guider is not None and self.guiding:
            s.guider.start_stats()
        k, n = of if of is not None else (None, None)
        self.current_exposure = {"key": key, "seconds": seconds, "type": frame_type.value,
                                 "started": s.clock.now().isoformat(), "frame": k, "of": n}
        self.bus.emit("exposure_start", key=key, seconds=seconds, type=frame_type.value,
                      filter=self.filter, target=self.target.target.name if self.target else None,
                      frame=k, of=n)
        frame = await actions.expose(cam, s.clock, seconds, frame_type.value, timeout)
        self.current_exposure = None
        self.bus.emit("exposure_end", key=key)
        stats: GuideStats | None = (
            s.guider.stats() if (s.guider is not None and self.guiding) else None
        )
        meta = await self._frame_meta(frame, stats, None, subdir)
        meta["key"] = key  # written into the file: --resume keeps a frame the journal lost
        target_path = s.frames.allocate(frame, meta)
        # intent first: --resume adopts a file that was written but never journalled
        self.journal.record("writing", key=key, path=str(target_path), durable=False)
        # what the loop logic counts is taken now (the frame is in memory); what survives a
        # crash (the journal) only once the file is on disk
        self.done_frames[key] = str(target_path)
        if light:
            self.light_keys.add(key)
            self._lights_taken += 1
            trig.light_frame_done(self.state, None)  # counts now; the HFR when measured
            self.state.light_filter = self.filter
        taken = _Taken(key, frame, frame_type, meta, target_path, seconds, stats,
                       self.target.target.name if self.target else None, self.filter,
                       self.state.to_dict(), self._focus_generation, self.stack)
        await self.writer.submit(lambda: self._write_frame(taken), frame.data.nbytes, key)
        return target_path

    async def _write_frame(self, t: _Taken) -> None:
        """Behind the exposure loop (FrameWriter): measure, write, journal, announce, stack."""
        s = self.s
        light = t.frame_type is FrameType.light
        hfr = None
        if light:  # every light, for the FITS card, the index and the report
            if s.measure_hfr is not None:
                hfr = await asyncio.to_thread(s.measure_hfr, t.frame.data)
            if hfr is not None:
                hfr = round(hfr, 2)
            t.meta["hfr"] = hfr
            if t.focus_generation == self._focus_generation:  # not a frame from before a refocus
                trig.hfr_measured(self.state, hfr)
        path = await s.frames.save(t.frame, t.meta, t.path)
        # the journal is written only after the file is in place
        self.journal.record("frame", **frame_entry(
            t.key, str(path), frame_type=t.frame_type.value, filter_name=t.filter,
            target=t.target, triggers=t.triggers))
        self._count(t.frame_type, t.target, t.filter)
        rms = t.stats.rms_total if t.stats else None
        self.last_frame = {"path": str(path), "hfr": hfr, "type": t.frame_type.value,
                           "filter": t.filter, "guiding_rms": rms}
        self.bus.emit("frame", key=t.key, path=str(path), hfr=hfr, type=t.frame_type.value,
                      filter=t.filter, exposure=t.seconds, guiding_rms=rms)
        if light and t.stack is not None:
            accepted = t.stack.submit(path)
            if not accepted:
                self.bus.emit("stack_dropped", path=str(path))

    async def _apply_settings(self, a: ExposeArgs) -> None:
        """Send binning, gain, offset and ROI — only what differs from the last exposure (a
        reconnect forgets what was sent)."""
        from runner.devices.interfaces import RoiBox

        cam = self.s.camera
        binning, gain, offset = self._settings(a)
        roi = None if a.roi is None else RoiBox(a.roi.x, a.roi.y, a.roi.width, a.roi.height)
        wanted = (binning, gain, offset, roi, id(cam), self._connections)
        if wanted == self._sent_settings:
            return
        await cam.set_binning(binning)
        if gain is not None:
            await cam.set_gain(gain)
        if offset is not None:
            await cam.set_offset(offset)
        await cam.set_roi(roi)
        self._sent_settings = wanted

    def _count(self, frame_type: FrameType, target: str | None, filter_name: str | None) -> None:
        c = self.counters
        if frame_type is FrameType.light:
            c.lights += 1
        elif frame_type is FrameType.dark:
            c.darks += 1
        elif frame_type is FrameType.flat:
            c.flats += 1
        else:
            c.biases += 1
        if target is not None:
            per = c.per_target.setdefault(target, {})
            label = f"{frame_type.value}:{filter_name or '-'}"
            per[label] = per.get(label, 0) + 1

    async def _frame_meta(
        self, frame: Frame, stats: GuideStats | None, hfr: float | None, subdir: str | None
    ) -> dict[str, Any]:
        s = self.s
        focus_pos = focus_temp = None
        if s.focuser is not None:
            with contextlib.suppress(DeviceError):
                focus_pos = await s.focuser.position()
                focus_temp = await s.focuser.temperature()
        t = self.target.target if self.target else None
        return {
            "target": t.name if t else None,
            "ra": t.coordinates.ra if t else None,
            "dec": t.coordinates.dec if t else None,
            "filter": self.filter,
            "focus_position": focus_pos,
            "focus_temperature": focus_temp,
            "hfr": hfr,
            "guide_stats": stats,
            "subdir": subdir,
        }

    async def _calibration(self, leaf: Leaf, step: CalibrationStep, scope: Scope) -> None:
        c = step.calibration
        kind = FrameType(c.kind)
        args = ExposeArgs(count=c.count, exposure=1.0 if kind is not FrameType.bias else 0.0,
                          type=kind, gain=c.gain, offset=c.offset, binning=c.binning)
        plans: list[tuple[str | None, float]] = []
        if kind is FrameType.dark:
            plans = [(None, e) for e in c.exposures]
        elif kind is FrameType.bias:
            plans = [(None, 0.0)]
        else:
            filters = c.filters or ([self.filter] if self.filter else [None])  # type: ignore[list-item]
            exps = c.exposures or [1.0]
            for i, f in enumerate(filters):
                plans.append((f, exps[i] if len(exps) == len(filters) else exps[0]))
        for j, (filt, seconds) in enumerate(plans):
            if filt is not None:
                await self._change_filter(filt)
            for n in range(c.count):
                _not_cancelled()
                key = f"{leaf.id}{scope.suffix}#c{j}#f{n}"
                done = self.done_frames.get(key)  # on disk: reconcile retakes a lost one
                if done is None:
                    path = await self._take_frame(key, args, kind, seconds, scope,
                                                  subdir="calibration", of=(n + 1, c.count))
                else:  # taken before the resume: still part of this set
                    path = Path(done)
                if c.master and self.s.stacking is not None:
                    self.s.stacking.calibration_frame(path, c.kind)
        self.bus.emit("calibration_set", kind=c.kind, sets=len(plans), count=c.count)
