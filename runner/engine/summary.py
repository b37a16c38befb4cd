"""The night's frame counts for ``summary.json`` and the report: the whole night, however many
times it was resumed.

A resumed run's executor counts only what it took itself; the frames of the earlier segments
come from the journal (what :func:`~runner.engine.journal.resume_state` kept after the
resume's reconciliation: lost frames are not counted, adopted ones are).
"""

from __future__ import annotations

from typing import Protocol

from runner.engine.journal import ResumeState

_KINDS = ("light", "dark", "flat", "bias")


class _Counts(Protocol):
    lights: int
    darks: int
    flats: int
    biases: int
    per_target: dict[str, dict[str, int]]


def whole_night(
    resume: ResumeState | None, counters: _Counts | None
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """``frames`` (per type, plus ``skipped_on_resume``: taken before the resume) and
    ``per_target`` (``"<type>:<filter>"`` → frames) over every segment of the night."""
    frames = dict.fromkeys(_KINDS, 0)
    per_target: dict[str, dict[str, int]] = {}
    earlier = 0
    if resume is not None:
        for key in resume.frames:
            d = resume.details.get(key, {"type": "light" if key in resume.lights else None})
            kind = d.get("type")
            if kind not in frames:
                continue
            earlier += 1
            frames[kind] += 1
            target = d.get("target")
            if target is not None:
                label = f"{kind}:{d.get('filter') or '-'}"
                per = per_target.setdefault(str(target), {})
                per[label] = per.get(label, 0) + 1
    if counters is not None:
        frames["light"] += counters.lights
        frames["dark"] += counters.darks
        frames["flat"] += counters.flats
        frames["bias"] += counters.biases
        for target, counts in counters.per_target.items():
            per = per_target.setdefault(target, {})
            for label, n in counts.items():
                per[label] = per.get(label, 0) + n
    frames["skipped_on_resume"] = earlier
    return frames, per_target
