"""Records that cross layers: a frame as a camera delivers it, a guiding interval's RMS.

Devices produce them, the engine passes them on, storage writes them; living here, below all
three, lets ``runner.storage`` stay independent of ``runner.devices``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class RoiBox:
    """Sub-frame in unbinned sensor pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass
class Frame:
    """A finished exposure: the pixels and what the camera knew when it took them."""

    data: npt.NDArray[np.uint16]
    exposure: float  # s
    start: datetime  # UTC, shutter open
    frame_type: str  # light | dark | bias | flat
    binning: int
    gain: int
    offset: int
    ccd_temp: float | None  # °C at the end of the exposure
    set_temp: float | None  # °C cooler set point, None when cooler off
    roi: RoiBox
    bayer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuideStats:
    """Guiding RMS over an interval; arcsec when the pixel scale is known, else pixels."""

    rms_ra: float
    rms_dec: float
    rms_total: float
    unit: str  # "arcsec" | "px"
    frames: int
