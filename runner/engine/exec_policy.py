"""Policies: every step runs under its error policy (retry with doubling backoff, then skip
step / skip target / abort) and its timeout; the dispatch from a step to what it does, and the
`wait` step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from runner.clock import timeout_real
from runner.engine import actions
from runner.engine.compiler import Leaf
from runner.engine.exec_frames import FramesMixin
from runner.engine.exec_types import (
    FatalRunError,
    Scope,
    SkipTarget,
)
from runner.errors import (
    DeviceError,
    GuiderError,
    NightrunnerError,
)
from runner.plan.models import (
    CalibrationStep,
    CoolStep,
    DitherStep,
    ExposeStep,
    FilterStep,
    FocusStep,
    GuideStep,
    ParkStep,
    SettleFailure,
    SlewStep,
    StackStep,
    Then,
    WaitStep,
    WarmStep,
)

log = logging.getLogger("nightrunner.engine")


class PolicyMixin(FramesMixin):
    """Retries, timeouts, skip-step and the step dispatch."""

    async def _with_policy(
        self,
        step_id: str,
        kind: str,
        policy: Any,
        timeout: float | None,
        action: Callable[[], Awaitable[None]],
    ) -> bool:
        """True when the step succeeded, False when its policy skipped it."""
        attempt = 0
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # (an abort) that lands as the step finishes
                async with asyncio.timeout(
                    None if timeout is None else timeout_real(self.s.clock, timeout)
                ):
                    await action()
                return True
            except TimeoutError:
                exc: Exception = DeviceError(f"{kind} step timed out after {timeout:g} s")
            except (DeviceError, GuiderError) as e:
                exc = e
            self._error(f"{step_id} ({kind}): {exc}")
            if attempt < policy.retry:
                delay = policy.backoff * (2**attempt)
                attempt += 1
                self.counters.retries += 1
                self.bus.emit("retry", step=step_id, attempt=attempt, delay=delay, error=str(exc))
                await self.s.clock.sleep(delay)
                await self._reconnect()
                continue
            then = Then(policy.then)
            self.bus.emit("policy", step=step_id, action=then.value, error=str(exc))
            if then is Then.skip_step:
                return False
            if then is Then.skip_target and self.target is not None:
                raise SkipTarget(f"{kind} failed: {exc}") from exc
            raise FatalRunError(f"{kind} failed: {exc}") from exc

    async def _run_leaf(self, leaf: Leaf, scope: Scope) -> bool:
        timeout = leaf.timeout if leaf.timeout is not None else self._default_timeout(leaf)
        self._fire(f"begin_{leaf.kind}")
        self.bus.emit("step", id=leaf.id, kind=leaf.kind, phase=scope.phase)
        # the step runs as its own task so that a user's "skip step" can end it alone (an
        # exposure in progress is aborted and discarded), while an abort still ends the night
        work = asyncio.ensure_future(self._with_policy(
            leaf.id, leaf.kind, leaf.policy, timeout, lambda: self._do_leaf(leaf, scope)
        ))
        self._step = (leaf, work)
        me = asyncio.current_task()
        try:
            ok = await work
            if me is not None and me.cancelling():
                # the abort reached the step's task and something in it swallowed it (a
                # timeout finishing in the same iteration): the night must stop all the same
                raise asyncio.CancelledError
            return ok
        except asyncio.CancelledError:
            if self._skip_step_reason is None or (me is not None and me.cancelling()):
                raise
            reason, self._skip_step_reason = self._skip_step_reason, None
            self.bus.emit("step_skipped", id=leaf.id, kind=leaf.kind, reason=reason)
            return False
        finally:
            self._step = None
            if self.model.action is not None:
                self._fire("step_done")

    def _default_timeout(self, leaf: Leaf) -> float | None:
        eq = self.p.equipment
        step = leaf.step
        if isinstance(step, CoolStep):
            return step.cool.timeout + 30
        if isinstance(step, WarmStep):
            return step.warm.timeout + 30
        if isinstance(step, FilterStep):
            return (eq.filter_wheel.change_time * 4 + 30) if eq.filter_wheel else 60
        if isinstance(step, FocusStep) and step.focus.auto is None:
            return eq.focuser.move_timeout if eq.focuser else 120
        if isinstance(step, SlewStep) and step.slew.center is not None:
            return (eq.mount.slew_timeout if eq.mount else 300) + self._centring_budget(
                step.slew.center)
        if isinstance(step, SlewStep | ParkStep):
            return eq.mount.slew_timeout if eq.mount else 300
        if isinstance(step, GuideStep):
            settle = step.guide.settle or self.p.settle
            return settle.timeout + 120
        if isinstance(step, DitherStep):
            settle = step.dither.settle or self.p.settle
            return settle.timeout + 60
        return None  # exposures time out per frame; waits bound themselves

    async def _do_leaf(self, leaf: Leaf, scope: Scope) -> None:
        step = leaf.step
        s = self.s
        if isinstance(step, ExposeStep):
            await self._expose_step(leaf, step.expose, scope)
        elif isinstance(step, FilterStep):
            await self._change_filter(step.filter)
        elif isinstance(step, CoolStep | WarmStep):
            args = step.cool if isinstance(step, CoolStep) else step.warm
            temp = await actions.set_temperature(
                s.camera, s.clock, args.to, args.rate, args.timeout,
                cooler_off_at_end=isinstance(step, WarmStep),
            )
            self.bus.emit("temperature", ccd_temp=temp, set_temp=args.to)
        elif isinstance(step, FocusStep):
            await self._focus(step)
        elif isinstance(step, GuideStep):
            if step.guide.action == "start":
                await self._start_guiding(step.guide.settle, step.guide.recalibrate)
            else:
                await self._stop_guiding()
        elif isinstance(step, DitherStep):
            d = step.dither
            await self._dither(d.amount, d.ra_only, d.settle, SettleFailure.go_on)
        elif isinstance(step, WaitStep):
            await self._wait(step, scope)
        elif isinstance(step, SlewStep):
            await self._slew(step, scope)
        elif isinstance(step, ParkStep):
            assert s.mount is not None
            if self.guiding:  # PHD2 gone must not keep the mount from parking
                try:
                    await self._stop_guiding()
                except (GuiderError, DeviceError) as exc:
                    self._error(f"{leaf.id} (park): stopping guiding first failed: {exc}; "
                                "parking anyway")
            await actions.park(s.mount, s.clock, self.p.equipment.mount.slew_timeout
                               if self.p.equipment.mount else 300)
            self.bus.emit("parked")
        elif isinstance(step, StackStep):
            if s.stacking is None or self.target is None:
                return
            if step.stack == "off":
                self.stack = None
                await self.writer.drain()
                await s.stacking.end()
            else:
                self.stack = s.stacking.begin(self.target)
        elif isinstance(step, CalibrationStep):
            await self._calibration(leaf, step, scope)
        else:  # pragma: no cover - the compiler only emits known kinds
            raise NightrunnerError(f"cannot execute step kind {leaf.kind}")


    async def _wait(self, step: WaitStep, scope: Scope) -> None:
        s = self.s
        w = step.wait
        if w.for_ is not None:
            await s.clock.sleep(w.for_)
        elif w.until is not None:
            assert s.site_tz is not None
            now = s.clock.now()
            target_time = w.until.next_after(self._night_reference(), s.site_tz)
            if target_time < now:
                self.bus.emit("warning", message=f"wait until {w.until}: already past")
                return
            self.bus.emit("waiting", until=target_time.isoformat())
            await s.clock.sleep((target_time - now).total_seconds())
        elif w.altitude is not None and scope.target is not None and s.visibility is not None:
            vis = s.visibility(scope.target.target)
            now = s.clock.now()
            limit = now + timedelta(seconds=step.timeout or 86_400.0)
            when = vis.when_altitude(now, w.altitude, limit)
            if when is None:
                local = limit.astimezone(s.site_tz).strftime("%H:%M")
                raise SkipTarget(f"altitude {w.altitude:g}° not reached before {local}")
            await s.clock.sleep((when - now).total_seconds())
            while vis.altitude_at(s.clock.now()) < w.altitude:  # the sky's edge, to the second
                await s.clock.sleep(1.0)
