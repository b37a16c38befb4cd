"""Live stacking beside acquisition: one stack per target **and filter**, saved when the
target ends, and a colour preview when the filters make one (runner.stacking.filters).

``submit`` never blocks the exposure loop (the stacker drops and counts frames it cannot keep
up with); each light goes to the stack of the filter its FITS header names.

Calibration masters built during the night (``calibration: {..., master: true}``, see
runner.stacking.night_masters) are applied to the lights that come after them.

Each stack's id is journalled (``stack_start``, per target and filter), so a resumed night
continues each filter's stack under the same id — its earlier frames stacked again first —
instead of starting ``<id>_2`` with only the frames taken after the resume.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from runner.engine.compiler import CompiledTarget
from runner.engine.events import EventBus
from runner.engine.journal import Journal, ResumeState
from runner.errors import StackingError
from runner.stacking.fitsio import FrameMeta
from runner.stacking.night_masters import NightMasters


class StackingLink:
    def __init__(
        self, data_dir: Path, bus: EventBus, journal: Journal | None = None,
        resume: ResumeState | None = None,
    ) -> None:
        from runner.stacking.filters import FilterStacks
        from runner.stacking.live import LiveStacker

        self.bus = bus
        loop = asyncio.get_running_loop()

        def changed(status: dict[str, Any]) -> None:
            # the worker threads report each frame: the event is emitted on the engine's loop
            # (a ``stack_status`` event; the web side pushes it as seed 004's stacking_status)
            if not loop.is_closed():
                loop.call_soon_threadsafe(lambda: self.bus.emit("stack_status", status=status))

        self.stacks = FilterStacks(data_dir, on_change=changed)
        self.stacks.options_for = self._masters_for
        self.masters = NightMasters(self.stacks.library, bus.emit)
        self._idle = LiveStacker(data_dir)  # what a viewer sees before the first frame
        self._later: asyncio.Future[dict[str, Any] | None] | None = None
        self._target: CompiledTarget | None = None
        self._held: list[Path] = []  # lights waiting for a master being built
        self._flush: asyncio.Task[None] | None = None
        self._warned: set[str | None] = set()  # filters whose stack could not start
        self._announced: set[str | None] = set()  # filters whose stack_start was emitted
        self.journal = journal
        self._resume = resume
        # (target, filter) → stacking id of a stack an interrupted segment of this night began
        self._earlier: dict[tuple[str, str | None], str] = dict(resume.stacks) if resume else {}
        self._continued: dict[str | None, int] = {}  # filter → frames replayed, this target

    @property
    def stacker(self) -> Any:
        """The live stacker the last light went to (the web page and status show it)."""
        return self.stacks.current or self._idle

    @property
    def active(self) -> str | None:
        return self._target.target.name if self._target is not None else None

    def begin(self, ct: CompiledTarget) -> StackingLink | None:
        opts = ct.target.stack
        if opts is None:
            return None
        if self._target is not None:
            return self
        try:
            name = ct.target.name
            earlier = {f: (sid, self._earlier_lights(name, f))
                       for (t, f), sid in list(self._earlier.items()) if t == name}
            for f in earlier:
                self._earlier.pop((name, f))
            self._continued = {f: len(paths) for f, (_, paths) in earlier.items()}
            self.stacks.begin(
                name,
                earlier=earlier,
                calibration=opts.calibration,
                field_rotation=opts.field_rotation,
                flip=opts.flip,
                auto_stretch=opts.auto_stretch,
                align=opts.align == "stars",
                reject=opts.reject == "sigma",
                kappa=opts.kappa,
            )
        except StackingError as exc:  # the previous target's stacks are still being saved
            self.bus.emit("warning", message=f"live stacking not started: {exc}")
            return None
        self._target = ct
        self.masters.close_set()
        return self

    def _masters_for(self, filter_name: str | None, meta: FrameMeta) -> dict[str, Any]:
        """Masters built tonight that match the first light of a filter's stack (the plan's
        own ``calibration:`` ids win for their kind)."""
        explicit = {self.stacks.library.get(i).kind for i in self.stacks.options.get(
            "calibration", ())}
        return self.masters.for_light(meta, skip=explicit)

    def submit(self, path: Path) -> bool:
        if self._target is None:
            return False
        self.masters.close_set()  # a light after a calibration set: the set is complete
        if self.masters.building or self._held:
            # a master is being combined: these lights wait for it (no stack starts without it)
            self._held.append(Path(path))
            self._schedule_flush()
            return True
        return self._submit(Path(path))

    def _submit(self, path: Path) -> bool:
        accepted = self.stacks.submit(path)
        for f, why in self.stacks.failed.items():
            if f not in self._warned:
                self._warned.add(f)
                self.bus.emit("warning", message=f"live stacking of filter {f} not started: {why}")
        for f, sid in self.stacks.running.items():
            if f not in self._announced:
                self._announced.add(f)
                if self.journal is not None:
                    with contextlib.suppress(OSError):  # lost, a resume starts anew: no harm
                        self.journal.record("stack_start", target=self.active, filter=f,
                                            stacking_id=sid)
                replayed = self._continued.get(f)
                self.bus.emit("stack_start", target=self.active, filter=f, stacking_id=sid,
                              continued=replayed is not None, replayed=replayed or 0)
        return accepted

    def _schedule_flush(self) -> None:
        if self._flush is None or self._flush.done():
            self._flush = asyncio.ensure_future(self._release_held())

    async def _release_held(self) -> None:
        await self.masters.wait()
        while self._held:
            p = self._held.pop(0)
            # these frames were accepted already: wait for room rather than drop them
            await asyncio.to_thread(self.stacks.wait_room, p)
            self._submit(p)

    def _earlier_lights(self, target: str, filter_name: str | None) -> list[Path]:
        """The lights of ``target`` and ``filter_name`` from before the resume, still on disk."""
        r = self._resume
        if r is None:
            return []
        out = []
        for key, path in r.frames.items():
            d = r.details.get(key, {})
            if key in r.lights and d.get("target") == target and d.get("filter") == filter_name \
                    and Path(path).is_file():
                out.append(Path(path))
        return out

    def calibration_frame(self, path: Path, kind: str) -> None:
        """A frame of a ``master: true`` calibration set was taken (written, or being written
        by the frame writer): its master is combined when the set is complete."""
        self.masters.add(Path(path), kind)

    async def end(self) -> dict[str, Any] | None:
        if self._target is None:
            return None
        if self._flush is not None:
            await self._flush
        target, self._target = self._target, None
        self._warned, self._announced = set(), set()
        saved = await asyncio.to_thread(self.stacks.save)
        out: dict[str, Any] = {"stacks": {}}
        for s in saved:
            if s.paths is None:
                self.bus.emit("warning", message=f"stack {s.stacking_id} not saved: {s.error}")
                continue
            out["stacks"][s.stacking_id] = s.status
            self.bus.emit("stack_saved", stacking_id=s.stacking_id, filter=s.filter,
                          status=s.status,
                          paths={k: str(v) for k, v in vars(s.paths).items() if v is not None})
        opts = target.target.stack
        try:
            colour = await asyncio.to_thread(self.stacks.colour, saved,
                                             flip=bool(opts and opts.flip))
        except StackingError as exc:
            self.bus.emit("warning", message=f"no colour preview of {target.target.name}: {exc}")
            colour = None
        if colour is not None:
            out["colour"] = {k: str(v) for k, v in colour.items()}
            self.bus.emit("stack_colour", target=target.target.name, paths=out["colour"])
        return out

    def end_later(self) -> None:
        if self._target is not None and self._later is None:
            self._later = asyncio.ensure_future(self.end())

    async def close(self) -> None:
        if self._later is not None:
            await self._later
        if self._target is not None:
            await self.end()
        await self.masters.close()
        await asyncio.to_thread(self.stacks.close)
