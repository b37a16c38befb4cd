"""How many light frames a run of an until-loop has taken, answered in O(1).

``repeat: {until: {frames: N}}`` asks this before every iteration and before every light
inside the loop. Counting by scanning every light key of the night made a night of n frames
cost n² (a 10,000-frame estimate, or a 48 h dry run of a loop that never ends); instead each
light is counted once, when it is taken (or found in the journal on ``--resume``), towards
every loop run it belongs to.

Frame keys are ``<step id><scope suffix>#f<n>`` (``#c<j>#f<n>`` for calibration frames): a
step inside a loop has an id below ``<loop id>/steps``, and its scope suffix extends the
loop's own (``#i2`` is iteration 2 of an outer loop, ``#i2#i0`` iteration 0 of the one inside
it). A light belongs to the run of loop ``L`` in scope ``S`` when its step id starts with
``L/steps`` and its suffix starts with ``S#i``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator


def _runs_of(key: str) -> Iterator[tuple[str, str]]:
    """Every (loop id, loop scope suffix) whose run the frame ``key`` counts towards."""
    cut = key.find("#")
    if cut < 0:  # not a key the executor made (it has no scope): in no loop
        return
    step, suffix = key[:cut], key[cut:]
    loops = []
    at = step.find("/steps")
    while at >= 0:
        loops.append(step[:at])
        at = step.find("/steps", at + 1)
    if not loops:
        return
    at = suffix.find("#i")
    while at >= 0:
        for loop in loops:
            yield loop, suffix[:at]
        at = suffix.find("#i", at + 1)


class LoopLights:
    """The night's light-frame keys (iterable like the set they are), and per loop run how
    many of them it holds."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.keys: set[str] = set()
        self._per_run: Counter[tuple[str, str]] = Counter()
        for key in keys:
            self.add(key)

    def add(self, key: str) -> None:
        """Count the light ``key`` (once: a key already counted is not counted again)."""
        if key in self.keys:
            return
        self.keys.add(key)
        self._per_run.update(_runs_of(key))

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def in_loop(self, loop_id: str, outer_suffix: str) -> int:
        """Lights taken inside one run of a loop (all its iterations, resumed ones too)."""
        return self._per_run[(loop_id, outer_suffix)]
