"""Value types with units: durations, clock times, angles.

Plans are written by people; these types accept the forms people write (``90s``, ``15min``,
``2h``, ``"02:30"``, ``"00:42:44.3"``) and normalise them to one documented unit, so the rest
of Nightrunner only ever sees seconds, degrees and ``ClockTime``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION_RE = re.compile(
    r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?)?\s*$"
)
_UNIT_SECONDS = {
    None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
}
DURATION_PATTERN = (
    r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?)?\s*$"
)


def parse_duration(value: Any) -> float:
    """Seconds from a number (already seconds) or a string with a unit."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '90s', '15min', '2h'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative (got {value})")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group("num")) * _UNIT_SECONDS[m.group("unit")]
        raise ValueError(
            f"'{value}' is not a duration: write seconds (120), or a number with a unit "
            "(90s, 15min, 2h)"
        )
    raise ValueError("a duration is a number of seconds or a string like '90s', '15min', '2h'")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "Duration: seconds, or a number with a unit (90s, 15min, 2h).",
        }
    ),
]
"""Seconds (float); YAML may say ``120``, ``90s``, ``15min`` or ``2h``."""


_CLOCK_RE = re.compile(
    r"^(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?"
    r"(?P<tz>Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?$"
)
CLOCK_PATTERN = r"^([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?$"


@dataclass(frozen=True)
class ClockTime:
    """A time of day; local to the site unless ``utc_offset`` is given (``Z`` or ``+02:00``).

    It names the *next* occurrence after a reference instant, so a night that crosses midnight
    needs no dates.
    """

    hour: int
    minute: int
    second: int = 0
    utc_offset: timedelta | None = None

    def __str__(self) -> str:
        base = f"{self.hour:02d}:{self.minute:02d}"
        if self.second:
            base += f":{self.second:02d}"
        if self.utc_offset is None:
            return base
        if self.utc_offset == timedelta(0):
            return base + "Z"
        total = int(self.utc_offset.total_seconds() // 60)
        sign = "+" if total >= 0 else "-"
        return f"{base}{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"

    def next_after(self, reference: datetime, site_tz: tzinfo) -> datetime:
        """The first instant at or after ``reference`` whose wall time equals this time."""
        tz: tzinfo = site_tz if self.utc_offset is None else timezone(self.utc_offset)
        local_ref = reference.astimezone(tz)
        candidate = datetime.combine(
            local_ref.date(), time(self.hour, self.minute, self.second), tzinfo=tz
        )
        if candidate < local_ref:
            candidate = datetime.combine(
                local_ref.date() + timedelta(days=1),
                time(self.hour, self.minute, self.second),
                tzinfo=tz,
            )
        return candidate


def parse_clock_time(value: Any) -> ClockTime:
    if isinstance(value, ClockTime):
        return value
    if not isinstance(value, str):
        raise ValueError(
            "a clock time is a quoted string 'HH:MM' or 'HH:MM:SS', optionally with Z or +HH:MM"
        )
    m = _CLOCK_RE.match(value.strip())
    if not m:
        raise ValueError(
            f"'{value}' is not a clock time: write 'HH:MM' or 'HH:MM:SS' (24 h), optionally "
            "followed by Z or an offset like +02:00"
        )
    offset = None
    tz = m.group("tz")
    if tz == "Z":
        offset = timedelta(0)
    elif tz:
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return ClockTime(int(m.group("h")), int(m.group("m")), int(m.group("s") or 0), offset)


ClockTimeField = Annotated[
    ClockTime,
    BeforeValidator(parse_clock_time),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CLOCK_PATTERN,
            "description": "Time of day, site-local unless suffixed with Z or +HH:MM; "
            "means the next occurrence after the run starts.",
        }
    ),
]


_SEXA_RE = re.compile(
    r"^\s*(?P<sign>[+-])?\s*(?P<a>\d+)[:hd°\s]\s*(?P<b>\d+)[:m'\s]\s*"
    r"(?P<c>\d+(?:\.\d*)?)\s*[s\"]?\s*$"
)


def _sexagesimal(text: str) -> tuple[float, bool]:
    m = _SEXA_RE.match(text)
    if not m:
        raise ValueError
    a, b, c = float(m.group("a")), float(m.group("b")), float(m.group("c"))
    if b >= 60 or c >= 60:
        raise ValueError
    return a + b / 60 + c / 3600, m.group("sign") == "-"


def parse_ra(value: Any) -> float:
    """Right ascension in degrees from degrees (number) or hours 'HH:MM:SS.s' / '00h42m44s'."""
    if isinstance(value, bool):
        raise ValueError("RA must be degrees (number) or sexagesimal hours 'HH:MM:SS'")
    if isinstance(value, int | float):
        deg = float(value)
    elif isinstance(value, str):
        try:
            hours, neg = _sexagesimal(value)
        except ValueError:
            try:
                deg = float(value)
            except ValueError:
                raise ValueError(
                    f"'{value}' is not a right ascension: write hours 'HH:MM:SS.s' or degrees"
                ) from None
        else:
            if neg:
                raise ValueError(f"right ascension cannot be negative ('{value}')")
            deg = hours * 15.0
    else:
        raise ValueError("RA must be degrees (number) or sexagesimal hours 'HH:MM:SS'")
    if not 0 <= deg < 360:
        raise ValueError(f"right ascension must be within 0–360° (0h–24h), got {deg:g}°")
    return deg


def parse_dec(value: Any) -> float:
    """Declination in degrees from degrees (number) or '+DD:MM:SS'."""
    if isinstance(value, bool):
        raise ValueError("Dec must be degrees (number) or sexagesimal '+DD:MM:SS'")
    if isinstance(value, int | float):
        deg = float(value)
    elif isinstance(value, str):
        try:
            mag, neg = _sexagesimal(value)
            deg = -mag if neg else mag
        except ValueError:
            try:
                deg = float(value)
            except ValueError:
                raise ValueError(
                    f"'{value}' is not a declination: write '+DD:MM:SS' or degrees"
                ) from None
    else:
        raise ValueError("Dec must be degrees (number) or sexagesimal '+DD:MM:SS'")
    if not -90 <= deg <= 90:
        raise ValueError(f"declination must be within −90…+90°, got {deg:g}°")
    return deg


RA = Annotated[
    float,
    BeforeValidator(parse_ra),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": 360},
                {"type": "string"},
            ],
            "description": "Right ascension, J2000: degrees, or hours as 'HH:MM:SS.s'.",
        }
    ),
]
Dec = Annotated[
    float,
    BeforeValidator(parse_dec),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": -90, "maximum": 90}, {"type": "string"}],
            "description": "Declination, J2000: degrees, or '+DD:MM:SS'.",
        }
    ),
]
