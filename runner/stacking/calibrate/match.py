"""Which masters fit a light: bias, dark (exact or scaled) and flat matching.

**Dark matching** (:meth:`CalibrationLibrary.find_dark`): a dark is usable for a light when
gain, offset, binning and size are equal and the sensor temperatures differ by at most
``temp_tolerance`` (2 °C). Among usable darks an exposure within 1 % is used as is. Otherwise,
if a master bias exists, the dark is **scaled**: ``bias + (dark − bias)·t_light/t_dark``
(dark current is proportional to exposure at fixed temperature; the longest usable dark is
chosen since it has the least noise per second). Temperature is never extrapolated: the dark
current's doubling temperature differs between sensors, so a wrong guess is worse than none.
Without a usable dark, the bias is subtracted; without a bias either, only the flat is applied.
"""

from __future__ import annotations

from runner.stacking.calibrate.index import CalibrationIndex, Master
from runner.stacking.fitsio import FrameMeta


class MasterMatcher(CalibrationIndex):
    """Finds the library's masters that fit a light (see the module docstring)."""

    def _compatible(self, m: Master, meta: FrameMeta, temp_tolerance: float) -> bool:
        for key, value in (
            ("gain", meta.gain),
            ("offset", meta.offset),
            ("binning", meta.binning),
            ("width", meta.width),
            ("height", meta.height),
        ):
            mv = m.get(key)
            if mv is not None and value is not None and float(mv) != float(value):
                return False
        mt = m.get("temperature")
        if mt is not None and meta.temperature is not None:
            return abs(float(mt) - meta.temperature) <= temp_tolerance
        return True

    def find_bias(self, meta: FrameMeta) -> Master | None:
        cands = [m for m in self.masters() if m.kind == "bias" and self._compatible(m, meta, 1e9)]
        return max(cands, key=lambda m: m.frames, default=None)

    def find_dark(
        self, meta: FrameMeta, *, temp_tolerance: float = 2.0, allow_scaling: bool = True
    ) -> tuple[Master, float] | None:
        """The best dark for a light and the factor its thermal signal must be scaled by."""
        cands = [
            m
            for m in self.masters()
            if m.kind == "dark" and self._compatible(m, meta, temp_tolerance)
        ]
        if not cands:
            return None
        if meta.exposure is None:
            return max(cands, key=lambda m: m.frames), 1.0
        exact = [
            m
            for m in cands
            if m.get("exposure") is not None
            and abs(float(m.get("exposure")) - meta.exposure) <= 0.01 * meta.exposure
        ]
        if exact:
            return max(exact, key=lambda m: m.frames), 1.0
        if not allow_scaling:
            return None
        timed = [m for m in cands if m.get("exposure")]
        if not timed:
            return None
        best = max(timed, key=lambda m: float(m.get("exposure")))
        return best, meta.exposure / float(best.get("exposure"))

    def find_flat(self, meta: FrameMeta) -> Master | None:
        cands = [
            m
            for m in self.masters()
            if m.kind == "flat"
            and self._compatible(m, meta, 1e9)
            and (meta.filter is None or m.get("filter") in (None, meta.filter))
        ]
        return max(cands, key=lambda m: m.frames, default=None)
