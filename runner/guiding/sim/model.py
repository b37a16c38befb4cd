"""The simulated PHD2's vocabulary: error codes, profiles, faults, guider and controller
states, and the parameter checks RPC handlers share (PHD2's names, types and messages)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

log = logging.getLogger(__name__)

PHD_VERSION = "2.6.13"
PHD_SUBVER = "nightrunner-sim"

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PARSE_ERROR = -32700

EXPOSURE_DURATIONS_MS = [
    10, 20, 50, 100, 200, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000,
    6000, 7000, 8000, 9000, 10000, 15000, 30000,
]

Event = dict[str, Any]
Handler = Callable[[Any], Any]


class RpcError(Exception):
    """A JSON-RPC error PHD2 would send: ``code`` and ``message`` go on the wire unchanged."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SimFaults:
    """Fault knobs, changeable while the simulator runs (tests, rehearsals).

    Times are clock seconds on the simulator's ``Clock`` (``clock.monotonic()``).
    """

    #: The guide star disappears (clouds) at this clock time …
    star_lost_at_s: float | None = None
    #: … for this long (None: until the knob is cleared).
    star_lost_for_s: float | None = None
    #: The next N settles never get within tolerance (they time out).
    settle_never: int = 0
    #: During the next N settles every client connection is dropped after the first frame.
    drop_mid_settle: int = 0
    #: ``set_connected`` takes this many clock seconds (PHD2 blocks while drivers connect).
    set_connected_delay_s: float = 0.0
    #: The camera cannot start capturing: ``loop`` fails; ``guide`` fails at once.
    camera_fails: bool = False


@dataclass(frozen=True)
class SimProfile:
    id: int
    name: str
    camera: str = "Simulator"
    mount: str = "On Camera"


DEFAULT_PROFILES = (
    SimProfile(1, "Nightrunner Simulator"),
    SimProfile(2, "Backyard EQ6", camera="ZWO ASI120MM Mini", mount="EQMOD ASCOM HEQ5/6"),
)


class GState(Enum):
    """The guider's own state (a reduced ``GUIDER_STATE``)."""

    idle = auto()  # no star selected (UNINITIALIZED / SELECTING)
    selected = auto()
    calibrating = auto()
    guiding = auto()


class Pause(Enum):
    none = auto()
    guiding = auto()  # guide output paused, exposures continue
    full = auto()  # exposures paused too


class Ctl(Enum):
    """``PhdController`` states."""

    idle = auto()
    setup = auto()
    attempt_start = auto()
    select_star = auto()
    wait_selected = auto()
    calibrate = auto()
    calibration_wait = auto()
    guide = auto()
    settle_begin = auto()
    settle_wait = auto()
    finish = auto()


@dataclass
class Settle:
    pixels: float
    time_s: int
    timeout_s: int


@dataclass
class _Controller:
    state: Ctl = Ctl.idle
    op: str = "guide"
    settle: Settle = field(default_factory=lambda: Settle(1.5, 10, 60))
    force_calibration: bool = False
    roi: tuple[int, int, int, int] | None = None
    auto_find_remaining: int = 3
    wait_selected_remaining: int = 3
    prior_in_range: bool = False
    timeout_start: float = 0.0
    in_range_start: float = 0.0
    frames: int = 0
    dropped: int = 0
    succeeded: bool = False
    error: str = ""
    settle_blocked: bool = False
    drop_after_frame: bool = False


# ---------------------------------------------------------------------- parameter helpers

_MISSING = object()


class Params:
    """PHD2's ``Params``: positional values map to names in order; an object maps by name."""

    def __init__(self, names: tuple[str, ...], params: Any) -> None:
        self._d: dict[str, Any] = {}
        if isinstance(params, list):
            for name, value in zip(names, params, strict=False):
                self._d[name] = value
        elif isinstance(params, dict):
            self._d = dict(params)

    def get(self, name: str) -> Any:
        return self._d.get(name, _MISSING)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return _is_int(v) or isinstance(v, float)


def _bool_param(v: Any) -> bool | None:
    """PHD2 accepts JSON booleans and integers for most boolean parameters."""
    if isinstance(v, bool):
        return v
    if _is_int(v):
        return bool(v)
    return None


def _parse_rect(v: Any) -> tuple[int, int, int, int] | None:
    if isinstance(v, list) and len(v) == 4 and all(_is_int(x) for x in v):
        return (v[0], v[1], v[2], v[3])
    return None


def _parse_settle(v: Any) -> Settle:
    if not isinstance(v, dict):
        raise RpcError(INVALID_PARAMS, "expected settle object param")
    px: Any = v.get("pixels")
    t: Any = v.get("time")
    to: Any = v.get("timeout")
    if not (_is_num(px) and _is_num(t) and _is_num(to)):
        raise RpcError(INVALID_PARAMS, "invalid settle params")
    return Settle(float(px), math.floor(t), math.floor(to))


def _r(x: float, n: int) -> float:
    return round(float(x), n) + 0.0  # + 0.0 turns -0.0 into 0.0




