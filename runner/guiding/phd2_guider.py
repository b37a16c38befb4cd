"""``PHD2Guider``: the engine's ``Guider`` interface on top of the PHD2 client.

``guide`` and ``dither`` return only after ``SettleDone`` Status 0 and raise ``SettleFailed``
otherwise — "guiding started" is not "ready". Star loss is surfaced, not handled here: the plan's
``star_lost`` trigger decides (wait, restart guiding, then its policy), using ``star_lost``,
``star_lost_for_s()``, ``wait_star_regained()`` and ``recover_lost_star()``.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum

from runner.clock import Clock
from runner.devices.interfaces import Guider, GuiderState, GuideStats
from runner.errors import GuiderConnectionError, GuiderError
from runner.guiding.phd2_client import PHD2Client
from runner.guiding.phd2_types import PHD2RpcError, SettleParams, SettleProgress
from runner.guiding.phd2_wire import Event
from runner.plan.equipment import GuiderProfile

log = logging.getLogger(__name__)


class StarLostRecovery(StrEnum):
    """How ``recover_lost_star`` got the star back."""

    regained = "regained"  # it came back by itself within the wait
    restarted = "restarted"  # guiding was restarted on a freshly selected star


class PHD2Guider(Guider):
    """A guider backed by PHD2 (real, or the simulator started in-process)."""

    def __init__(
        self,
        client: PHD2Client,
        *,
        profile: str | None = None,
        exposure_s: float | None = None,
        connect_equipment: bool = True,
    ) -> None:
        self.client = client
        self._profile = profile
        self._exposure_s = exposure_s
        self._connect_equipment = connect_equipment
        self._lost_since: float | None = None
        self.star_lost_events = 0
        client.add_listener(self._on_event)

    @classmethod
    def from_profile(
        cls, profile: GuiderProfile, clock: Clock, *, host: str | None = None,
        port: int | None = None,
    ) -> PHD2Guider:
        """From the equipment profile's ``guider`` section; ``host``/``port`` override it
        (the engine passes the in-process simulator's port)."""
        client = PHD2Client(
            host or profile.host, port or profile.port, clock=clock,
            pixel_scale_arcsec=profile.pixel_scale,
        )
        return cls(client, profile=profile.profile, exposure_s=profile.exposure)

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Connect to PHD2, select the profile, connect its equipment, set the exposure."""
        c = self.client
        await c.connect_server()
        if self._profile:
            await c.set_profile(self._profile)
        if self._connect_equipment and not await c.equipment_connected():
            await c.connect_equipment()
        if self._exposure_s is not None:
            try:
                await c.set_exposure_s(self._exposure_s)
            except PHD2RpcError as exc:
                log.warning("PHD2 kept its exposure (%s): %s", await c.get_exposure_s(), exc)

    async def disconnect(self) -> None:
        await self.client.disconnect_server()

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def state(self) -> GuiderState:
        if not self.client.connected:
            raise GuiderConnectionError("PHD2 is not connected")
        return self.client.app_state or await self.client.get_app_state()

    # ------------------------------------------------------------------ guiding

    async def guide(
        self, settle_pixels: float, settle_time: float, settle_timeout: float,
        recalibrate: bool = False,
    ) -> None:
        await self.client.start_guiding(
            SettleParams(settle_pixels, settle_time, settle_timeout), recalibrate=recalibrate
        )

    async def dither(
        self, amount: float, ra_only: bool, settle_pixels: float, settle_time: float,
        settle_timeout: float,
    ) -> None:
        """Raises ``NotGuidingError`` when PHD2 is not guiding (the engine skips the dither
        with a warning), ``SettleFailed`` when the settle fails or times out."""
        await self.client.dither(
            amount, SettleParams(settle_pixels, settle_time, settle_timeout), ra_only=ra_only
        )

    async def stop(self) -> None:
        await self.client.stop_capture()

    async def pause(self, paused: bool) -> None:
        if paused:
            await self.client.pause_guiding()
        else:
            await self.client.resume_guiding()

    def start_stats(self) -> None:
        self.client.start_stats()

    def stats(self) -> GuideStats | None:
        return self.client.stats()

    @property
    def settle_progress(self) -> SettleProgress | None:
        return self.client.settle_progress

    # ------------------------------------------------------------------ star lost

    def _on_event(self, ev: Event) -> None:
        name = ev.get("Event")
        if name == "StarLost":
            self.star_lost_events += 1
            if self._lost_since is None:
                self._lost_since = self.client.clock.monotonic()
                log.warning("PHD2 lost the guide star (%s)", ev.get("Status", "no status"))
        elif name in ("GuideStep", "StartGuiding", "GuidingStopped", "LoopingExposuresStopped"):
            if self._lost_since is not None and name == "GuideStep":
                log.info("PHD2 found the guide star again after %.0f s", self.star_lost_for_s())
            self._lost_since = None

    @property
    def star_lost(self) -> bool:
        """PHD2 is guiding but the last frame had no star (state LostLock)."""
        return self.client.app_state is GuiderState.lost_lock

    def star_lost_for_s(self) -> float:
        """Clock seconds since the current run of lost frames began (0 when not lost)."""
        if self._lost_since is None:
            return 0.0
        return self.client.clock.monotonic() - self._lost_since

    async def wait_star_regained(self, timeout_s: float) -> bool:
        """True once a GuideStep shows the star again, False after ``timeout_s`` clock s."""
        if not self.star_lost:
            return True
        fut = self.client.expect_event(lambda ev: ev.get("Event") == "GuideStep")
        try:
            async with asyncio.timeout(self.client.clock.to_real(timeout_s)):
                await fut
        except TimeoutError:
            return False
        return True

    async def recover_lost_star(
        self, *, wait_s: float, restart_guiding: bool, settle_pixels: float,
        settle_time: float, settle_timeout: float,
    ) -> StarLostRecovery:
        """The plan's star-lost recovery up to its policy: wait for the star, then (if allowed)
        restart guiding — stop, and ``guide`` again, which selects a star afresh. Raises
        ``GuiderError`` (or ``SettleFailed``) when that fails; the caller applies ``then``."""
        if await self.wait_star_regained(wait_s):
            return StarLostRecovery.regained
        if not restart_guiding:
            raise GuiderError(f"guide star lost for more than {wait_s:g} s")
        log.warning("guide star still lost after %g s; restarting guiding", wait_s)
        await self.stop()
        await self.guide(settle_pixels, settle_time, settle_timeout)
        return StarLostRecovery.restarted
