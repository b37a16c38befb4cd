"""Live stacking beside acquisition: one ``LiveStacker`` per run, one stack per target.

``submit`` never blocks the exposure loop (the stacker drops and counts frames it cannot keep
up with); the stack of a target is saved when the target ends.

Each stack's id is journalled (``stack_start``), so a resumed night continues the target's
stack under the same id — its earlier frames stacked again first — instead of starting
``<target>_2`` with only the frames taken after the resume.
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


class StackingLink:
    def __init__(
        self, data_dir: Path, bus: EventBus, journal: Journal | None = None,
        resume: ResumeState | None = None,
    ) -> None:
        from runner.stacking.live import LiveStacker

        self.stacker = LiveStacker(data_dir)
        self.bus = bus
        loop = asyncio.get_running_loop()

        def changed(status: dict[str, Any]) -> None:
            # the worker thread reports each frame: the event is emitted on the engine's loop
            # (a ``stack_status`` event; the web side pushes it as seed 004's stacking_status)
            if not loop.is_closed():
                loop.call_soon_threadsafe(lambda: self.bus.emit("stack_status", status=status))

        self.stacker.on_change = changed
        self.journal = journal
        self._earlier: dict[str, str] = dict(resume.stacks) if resume else {}
        self._resume = resume
        self._later: asyncio.Future[dict[str, Any] | None] | None = None
        self.active: str | None = None

    def begin(self, ct: CompiledTarget) -> StackingLink | None:
        opts = ct.target.stack
        if opts is None:
            return None
        if self.active is not None:
            return self
        name = ct.target.name
        continue_id = self._earlier.pop(name, None)
        replay = self._earlier_lights(name) if continue_id else []
        try:
            self.active = self.stacker.start(
                name,
                calibration=opts.calibration,
                field_rotation=opts.field_rotation,
                flip=opts.flip,
                auto_stretch=opts.auto_stretch,
                align=opts.align == "stars",
                reject=opts.reject == "sigma",
                kappa=opts.kappa,
                continue_id=continue_id,
                replay=replay,
            )
        except StackingError as exc:
            self.bus.emit("warning", message=f"live stacking not started: {exc}")
            return None
        if self.journal is not None:
            with contextlib.suppress(OSError):  # lost, a resume starts a new stack: no harm
                self.journal.record("stack_start", target=name, stacking_id=self.active)
        self.bus.emit("stack_start", target=name, stacking_id=self.active,
                      continued=continue_id is not None, replayed=len(replay))
        return self

    def _earlier_lights(self, target: str) -> list[Path]:
        """The target's light frames from before the resume that are still on disk."""
        r = self._resume
        if r is None:
            return []
        out = []
        for key, path in r.frames.items():
            d = r.details.get(key, {})
            if key in r.lights and d.get("target") == target and Path(path).is_file():
                out.append(Path(path))
        return out

    def submit(self, path: Path) -> bool:
        return bool(self.stacker.submit(path))

    async def end(self) -> dict[str, Any] | None:
        if self.active is None:
            return None
        stacking_id, self.active = self.active, None
        try:
            paths = await self.stacker.save_async()
        except StackingError as exc:
            self.bus.emit("warning", message=f"stack {stacking_id} not saved: {exc}")
            return None
        status = self.stacker.status()
        self.bus.emit("stack_saved", stacking_id=stacking_id, status=status,
                      paths={k: str(v) for k, v in vars(paths).items()}
                      if hasattr(paths, "__dict__") else str(paths))
        return status

    def end_later(self) -> None:
        if self.active is not None and self._later is None:
            self._later = asyncio.ensure_future(self.end())

    async def close(self) -> None:
        if self._later is not None:
            await self._later
        if self.active is not None:
            await self.end()
        closer = getattr(self.stacker, "close", None)
        if closer is not None:
            result = closer()
            if asyncio.iscoroutine(result):
                await result
