"""One live stack per target **and filter**: frames of one filter are never mixed with another's.

An LRGB target taken with ``each_filter`` interleaves L, R, G and B frames all night; each
filter gets its own :class:`~runner.stacking.live.LiveStacker` (its own reference frame,
counters, worker and seed-004 outputs, stacking id ``<target>_<filter>``), started when the
first frame of that filter arrives. The filter is read from the frame's own FITS header (the
FILTER card), so what is stacked together is what the file says, whatever the caller knows.
Frames without a FILTER card (a colour camera without a wheel) stack under the target's name.

The engine (``runner.engine.stacking_link``) and the offline ``nightrunner stack`` command both
go through :class:`FilterStacks`, so both write the same files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationLibrary
from runner.stacking.colour import colour_plan, compose, write_colour
from runner.stacking.fitsio import FrameMeta, read_meta
from runner.stacking.live import LiveStacker
from runner.stacking.output import StackPaths

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
#: given a filter and its first frame's header facts: extra ``LiveStacker.start`` arguments
#: (the calibration masters that match those lights)
OptionsFor = Callable[[str | None, FrameMeta], dict[str, Any]]

_CARD = 80
_BLOCK = 2880


def header_cards(path: str | Path, keys: tuple[str, ...]) -> dict[str, str | None]:
    """The raw text values of ``keys`` in a FITS file's primary header, reading only the header
    blocks and scanning its 80-character cards up to END (~20 µs, where astropy's full parse
    takes ~1 ms): the engine calls this on its event loop for every light. Missing keys (or an
    unreadable file) give None."""
    want = {k.ljust(8).encode("ascii"): k for k in keys}
    out: dict[str, str | None] = dict.fromkeys(keys)
    try:
        with Path(path).open("rb") as fh:
            while True:
                block = fh.read(_BLOCK)
                if len(block) < _BLOCK:
                    return out
                for i in range(0, _BLOCK, _CARD):
                    card = block[i : i + _CARD]
                    key = card[:8]
                    if key == b"END     ":
                        return out
                    if key in want and card[8:10] == b"= ":
                        out[want[key]] = _card_text(card[10:].decode("ascii", "replace"))
    except OSError:
        return out


def frame_filter(path: str | Path) -> str | None:
    """The FILTER card of a frame (None: no filter named)."""
    return header_cards(path, ("FILTER",))["FILTER"]


def _card_text(value: str) -> str | None:
    value = value.strip()
    if value.startswith("'"):
        end = value.find("'", 1)
        while end != -1 and value[end + 1 : end + 2] == "'":  # '' is an escaped quote
            end = value.find("'", end + 2)
        text = value[1:end if end != -1 else None].replace("''", "'").strip()
    else:
        text = value.split("/", 1)[0].strip()
    return text or None


def stack_name(target: str, filter_name: str | None) -> str:
    """The stacking id's base: ``NGC 188`` + ``L`` → ``NGC 188_L`` (LiveStacker sanitises)."""
    return target if not filter_name else f"{target}_{filter_name}"


@dataclass
class Saved:
    """One filter's stack after ``save``: its files, its final status, and the linear stack."""

    filter: str | None
    stacking_id: str
    status: dict[str, Any]
    paths: StackPaths | None
    error: str | None = None


