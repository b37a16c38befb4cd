"""The mount: slews (guiding stopped and restarted around them) and the meridian flip."""

from __future__ import annotations

import logging

from runner.engine import actions
from runner.engine.compiler import CompiledTarget
from runner.engine.exec_centre import CentreMixin
from runner.engine.exec_types import (
    Scope,
)
from runner.errors import (
    DeviceError,
)
from runner.plan.models import (
    SlewStep,
)

log = logging.getLogger("nightrunner.engine")

#: SI seconds per second of hour angle (one sidereal day is 86,164.09 s).
SIDEREAL_SECONDS = 86_164.0905 / 86_400.0


class MountMixin(CentreMixin):
    """Slews (centred on request) and flips."""

    async def _slew(self, step: SlewStep, scope: Scope) -> None:
        s = self.s
        if s.mount is None:
            raise DeviceError("no mount")
        ra, dec = step.slew.ra, step.slew.dec
        if ra is None or dec is None:
            if scope.target is None:
                raise DeviceError("slew without coordinates outside a target")
            ra = ra if ra is not None else scope.target.target.coordinates.ra
            dec = dec if dec is not None else scope.target.target.coordinates.dec
        was_guiding = self.guiding
        if was_guiding:
            await self._stop_guiding()
        eq = self.p.equipment
        await actions.slew(s.mount, s.clock, ra, dec, eq.mount.slew_timeout if eq.mount else 300)
        if eq.mount is not None:
            await s.clock.sleep(eq.mount.settle_time)
        centring = step.slew.center
        if centring is not None:
            name = scope.target.target.name if scope.target is not None else "slew"
            await self._centre(ra, dec, centring, name)
        self.bus.emit("slewed", ra=ra, dec=dec)
        if was_guiding:
            await self._start_guiding(None, False)

    async def _maybe_flip(self, ct: CompiledTarget, exposure: float | None = None) -> None:
        """Flip once the target is ``after`` minutes past the meridian. Before a light of
        ``exposure`` seconds that would still be running at that moment, wait for it (idle)
        and flip first: no exposure straddles a flip."""
        s = self.s
        mf = self.p.triggers.meridian_flip
        if mf is None or s.mount is None or s.visibility is None:
            return
        side = await s.mount.side_of_pier()
        # ASCOM convention: a target slewed to before the meridian is on pier side "west" and
        # stays so as it crosses; the flip puts the mount on "east"
        if side.value != "west":
            return
        minutes_past = s.visibility(ct.target).hour_angle_at(s.clock.now()) * 60.0
        if not -12 * 60 < minutes_past < 12 * 60:
            return
        if minutes_past < mf.after:
            wait = (mf.after - minutes_past) * 60.0 * SIDEREAL_SECONDS
            if exposure is None or wait >= exposure:
                return
            self.bus.emit("flip_wait", seconds=round(wait, 3))
            await s.clock.sleep(wait)
            minutes_past = float(mf.after)
        self.bus.emit("trigger", kind="meridian_flip", hour_angle=minutes_past / 60.0)
        self._fire("begin_meridian_flip")
        try:
            await self._slew(SlewStep.model_validate({"slew": {}}), Scope(ct))
        finally:
            self._fire("gap_done")
