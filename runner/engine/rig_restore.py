"""Keeping the rig in the state the night set, across device and server restarts.

A device server (an Alpaca server, indiserver) that restarts during a night comes back with
every device disconnected and at its defaults: cooler off, mount parked, filter and focuser
wherever the driver starts. Only a device whose call failed would notice, and the Alpaca
simulators even go on taking exposures while reporting ``Connected = False``. So before every
light frame the :class:`RigKeeper`

1. **checks** each device with a round trip (:meth:`Device.probe`) and compares what it
   reports with what the night set (cooler on at the set point, mount unparked and tracking,
   the filter in place) — a failure or a contradiction marks the device's *server* as
   restarted;
2. **reconnects every device of that server** (not only the one whose call failed), reporting
   "reconnected" only for a device whose connect answered;
3. **restores** what the night needs, before the light: mount unparked, tracking and pointing
   at the current target again, filter, focuser position, cooler on at the set point (and
   waits for the temperature under the cool step's own rate and timeout), guiding restarted.

A server that is still down raises ``DeviceDisconnected`` and the step's error policy retries
(each retry reconnects again). A rig that answers but cannot be restored raises
:class:`RigNotRestored`: the executor stops imaging that target, with an ``error`` and a
``restore_failed`` event — frames are never taken in a wrong state silently.

What "the night set" is comes from the night's own events (``slewed``, ``parked``,
``temperature``, ``focus``, ``autofocus``, ``filter``) and from the focuser position read at
each check while nothing needed restoring.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from runner.devices.interfaces import Device
from runner.engine import actions
from runner.errors import DeviceDisconnected, DeviceError, GuiderError, NightrunnerError
from runner.plan.models import CoolArgs, CoolStep, WarmStep

if TYPE_CHECKING:
    from runner.engine.executor import Executor

#: Device roles in the order they are checked and reconnected.
ROLES = ("camera", "filter_wheel", "focuser", "mount", "safety")
#: Set point agreement, °C (drivers round what they are sent).
SET_POINT_TOLERANCE = 0.2
DEFAULT_COOL_TIMEOUT = float(CoolArgs.model_fields["timeout"].default)  # a `cool` step's


class RigNotRestored(NightrunnerError):
    """The devices answer again but the state the night needs could not be restored."""


class RigKeeper:
    """What the night has set on the rig; checked before each light and restored after a
    (re)connect. One per executor."""

    def __init__(self, executor: Executor) -> None:
        self.x = executor
        self.set_point: float | None = None  # cooler wanted on at this set point
        self.cooling: CoolArgs | None = None  # the rule that set it (rate, timeout)
        self.pointing: tuple[float, float] | None = None  # J2000 degrees, mount tracking
        self.focus: int | None = None  # last known-good focuser position
        self.pending: set[str] = set()  # roles whose state must be restored
        self.reasons: list[str] = []  # why, for the "restored" event
        self._step_kind: dict[str, object] = {}
        self._last_step: object = None
        self._filter: str | None = None
        #: roles the last reconnect() tried (a retry reconnects just before the check)
        self._just_tried: set[str] = set()
        self._index_steps()
        executor.bus.subscribe(self._on_event)

    # ------------------------------------------------------------------ what the night set

    def _index_steps(self) -> None:
        """Step id → cool/warm step, so a ``temperature`` event can be read with its rule."""
        from runner.engine.compiler import FilterLoop, Leaf, Loop

        p = self.x.p
        stack: list[Any] = [*p.startup, *p.shutdown]
        for ct in p.targets:
            stack.extend(ct.body)
        while stack:
            node = stack.pop()
            if isinstance(node, Leaf):
                if isinstance(node.step, CoolStep | WarmStep):
                    self._step_kind[node.id] = node.step
            elif isinstance(node, Loop | FilterLoop):
                stack.extend(node.body)

    def _on_event(self, e: dict[str, Any]) -> None:
        # a step the night ran itself after a reconnect also restores what it sets
        kind = e["event"]
        if kind == "step":
            self._last_step = self._step_kind.get(str(e.get("id")))
        elif kind == "temperature" and not e.get("restored"):
            step = self._last_step
            if isinstance(step, CoolStep):
                self.set_point, self.cooling = step.cool.to, step.cool
            elif isinstance(step, WarmStep):
                self.set_point, self.cooling = None, None
            self.pending.discard("camera")
        elif kind == "slewed":
            self.pointing = (float(e["ra"]), float(e["dec"]))
            self.pending.discard("mount")
        elif kind == "parked":
            self.pointing = None
            self.pending.discard("mount")
        elif kind in ("focus", "autofocus") and e.get("position") is not None:
            self.focus = int(e["position"])
            self.pending.discard("focuser")
        elif kind == "filter":
            name = str(e.get("filter"))
            old, self._filter = self._filter, name
            if self.focus is not None and old is not None and old != name and e.get("moved"):
                self.focus += self.x._focus_offset(name) - self.x._focus_offset(old)
            self.pending.discard("filter_wheel")

    # ------------------------------------------------------------------ devices

    def devices(self) -> list[tuple[str, Device]]:
        s = self.x.s
        out = []
        for role in ROLES:
            dev = getattr(s, role)
            if dev is not None:
                out.append((role, dev))
        return out

    def _server_of(self, role: str, dev: Device) -> str:
        return dev.endpoint or f"in-process {role}"

    async def reconnect(self, suspects: set[str] | None = None) -> None:
        """Reconnect every device of every server that has a disconnected device (or a
        device in ``suspects``, roles found restarted by a check).

        Raises nothing for a server that is still down: the failure is reported as an error
        and the device stays disconnected (the next check or retry tries again).
        """
        devices = self.devices()
        down: set[str] = set()
        for role, dev in devices:
            if not dev.connected or (suspects and role in suspects):
                down.add(self._server_of(role, dev))
        self._just_tried = {role for role, dev in devices if self._server_of(role, dev) in down}
        failed: dict[str, list[str]] = {}
        for role, dev in devices:
            server = self._server_of(role, dev)
            if server not in down:
                continue
            try:
                await dev.connect()
                await dev.probe()  # "reconnected" only for a device that really answers
            except DeviceError as exc:
                failed.setdefault(server, []).append(str(exc))
                continue
            self.x._connections += 1
            self.pending.add(role)
            self.x.bus.emit("reconnected", device=type(dev).__name__, role=role,
                            server=self._server_of(role, dev))
        for messages in failed.values():  # one error per server, not one per device
            more = f" (and {len(messages) - 1} more of its devices)" if len(messages) > 1 else ""
            self.x._error(f"reconnect failed: {messages[0]}{more}")

    async def _check(self) -> dict[str, str]:
        """Roles whose device failed its probe or contradicts what the night set → why."""
        s = self.x.s
        found: dict[str, str] = {}
        for role, dev in self.devices():
            try:
                await dev.probe()
                why = await self._contradiction(role, dev)
            except DeviceError as exc:
                why = str(exc)
            if why:
                found[role] = why
        if not found and not self.pending and s.focuser is not None:
            with contextlib.suppress(DeviceError):
                self.focus = int(await s.focuser.position())
        return found

    async def _contradiction(self, role: str, dev: Any) -> str:
        """What ``dev`` reports against what the night set ("" when it agrees)."""
        if role == "camera" and self.set_point is not None:
            if not await dev.cooler_on():
                return f"the camera's cooler is off (the night set {self.set_point:g} °C)"
            sp = await dev.set_point()
            if sp is None or abs(sp - self.set_point) > SET_POINT_TOLERANCE:
                return f"the camera's set point is {sp} (the night set {self.set_point:g} °C)"
        if role == "mount" and self.pointing is not None:
            if await dev.is_parked():
                return "the mount reports itself parked (the night is imaging a target)"
            if not await dev.tracking():
                return "the mount is not tracking (the night is imaging a target)"
        if role == "filter_wheel" and self.x.filter is not None:
            slot = self.x.s.filter_slots.get(self.x.filter)
            pos = await dev.position()
            if slot is not None and pos != slot:
                return f"the filter wheel is at slot {pos}, not {self.x.filter} (slot {slot})"
        return ""

    # ------------------------------------------------------------------ before each light

    async def ensure(self) -> None:
        """Before a light frame: check, reconnect what a restarted server dropped, restore.

        Raises:
            DeviceDisconnected: a device is still unreachable (the step's policy retries).
            RigNotRestored: the devices answer but the night's state could not be restored.
        """
        found = await self._check()
        if not found and not self.pending:
            return
        for role, why in found.items():
            if f"{role}: {why}" not in self.reasons:
                self.reasons.append(f"{role}: {why}")
        self.x.bus.emit("rig_check", problems=found)
        # a device just reconnected reports its server's defaults until restored: only a
        # contradiction from one that was not is news of a (further) restart
        suspects = set(found) - self.pending
        if suspects - self._just_tried:
            await self.reconnect(suspects)
        self._just_tried = set()
        missing = [type(d).__name__ for _, d in self.devices() if not d.connected]
        if missing:
            raise DeviceDisconnected(
                f"{', '.join(missing)} not reachable; their server may still be restarting"
            )
        await self.restore()

    async def restore(self) -> None:
        """Put back what the night set on the devices that were reconnected.

        Raises:
            RigNotRestored: naming what could not be restored and why.
        """
        if not self.pending:
            return
        x, s = self.x, self.x.s
        eq = x.p.equipment
        x._sent_settings = None  # gain, offset, binning and ROI are sent again
        done: list[str] = []
        roles = set(self.pending)
        try:
            if "mount" in roles and self.pointing is not None and s.mount is not None:
                if x.guiding and s.guider is not None:
                    with contextlib.suppress(GuiderError):
                        await x._stop_guiding()
                    x.guiding = True  # wanted: restarted below
                ra, dec = self.pointing
                await actions.slew(s.mount, s.clock, ra, dec,
                                   eq.mount.slew_timeout if eq.mount else 300)
                if eq.mount is not None:
                    await s.clock.sleep(eq.mount.settle_time)
                if not await s.mount.tracking():
                    await s.mount.set_tracking(True)
                done.append("pointing")
            if "filter_wheel" in roles and x.filter is not None and s.filter_wheel is not None:
                slot = s.filter_slots.get(x.filter)
                if slot is not None:
                    await actions.move_filter(s.filter_wheel, s.clock, slot,
                                              eq.filter_wheel.change_time * 4 + 30
                                              if eq.filter_wheel else 60)
                    done.append("filter")
            if "focuser" in roles and self.focus is not None and s.focuser is not None:
                if await s.focuser.position() != self.focus:
                    await actions.move_focuser(s.focuser, s.clock, self.focus,
                                               eq.focuser.move_timeout if eq.focuser else 120)
                done.append("focus")
            if "camera" in roles and self.set_point is not None:
                rule = self.cooling
                temp = await actions.set_temperature(
                    s.camera, s.clock, self.set_point, rule.rate if rule else None,
                    rule.timeout if rule else DEFAULT_COOL_TIMEOUT,
                )
                done.append("temperature")
                x.bus.emit("temperature", ccd_temp=temp, set_temp=self.set_point,
                           restored=True)
            if "mount" in roles and x.guiding and s.guider is not None:
                x.guiding = False
                await x._start_guiding(None, False)
                done.append("guiding")
        except (DeviceError, GuiderError) as exc:
            servers = sorted({self._server_of(r, d) for r, d in self.devices() if r in roles})
            msg = (f"could not restore the rig after a reconnect to {', '.join(servers)}: {exc}"
                   " — no more lights for this target")
            x.bus.emit("restore_failed", devices=sorted(roles), done=done, error=str(exc),
                       reasons=list(self.reasons))
            self.pending.clear()
            self.reasons.clear()
            x._error(msg)
            raise RigNotRestored(msg) from exc
        self.x.bus.emit("restored", what=done, after="reconnect",
                        devices=sorted(roles), reasons=list(self.reasons))
        self.pending.clear()
        self.reasons.clear()