class FilterStacks:
    """The per-filter stacks of one target at a time (``begin`` → ``submit``… → ``save``).

    Each filter keeps its :class:`LiveStacker` (and worker thread) for the whole run, so a run
    of several targets has as many stackers as filters, not targets × filters. Memory: each
    running stack holds its accumulator (3 float32 planes per pixel with κσ rejection), so an
    LRGB target holds four.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        queue_size: int = 4,
        intermediate_every: int = 10,
        library: CalibrationLibrary | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        read_ahead: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.library = library or CalibrationLibrary(self.data_dir)
        self.queue_size = queue_size
        self.intermediate_every = intermediate_every
        self.on_change = on_change
        self.read_ahead = read_ahead  # the offline command's (LiveStacker's read_ahead)
        self.stackers: dict[str | None, LiveStacker] = {}
        self.running: dict[str | None, str] = {}  # filter → stacking id, this target
        self.failed: dict[str | None, str] = {}  # filter → why its stack could not start
        self.target: str | None = None
        self.saved_target: str | None = None
        self.options: dict[str, Any] = {}
        self.options_for: OptionsFor | None = None
        #: the stacker the last frame went to (what a viewer is shown)
        self.current: LiveStacker | None = None
        self._earlier: dict[str | None, tuple[str, list[Path]]] = {}

    def begin(self, target: str, *,
              earlier: dict[str | None, tuple[str, list[Path]]] | None = None,
              **options: Any) -> None:
        """Stacks of ``target`` start as their filters' first frames arrive. ``earlier``: per
        filter, the id of a stack an interrupted segment of the night began and its frames —
        that stack is continued (its frames stacked again first), not started as ``<id>_2``."""
        if self.running:
            raise StackingError(f"stacks of {self.target!r} are still running; save them first")
        self.target = target
        self.options = options
        self.failed = {}
        self._earlier = dict(earlier or {})

    @property
    def active(self) -> bool:
        return self.target is not None

    def stacker_for(self, filter_name: str | None) -> LiveStacker:
        st = self.stackers.get(filter_name)
        if st is None:
            st = LiveStacker(self.data_dir, queue_size=self.queue_size,
                             intermediate_every=self.intermediate_every, library=self.library,
                             read_ahead=self.read_ahead)
            st.on_change = self.on_change
            self.stackers[filter_name] = st
        return st

    def submit(self, path: str | Path, *, filter_name: str | None = None,
               read_filter: bool = True) -> bool:
        """Queue a light for its filter's stack (started now if this is its first frame).

        Never blocks on stacking; the first frame of a filter costs a header read. Returns
        False when the frame is not queued (no target begun, worker behind, stack not started).
        """
        if self.target is None:
            return False
        filt = frame_filter(path) if read_filter else filter_name
        if filt in self.failed:
            return False
        st = self.stacker_for(filt)
        if filt not in self.running:
            try:
                options = dict(self.options)
                if self.options_for is not None:
                    options.update(self.options_for(filt, read_meta(path)))
                if filt in self._earlier:
                    options["continue_id"], options["replay"] = self._earlier.pop(filt)
                self.running[filt] = st.start(stack_name(self.target, filt), **options)
            except StackingError as exc:
                self.failed[filt] = str(exc)
                return False
        self.current = st
        return bool(st.submit(path))

    def queue_full(self, path: str | Path) -> bool:
        """Whether the stack a frame goes to has no room in its queue now."""
        filt = frame_filter(path)
        st = self.stackers.get(filt)
        if st is None or filt not in self.running:
            return False
        return int(st.status()["queued"]) >= st.queue_size

    def wait_room(self, path: str | Path, timeout: float = 600.0) -> None:
        """Block (in a thread) until the frame's stack has room in its queue."""
        deadline = time.monotonic() + timeout
        while self.queue_full(path) and time.monotonic() < deadline:
            time.sleep(0.02)

    def save(self, timeout: float | None = None) -> list[Saved]:
        """Finish every filter's stack of the target (blocking: run it in a thread)."""
        out: list[Saved] = []
        self.saved_target = self.target
        running, self.running, self.target = self.running, {}, None
        for filt, stacking_id in running.items():
            st = self.stackers[filt]
            try:
                paths: StackPaths | None = st.save(timeout)
                error = None
            except StackingError as exc:
                paths, error = None, str(exc)
                st.cancel()
            out.append(Saved(filt, stacking_id, st.status(), paths, error))
        return out

    def colour(self, saved: list[Saved], *, flip: bool = False) -> dict[str, Path] | None:
        """The target's colour preview from its saved per-filter stacks, when the filters make
        one (R, G, B or a narrowband palette, see colour.py); None when they do not. Raises
        :class:`StackingError` when they do but the channels cannot be registered."""
        done = {s.filter: s.stacking_id for s in saved if s.paths is not None and s.filter}
        plan = colour_plan(done)
        if plan is None or self.saved_target is None:
            return None
        stacks = {f: a for f in done if (a := self.linear(f)) is not None}
        result = compose(plan, stacks)
        used = {f: done[f] for f in (*plan.channels, plan.luminance) if f is not None}
        return write_colour(self.data_dir / "stacked", self.saved_target, result, used,
                            flip=flip)

    def linear(self, filter_name: str | None) -> F32 | None:
        """A filter's current (or last saved) linear stack."""
        st = self.stackers.get(filter_name)
        return None if st is None else st.stack()

    def cancel(self) -> None:
        self.running, self.target = {}, None
        for st in self.stackers.values():
            st.cancel()

    def close(self) -> None:
        for st in self.stackers.values():
            st.close()
