"""Plate-solved centring after a slew (``slew: {center: ...}``), as N.I.N.A.'s "slew and center".

Each attempt: expose a centring frame (not a light: it is written under ``<data>/solve/``,
never counted, indexed or stacked), plate-solve it, measure how far the field centre is from
the wanted coordinates; within ``tolerance`` the step is done. Otherwise the mount is synced
to the solved position (a mount with the :class:`MountSync` capability) and slewed to the
coordinates again, or — without sync — slewed to the coordinates displaced by the opposite of
the error. When ``attempts`` run out the step fails (:class:`CentringFailed`, a device error:
the step's ``on_error`` policy decides), as N.I.N.A. does: a target imaged off-centre is not
what the plan asked for.

Every attempt is an event ``centring`` (attempt, solved ra/dec, error_arcsec, action:
``done`` | ``sync`` | ``offset`` | ``unsolved`` | ``nominal``). An abort cancels the task:
the exposure is aborted (``actions.expose``) and the solver's process group killed.

Nominal rigs (the estimate, ``--dry-run``) have no solver: one attempt's exposure, download
and :data:`NOMINAL_SOLVE_S` are spent on the clock, so the estimate counts centring time
without running solve-field.
"""

from __future__ import annotations

import logging

from runner.devices.interfaces import MountSync
from runner.engine import actions
from runner.engine.exec_focus import FocusMixin
from runner.errors import CentringFailed, SolveError
from runner.plan.models import CenterArgs
from runner.solve.geometry import offset_point, separation_arcsec, tangent_offset

log = logging.getLogger("nightrunner.engine")

#: Clock seconds the estimate charges for one plate solve (a hinted solve of a 33′ field takes
#: 0.5–2 s here; a slower machine or a bigger image takes longer).
NOMINAL_SOLVE_S = 3.0


class CentreMixin(FocusMixin):
    """Slew-and-centre: expose, solve, sync or offset, repeat."""

    def _centring_budget(self, c: CenterArgs) -> float:
        """Clock seconds a whole centring may take (added to the slew step's timeout)."""
        eq = self.p.equipment
        per = (c.exposure + eq.camera.download_time + eq.exposure_margin
               + c.solve_timeout * self.s.clock.speed
               + (eq.mount.slew_timeout + eq.mount.settle_time if eq.mount else 300))
        return c.attempts * per

    async def _centre(self, ra: float, dec: float, c: CenterArgs, name: str) -> None:
        s = self.s
        eq = self.p.equipment
        mount = s.mount
        if mount is None:
            raise CentringFailed("centring needs a mount")
        timeout = c.exposure + eq.camera.download_time + eq.exposure_margin
        if s.solver is None:  # nominal devices: time one attempt, solve nothing
            await actions.expose(s.camera, s.clock, c.exposure, "light", timeout)
            await s.clock.sleep(NOMINAL_SOLVE_S)
            self.bus.emit("centring", attempt=1, ra=None, dec=None, error_arcsec=None,
                          action="nominal")
            return
        from runner.solve.astrometry import SolveHints

        error: float | None = None
        syncer = mount if isinstance(mount, MountSync) else None
        syncs = syncer is not None and await syncer.can_sync()
        for attempt in range(1, c.attempts + 1):
            frame = await actions.expose(s.camera, s.clock, c.exposure, "light", timeout)
            m_ra, m_dec = await mount.coordinates()
            hints = SolveHints(scale_arcsec=s.solver.scale_arcsec(frame.binning), ra=m_ra,
                               dec=m_dec, radius_deg=2.0,
                               downsample=2 if frame.data.shape[1] >= 1000 else 1)
            try:
                sol, path = await s.solver.solve(frame, f"{name}_centre{attempt}", hints,
                                                 c.solve_timeout)
            except SolveError as exc:
                self.bus.emit("centring", attempt=attempt, ra=None, dec=None,
                              error_arcsec=None, action="unsolved", message=str(exc))
                continue
            error = separation_arcsec(ra, dec, sol.ra, sol.dec)
            done = error <= c.tolerance
            action = "done" if done else "sync" if syncs else "offset"
            self.bus.emit("centring", attempt=attempt, ra=round(sol.ra, 6),
                          dec=round(sol.dec, 6), error_arcsec=round(error, 2), action=action,
                          path=str(path), solve_s=round(sol.seconds, 2), solver=sol.solver)
            if done:
                return
            if syncs and syncer is not None:
                await syncer.sync_to(sol.ra, sol.dec)
                goal = (ra, dec)
            else:  # aim as far on the other side of the target as the field landed
                east, north = tangent_offset(ra, dec, sol.ra, sol.dec)
                goal = offset_point(m_ra, m_dec, -east, -north)
            await actions.slew(mount, s.clock, goal[0], goal[1],
                               eq.mount.slew_timeout if eq.mount else 300)
            if eq.mount is not None:
                await s.clock.sleep(eq.mount.settle_time)
        last = "no frame solved" if error is None else f"last error {error:.1f}″"
        raise CentringFailed(f"not centred within {c.tolerance:g}″ after {c.attempts} "
                             f"attempt(s) ({last})")
