"""Frame file names from the plan's output template, safe on every file system.

``{target}/{filter}/{target}_{filter}_{exposure}s_{seq:04d}.fits`` with the fields

==========  ==============================================================================
target      target name (``calibration`` when none)
filter      filter name (``NoFilter`` when none)
exposure    exposure, s, shortest exact form: 300, 0.5, 0.001
type        frame type: light, dark, flat, bias
seq         frame number within target/filter/type (the engine counts), int
date        the night's date, YYYY-MM-DD: the local date twelve hours before the frame
time        frame start, HHMMSS, UTC
gain        camera gain (``NA`` when unknown)
binning     binning factor, int
==========  ==============================================================================

Values are sanitised before they are put in (characters illegal on Windows, macOS or Linux
and path separators become ``_``), then the expanded path is checked component by component:
it is always relative to the data directory and can never leave it (no ``..``, no absolute
paths, no drive letters, no reserved device names like ``CON``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path, PurePosixPath

FIELDS = ("target", "filter", "exposure", "type", "seq", "date", "time", "gain", "binning")
DEFAULT_TEMPLATE = "{target}/{filter}/{target}_{filter}_{exposure}s_{seq:04d}.fits"

_ILLEGAL = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}
_MAX_COMPONENT = 200  # bytes; leaves room for the writer's temporary suffix under 255


class TemplateError(ValueError):
    """The output template cannot produce a path (unknown field, bad format spec)."""


class Exposure(float):
    """A float that prints in its shortest exact form by default (300, 0.5)."""

    def __format__(self, spec: str) -> str:
        if spec:
            return format(float(self), spec)
        text = f"{float(self):.6f}".rstrip("0").rstrip(".")
        return text or "0"

    def __str__(self) -> str:
        return format(self, "")


def sanitize_component(text: str, fallback: str = "_") -> str:
    """One safe path component from arbitrary text."""
    cleaned = _ILLEGAL.sub("_", text).strip().rstrip(".")
    if cleaned in ("", ".", ".."):
        cleaned = fallback
    if cleaned.split(".")[0].upper() in _RESERVED:
        cleaned = "_" + cleaned
    while len(cleaned.encode("utf-8")) > _MAX_COMPONENT:
        cleaned = cleaned[:-1]
    return cleaned


def night_date(when: datetime, tz: tzinfo | None = None) -> date:
    """The date a night is known by: the local date twelve hours before ``when``.

    A frame taken at 02:00 local time belongs to the night that began the evening before.
    ``tz`` None uses the machine's local time zone.
    """
    local = when.astimezone(tz) if tz is not None else when.astimezone()
    return (local - timedelta(hours=12)).date()


@dataclass(frozen=True)
class _Field:
    name: str
    spec: str
    conversion: str | None


def _parse(template: str) -> list[tuple[str, _Field | None]]:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"output template '{template}': {exc}") from exc
    out: list[tuple[str, _Field | None]] = []
    for literal, name, spec, conversion in parts:
        fld = None
        if name is not None:
            if name not in FIELDS:
                known = ", ".join(FIELDS)
                raise TemplateError(
                    f"output template '{template}': unknown field '{{{name}}}' (fields: {known})"
                )
            fld = _Field(name, spec or "", conversion)
        out.append((literal, fld))
    return out


def check_template(template: str) -> list[str]:
    """Problems with ``template`` (empty when it is usable) — for ``nightrunner validate``."""
    problems: list[str] = []
    try:
        expand(
            template,
            target="M 31",
            filter="Ha",
            exposure=300.0,
            frame_type="light",
            seq=1,
            when=datetime(2025, 1, 1, 22, 0, tzinfo=UTC),
            gain=100,
            binning=1,
        )
    except TemplateError as exc:
        problems.append(str(exc))
    else:
        if not template.strip().lower().endswith((".fits", ".fit", ".fts")):
            problems.append(f"output template '{template}' should end in .fits")
        if "{seq" not in template and "{time" not in template:
            problems.append(
                f"output template '{template}' has neither {{seq}} nor {{time}}: "
                "every frame would get the same name"
            )
    return problems


def expand(
    template: str,
    *,
    target: str | None,
    filter: str | None,
    exposure: float,
    frame_type: str,
    seq: int,
    when: datetime,
    gain: int | None = None,
    binning: int = 1,
    tz: tzinfo | None = None,
) -> PurePosixPath:
    """The relative path for one frame. ``when`` is the frame start (aware datetime).

    Raises:
        TemplateError: unknown field, bad format spec, or a path that would leave the data
            directory.
    """
    values: Mapping[str, object] = {
        "target": target or "calibration",
        "filter": filter or "NoFilter",
        "exposure": Exposure(exposure),
        "type": frame_type,
        "seq": int(seq),
        "date": night_date(when, tz).isoformat(),
        "time": when.astimezone(UTC).strftime("%H%M%S"),
        "gain": "NA" if gain is None else int(gain),
        "binning": int(binning),
    }
    if not template.strip():
        raise TemplateError("the output template is empty")
    pieces: list[str] = []
    for literal, fld in _parse(template):
        pieces.append(literal)
        if fld is None:
            continue
        value = values[fld.name]
        if fld.conversion == "r":
            value = repr(value)
        elif fld.conversion in ("s", "a"):
            value = str(value)
        try:
            text = format(value, fld.spec)
        except (ValueError, TypeError) as exc:
            raise TemplateError(
                f"output template '{template}': field '{{{fld.name}:{fld.spec}}}': {exc}"
            ) from exc
        pieces.append(sanitize_component(text))
    raw = "".join(pieces).replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise TemplateError(f"output template '{template}' must be a relative path")
    components = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise TemplateError(f"output template '{template}' may not contain '..'")
        components.append(sanitize_component(part))
    if not components:
        raise TemplateError(f"output template '{template}' expands to an empty path")
    return PurePosixPath(*components)


def frame_path(data_dir: str | Path, relative: PurePosixPath | str) -> Path:
    """``data_dir / relative`` (from :func:`expand`), checked to stay inside ``data_dir`` even
    through symbolic links.

    Raises:
        TemplateError: the path would leave the data directory.
    """
    root = Path(data_dir).resolve()
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise TemplateError(f"'{rel}' is not a path inside the data directory")
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise TemplateError(f"'{rel}' resolves outside the data directory {root}")
    return path
