"""A run from start to finish: data directory, lock, devices, guider, stacker, journal,
signals, the executor, the safe shutdown and the summary.

Exit semantics (CLI): completed → 0 (targets skipped by constraints are not failures);
failed or aborted → 1, always after the shutdown sequence ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.clock import VIRTUAL_HORIZON_S, Clock, ScaledClock, VirtualClock, VirtualLoop
from runner.devices.interfaces import Guider
from runner.engine.compiler import Program, compile_plan
from runner.engine.events import EventBus
from runner.engine.executor import Executor, FatalRunError, Services
from runner.engine.journal import Journal, ResumeState, plan_digest, resume_state
from runner.engine.lock import DataDirLock
from runner.engine.memory import keep_frame_buffers
from runner.engine.reconcile import journalled_frames, reconcile
from runner.engine.summary import whole_night
from runner.errors import NightrunnerError, RunAborted
from runner.plan.equipment import Equipment
from runner.plan.models import Plan, Target
from runner.storage.durable import atomic_write_text, fsync_dir

log = logging.getLogger("nightrunner.run")

# signals that end the night in the safe shutdown, and signals that are only noted
SAFE_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HARMLESS_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


@dataclass
class RunOptions:
    data_dir: Path
    speed: float | None = None
    resume: bool = False
    dry_run: bool = False
    start: datetime | None = None  # simulated start instant (tests, rehearsals)
    progress: str = "auto"  # auto | rich | plain | none
    plan_text: bytes = b""
    plan_path: Path | None = None


@dataclass
class RunResult:
    outcome: str  # completed | failed | aborted
    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def rig_safe(self) -> bool:
        """False when a shutdown step could not reach its device (the camera may be cold,
        guiding may run, the mount may be unparked): a completed night then exits 1 too."""
        return bool(self.summary.get("rig_safe", True))

    @property
    def exit_code(self) -> int:
        return 0 if self.outcome == "completed" and self.rig_safe else 1


@contextlib.contextmanager
def _noting(problems: list[str], what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # OSError mostly; a bug in the report must not hide the rest
        problems.append(f"{what}: {type(exc).__name__}: {exc}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "plan"


def _find_resumable(runs: Path, digest: str) -> Path | None:
    """The latest run of this plan, unless it finished. Its plan is read from ``run.json`` or,
    when that is unreadable (a crash before the disk had it), from the journal's
    ``run_start`` entries, which carry the same digest."""
    if not runs.is_dir():
        return None
    for d in sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True):
        if _run_digest(d) != digest:
            continue
        if resume_state(d / "journal.jsonl").finished:
            return None  # the latest run of this plan finished: nothing to resume
        return d
    return None


def _why_nothing_to_resume(runs: Path, digest: str, plan_path: Path | None, name: str) -> str:
    """The message for a --resume that finds nothing: a plan edited since its interrupted run
    is the common case, and the user must hear that the edit is why."""
    fresh = "starting a fresh run"
    if not runs.is_dir():
        return f"nothing to resume for this plan: {fresh}"
    wanted = str(plan_path) if plan_path else None
    for d in sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True):
        try:
            info = json.loads((d / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict) or info.get("plan_digest") == digest:
            continue
        same = (wanted is not None and info.get("plan") == wanted) or info.get("plan_name") == name
        if same and not resume_state(d / "journal.jsonl").finished:
            return (f"the plan changed since its interrupted run {d.name}: a changed plan "
                    f"is not resumed (that run's frames stay on disk); {fresh}")
    return f"nothing to resume for this plan: {fresh}"


def _run_digest(run_dir: Path) -> str | None:
    try:
        info = json.loads((run_dir / "run.json").read_text())
        if isinstance(info, dict) and info.get("plan_digest"):
            return str(info["plan_digest"])
    except (OSError, ValueError):
        pass
    return resume_state(run_dir / "journal.jsonl").plan_digest


class Run:
    """Owns everything one night needs; ``await Run(...).execute()``."""

    def __init__(
        self, plan: Plan, equipment: Equipment, options: RunOptions, *,
        devices: Any = None, listeners: list[Any] | None = None,
        clock: ScaledClock | VirtualClock | None = None,
    ) -> None:
        """``devices``: a connected ``DeviceSet`` the caller keeps (``nightrunner serve``);
        ``listeners`` get every event (the control plane). ``clock``: the hub's clock, or a
        :class:`VirtualClock` for a night on the simulators whose time the host's load cannot
        stretch (tests; a dry run gets its own)."""
        self.plan = plan
        self.equipment = equipment
        self.opt = options
        self.program: Program = compile_plan(plan, equipment)
        speed = options.speed or equipment.simulation.speed
        # a hub's devices run on the hub's clock: the night shares it
        self.clock: ScaledClock | VirtualClock = clock or ScaledClock(speed=speed,
                                                                       start=options.start)
        self.clock.hold()  # simulated time starts when the night does, not during set-up
        self.executor: Executor | None = None
        self._night: asyncio.Task[None] | None = None
        self.abort_reason: str | None = None
        self.bus: EventBus | None = None
        self._shutting_down = False
        self.devices: Any = devices
        self._own_devices = devices is None
        self.listeners = list(listeners or [])
        self.run_dir: Path | None = None
        self.warnings: list[str] = []  # from collaborators (the control plane), for the log
        self._resume_state: ResumeState | None = None
        self._journal: Journal | None = None
        self._lost_frames: list[str] = []
        self._errors: list[str] = []  # errors outside the executor (set-up), for the summary
        #: the night's first step has run: the clock held during set-up flows again
        self.night_begun = False

    def _run_error(self, bus: EventBus, message: str) -> None:
        self._errors.append(message)
        bus.emit("error", message=message)

    # ------------------------------------------------------------------ control

    def _dry_run_horizon(self) -> asyncio.TimerHandle | None:
        """On the virtual clock a loop that never ends would spin forever (validation refuses
        the ones it can foresee): the dry run, like the estimate, stops at its horizon."""
        loop = asyncio.get_running_loop()
        if not (self.opt.dry_run and isinstance(loop, VirtualLoop)):
            return None
        hours = VIRTUAL_HORIZON_S / 3600
        return loop.call_later(VIRTUAL_HORIZON_S, self.abort,
                               f"the dry run reached {hours:g} h of clock time: a loop never ends")

    def abort(self, reason: str = "abort requested") -> None:
        """Safe stop: the running exposure is aborted, then shutdown runs."""
        if self._shutting_down:
            if self.bus:
                self.bus.emit("warning", message=f"{reason} during shutdown: ignored")
            return
        if self.abort_reason is None:
            self.abort_reason = reason
            if self.bus:
                self.bus.emit("abort", reason=reason)
        if self._night is not None and not self._night.done():
            self._night.cancel()

    def pause(self) -> None:
        if self.executor:
            self.executor.request_pause()

    def resume(self) -> None:
        if self.executor:
            self.executor.request_resume()

    def status(self) -> dict[str, Any]:
        ex = self.executor
        if ex is None:
            return {"state": "starting"}
        return {
            "state": ex.model.state,
            "target": ex.target.target.name if ex.target else None,
            "filter": ex.filter,
            "guiding": ex.guiding,
            "paused": ex.pause_requested,
            "exposure": ex.current_exposure,
            "last_frame": ex.last_frame,
            "lights": ex.counters.lights,
            "errors": len(ex.counters.errors),
            "clock": self.clock.now().isoformat(),
        }

    # ------------------------------------------------------------------ the run

    async def execute(self) -> RunResult:
        """A dry run is the executor on nominal devices in virtual time, as ``estimate`` runs
        it: the whole night in the time its bookkeeping takes. It runs only on a
        :class:`VirtualLoop` (:func:`runner.clock.run_virtual`, from ``run --dry-run`` and
        the hub's ``run_plan``), never on the rig's devices or a scaled clock: there is one
        dry run, and it is the estimate's."""
        loop = asyncio.get_running_loop()
        if self.opt.dry_run:
            if not isinstance(loop, VirtualLoop):
                raise NightrunnerError("a dry run runs on the virtual clock "
                                       "(runner.clock.run_virtual)")
            self.clock = VirtualClock(loop, self.opt.start)
        data = self.opt.data_dir
        data.mkdir(parents=True, exist_ok=True)
        with DataDirLock(data, self.plan.name), self._signals():
            return await self._execute_locked(data)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """From the first device call to the summary, every signal that would end the process
        ends the night in the safe shutdown instead (closing the terminal or an SSH drop is a
        SIGHUP; systemd stops with SIGTERM; Ctrl-\\ is SIGQUIT), and the user signals, whose
        default would kill the process, are made harmless. SIGPIPE is already ignored by
        Python (a closed stdout raises, and the console listener is dropped). On a hub's
        devices (``nightrunner serve``) the hub owns the signals: it aborts the night and
        stops; taking them here would leave the hub without its handlers afterwards."""
        if not self._own_devices:
            yield
            return
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []

        def ignored(name: str) -> None:
            if self.bus:
                self.bus.emit("warning", message=f"{name} ignored (the night goes on)")

        for sig in SAFE_STOP_SIGNALS + HARMLESS_SIGNALS:
            handler = self.abort if sig in SAFE_STOP_SIGNALS else ignored
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, handler, f"signal {sig.name}")
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _execute_locked(self, data: Path) -> RunResult:
        digest = plan_digest(self.opt.plan_text or self.plan.model_dump_json().encode())
        runs = data / "runs"
        resume: ResumeState | None = None
        run_dir: Path | None = None
        resumed_note = None
        if self.opt.resume:
            run_dir = _find_resumable(runs, digest)
            if run_dir is not None:
                resume = resume_state(run_dir / "journal.jsonl")
            else:
                resumed_note = _why_nothing_to_resume(runs, digest, self.opt.plan_path,
                                                      self.plan.name)
        if run_dir is None:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            run_dir = runs / f"{stamp}-{_slug(self.plan.name)}"
            n = 1
            while run_dir.exists():
                n += 1
                run_dir = runs / f"{stamp}-{_slug(self.plan.name)}-{n}"
            run_dir.mkdir(parents=True)
            fsync_dir(runs)
            atomic_write_text(run_dir / "run.json", json.dumps({
                "plan": str(self.opt.plan_path) if self.opt.plan_path else None,
                "plan_name": self.plan.name, "plan_digest": digest,
                "started": datetime.now(UTC).isoformat(), "dry_run": self.opt.dry_run,
            }, indent=2))
        bus = EventBus(run_dir / "events.jsonl", clock=self.clock)
        self.bus = bus
        self.run_dir = run_dir
        for listener in self.listeners:
            bus.subscribe(listener)
        listener_close = self._attach_progress(bus)
        journal = Journal(run_dir / "journal.jsonl", sync=not self.opt.dry_run)
        if resumed_note:
            bus.emit("warning", message=resumed_note)
        for note in self.warnings:
            bus.emit("warning", message=note)
        if resume is not None:
            fixed = reconcile(resume, journal, data)
            for message in fixed.messages:
                bus.emit("warning", message=message)
            bus.emit("resume", run=run_dir.name, frames=len(resume.frames),
                     adopted=fixed.adopted, lost=fixed.lost,
                     temp_files_removed=fixed.temps_removed)
            self._lost_frames = fixed.lost
        self._resume_state = resume
        self._journal = journal
        journal.record("run_start", resume=resume is not None, speed=self.clock.speed,
                       plan_digest=digest)
        real_start = time.monotonic()
        clock_start = self.clock.monotonic()
        outcome = "failed"
        try:
            async with self._services(data, bus, run_dir.name) as services:
                self.executor = Executor(self.program, services, bus, journal, resume)
                self.executor.start_clock = clock_start
                # set-up imported astropy, pydantic, numpy…: a million long-lived objects that
                # every full garbage collection would walk again, pausing the night for tens of
                # milliseconds; freeze them out of the collector's generations
                gc.collect()
                gc.freeze()
                keep_frame_buffers()
                outcome = await self._drive(bus)
        except NightrunnerError as exc:
            self._run_error(bus, f"run could not start: {exc}")
            outcome = "failed"
        except Exception as exc:  # a bug: logged with its traceback, reported in one line
            log.exception("run failed unexpectedly")
            self._run_error(bus, f"internal error: {type(exc).__name__}: {exc}")
            outcome = "failed"
        finally:
            # the record of the night is written piece by piece: a full or failing disk loses
            # the piece it hits, never the rest (and never the shutdown, which ran before)
            problems: list[str] = []
            with _noting(problems, "journal"):
                journal.record("run_end" if outcome == "completed" else "run_stopped",
                               outcome=outcome)
            with _noting(problems, "journal"):
                journal.close()
            summary = self._summary(outcome, run_dir, real_start, clock_start)
            unsafe = self.executor.unsafe if self.executor else []
            summary["errors"] = [*summary["errors"], *self._errors]
            summary["rig_safe"] = not unsafe
            summary["site_timezone"] = None
            with contextlib.suppress(Exception):  # only a label for the report's times
                summary["site_timezone"] = getattr(_site_tz(self.plan), "key", None)
            summary["rig_unsafe_reasons"] = list(unsafe)
            if bus.write_error:
                problems.append(f"{bus.write_error} ({bus.write_failures} events)")
            with _noting(problems, "summary.json"):
                atomic_write_text(run_dir / "summary.json",
                                  json.dumps(summary, indent=2, default=str))
            bus.emit("run_end", outcome=outcome, lights=summary["frames"]["light"],
                     rig_safe=summary["rig_safe"])
            with _noting(problems, "console"):
                listener_close()
            bus.close()
            with _noting(problems, "report.html"):
                _html_report(run_dir)
            with _noting(problems, "report.md"):
                from runner.engine.report import write_report
                from runner.report.versus import markdown_of_report

                events = _read_events(run_dir / "events.jsonl")
                write_report(run_dir, summary, events,
                             extra=markdown_of_report(run_dir, summary.get("site_timezone")))
            summary["record_problems"] = problems
            for p in problems:
                log.error("night record: %s", p)
        return RunResult(outcome, run_dir, summary)

    async def _drive(self, bus: EventBus) -> str:
        ex = self.executor
        assert ex is not None
        safety = asyncio.create_task(self._watch_safety(bus))
        cooler: asyncio.Task[None] | None = None
        outcome = "completed"
        try:
            self._night = asyncio.create_task(self._night_from_now(ex))
            cooler = self._watch_cooler(bus)
            horizon = self._dry_run_horizon()
            if self.abort_reason is not None:  # aborted while the night was being set up
                self._night.cancel()
            try:
                await self._night
                if self.abort_reason is not None:
                    outcome = "aborted"  # the abort landed as the last step finished
            except asyncio.CancelledError:
                if self.abort_reason is None:
                    raise
                outcome = "aborted"
            except FatalRunError as exc:
                ex._error(f"fatal: {exc}")
                outcome = "failed"
            except RunAborted as exc:
                self.abort_reason = self.abort_reason or str(exc)
                outcome = "aborted"
            except Exception as exc:  # an engine bug must still end in a safe shutdown
                log.exception("unexpected error")
                ex._error(f"unexpected {type(exc).__name__}: {exc}")
                outcome = "failed"
            safety.cancel()
            self.clock.release()  # a night aborted before its first step: time flows again
            if horizon is not None:
                horizon.cancel()
            self._shutting_down = True
            await ex.run_shutdown()
            # frames taken before an abort or failure are still written (behind the shutdown)
            await ex.writer.drain_quietly()
            if ex.stack_ending is not None:
                with contextlib.suppress(Exception):
                    await ex.stack_ending
            if ex.writer.error is not None and outcome == "aborted":
                ex._error(f"frame not written: {ex.writer.error}")
            final = {"completed": "finish", "failed": "fail", "aborted": "aborted"}[outcome]
            ex.model.fire(final)
            bus.emit("state", state=ex.model.state)
            ex.outcome = outcome
            return outcome
        finally:
            safety.cancel()
            if cooler is not None:
                cooler.cancel()
            self.clock.release()
            if not self._shutting_down:  # an engine bug above: the rig is made safe anyway
                self._shutting_down = True
                await ex.run_shutdown()

    def _watch_cooler(self, bus: EventBus) -> asyncio.Task[None] | None:
        """The cooler sampled through the night (``cooler`` events for the report); not on
        the virtual clock, whose nominal camera has nothing to tell."""
        if isinstance(self.clock, VirtualClock) or self.executor is None:
            return None
        from runner.engine.camera_watch import watch_cooler

        return asyncio.create_task(watch_cooler(self.executor.s.camera, self.clock, bus))

    async def _night_from_now(self, ex: Executor) -> None:
        """The night's task. Simulated time, held since set-up began, flows from its first
        step, not from when the task was made: however many loop iterations the task waits
        to run (at 5000x each is seconds of clock time), the night's first event is stamped
        with the instant the night was due."""
        self.night_begun = True
        self.clock.release()
        await ex.run_night()

    async def _watch_safety(self, bus: EventBus) -> None:
        """Poll the safety monitor every 2 s of clock time; a dry run's nominal monitor is
        always safe, so it is not polled (86,400 polls made half of a 48 h dry run's work)."""
        from runner.devices.sim.nominal import NominalSafety

        ex = self.executor
        assert ex is not None
        dev = ex.s.safety
        if dev is None or isinstance(dev, NominalSafety):
            return
        while True:
            try:
                safe = await dev.is_safe()
            except NightrunnerError as exc:
                bus.emit("warning", message=f"safety monitor unreadable: {exc}")
                safe = False
            if not safe:
                bus.emit("unsafe")
                self.abort("unsafe conditions reported by the safety monitor")
                return
            await self.clock.sleep(2.0)

    def _attach_progress(self, bus: EventBus) -> Any:
        mode = self.opt.progress
        if mode == "none":
            return lambda: None
        import sys

        if mode == "rich" or (mode == "auto" and sys.stdout.isatty()):
            from runner.engine.progress import RichProgress

            rp = RichProgress(self.program.light_frames_planned())
            bus.subscribe(rp)
            return rp.close
        from runner.engine.progress import PlainProgress

        bus.subscribe(PlainProgress(tz=_site_tz(self.plan)))
        return lambda: None

    # ------------------------------------------------------------------ collaborators

    @contextlib.asynccontextmanager
    async def _services(
        self, data: Path, bus: EventBus, run_id: str
    ) -> AsyncIterator[Services]:
        from runner.devices.factory import build_devices
        from runner.engine.framestore import FrameStore

        eq = self.equipment
        if self.opt.dry_run:
            async with self._nominal_services(bus) as services:
                yield services
            return
        if self._own_devices:
            devices = build_devices(eq, self.clock, site=self.plan.site)
            await devices.connect_all()
        else:
            devices = self.devices
        self.devices = devices
        guider: Guider | None = None
        stack = contextlib.AsyncExitStack()
        try:
            if eq.guider is not None:
                guider = await stack.enter_async_context(
                    _guider(eq, self.clock, devices.world, bus)
                )
            resume = self._resume_state
            frames = FrameStore(data, self.plan, eq, run_id,
                                reserved=resume.used_paths if resume else (),
                                notify=lambda kind, message: bus.emit(kind, message=message))
            frames.forget(self._lost_frames)
            frames.catch_up(journalled_frames(data))
            stack.callback(frames.close)
            slots: dict[str, int] = {}
            if devices.filter_wheel is not None and eq.filter_wheel is not None:
                # the profile names the slots (plans use these names); the wheel's own names
                # are only compared, since drivers often report "Filter 1", "Red" …
                slots = {f.name: i for i, f in enumerate(eq.filter_wheel.filters)}
                reported = await devices.filter_wheel.names()
                if reported[: len(slots)] != list(slots):
                    bus.emit("warning", message="filter wheel reports slots "
                             f"{reported}; using the profile's names {list(slots)} in order")
            tz = _site_tz(self.plan)
            visibility = _visibility_factory(self.plan, self.clock.now(), tz)
            # the sky grids take a second or two to compute: do it now, off the event loop
            await asyncio.to_thread(_prefetch, visibility, self.plan, self.clock.now())
            from runner.stacking.night_masters import plan_builds_masters

            stacking = None
            if any(t.stack for t in self.plan.targets) or plan_builds_masters(self.plan):
                from runner.engine.stacking_link import StackingLink

                stacking = StackingLink(data, bus, self._journal, resume)
                stack.push_async_callback(stacking.close)
            from runner.stacking.detect import measure_hfr

            solver = None
            if not self.opt.dry_run:  # a dry run's slews centre nominally (no solver)
                from runner.solve.frames import FrameSolver

                solver = FrameSolver(data / "solve", focal_length=eq.focal_length,
                                     pixel_size=eq.camera.pixel_size,
                                     instrument=eq.camera.name, telescope=eq.telescope)
            services = Services(
                clock=self.clock,
                camera=devices.camera,
                filter_wheel=devices.filter_wheel,
                focuser=devices.focuser,
                mount=devices.mount,
                safety=devices.safety,
                guider=guider,
                frames=frames,
                measure_hfr=measure_hfr,
                autofocus=_autofocuser(devices, eq, self.clock, bus),
                visibility=visibility,
                stacking=stacking,
                site_tz=tz,
                filter_slots=slots,
                solver=solver,
            )
            yield services
        finally:
            await stack.aclose()
            if self._own_devices:
                with contextlib.suppress(NightrunnerError):
                    await devices.disconnect_all()

    @contextlib.asynccontextmanager
    async def _nominal_services(self, bus: EventBus) -> AsyncIterator[Services]:
        """--dry-run on the virtual clock: nominal devices, no frames written, no stacks."""
        from runner.devices.sim.nominal import NominalRig
        from runner.engine.framestore import NullFrameStore

        clock = self.clock
        rig = NominalRig.build(self.equipment, clock, self.plan.site.latitude,
                               self.plan.site.longitude)
        await rig.connect()
        self.devices = rig  # the control plane reads the dry run's (nominal) rig
        tz = _site_tz(self.plan)
        visibility = _visibility_factory(self.plan, clock.now(), tz)
        await asyncio.to_thread(_prefetch, visibility, self.plan, clock.now())
        yield Services(
            clock=clock, camera=rig.camera, filter_wheel=rig.filter_wheel, focuser=rig.focuser,
            mount=rig.mount, safety=rig.safety, guider=rig.guider, frames=NullFrameStore(),
            measure_hfr=None, autofocus=rig.autofocuser(self.equipment, clock),
            visibility=visibility, site_tz=tz, filter_slots=rig.filter_slots,
        )

    # ------------------------------------------------------------------ summary

    def _summary(
        self, outcome: str, run_dir: Path, real_start: float, clock_start: float
    ) -> dict[str, Any]:
        ex = self.executor
        c = ex.counters if ex else None
        frames, per_target = whole_night(self._resume_state, c)
        return {
            "plan": self.plan.name,
            "outcome": outcome,
            "abort_reason": self.abort_reason,
            "run_dir": str(run_dir),
            "data_dir": str(self.opt.data_dir),
            "real_seconds": round(time.monotonic() - real_start, 3),
            "clock_seconds": round(self.clock.monotonic() - clock_start, 1),
            "speed": self.clock.speed,
            "dry_run": self.opt.dry_run,
            "frames": frames,
            "per_target": per_target,
            "dithers": c.dithers if c else 0,
            "dithers_skipped": c.dithers_skipped if c else 0,
            "autofocus_runs": c.autofocus_runs if c else 0,
            "retries": c.retries if c else 0,
            "errors": c.errors if c else [],
            "final_state": ex.model.state if ex else None,
        }


def _html_report(run_dir: Path) -> None:
    from runner.report import write_html_report

    write_html_report(run_dir)


def _read_events(path: Path) -> list[dict[str, Any]]:
    """The event log for the report; a line torn by a kill in an earlier segment is skipped."""
    events: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # a failing disk: the report shows what the summary holds
        return events
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and "event" in e:
            events.append(e)
    return events


def _site_tz(plan: Plan) -> Any:
    from runner.sky.timeutil import site_timezone

    return site_timezone(plan.site)


def _visibility_factory(plan: Plan, start: datetime, tz: Any) -> Any:
    """Constraint evaluation per target. Clock times resolve after the start of the night
    (local noon), so a run resumed after midnight keeps the night's windows."""
    from runner.sky import night_start
    from runner.sky.visibility import TargetVisibility

    reference = night_start(start, tz)
    cache: dict[int, TargetVisibility] = {}

    def get(t: Target) -> TargetVisibility:
        v = cache.get(id(t))
        if v is None:
            v = cache[id(t)] = TargetVisibility(t, plan.site, reference)
        return v

    return get


def _prefetch(visibility: Any, plan: Plan, start: datetime) -> None:
    from datetime import timedelta

    views = [visibility(t) for t in plan.targets]
    if plan.trigger_set().meridian_flip is None:  # hour angles are needed only for flips
        views = [v for v in views if v.constraints]
    if views:
        views[0].prefetch(views[1:], start, start + timedelta(hours=24))


def _autofocuser(devices: Any, eq: Equipment, clock: Clock, bus: EventBus) -> Any:
    if devices.focuser is None:
        return None

    async def autofocus(settings: Any, filter_name: str | None) -> dict[str, Any]:
        from runner.engine.autofocus import run_autofocus
        from runner.stacking.detect import measure_hfr

        result = await run_autofocus(
            devices.camera, devices.focuser, clock=clock, steps=settings.steps,
            step_size=settings.step_size or (eq.focuser.step_size if eq.focuser else 100),
            exposure=settings.exposure, fit=settings.fit,
            backlash=eq.focuser.backlash if eq.focuser else 0, measure_hfr=measure_hfr,
        )
        return result.to_dict() if hasattr(result, "to_dict") else dict(vars(result))

    return autofocus


@contextlib.asynccontextmanager
async def _guider(
    eq: Equipment, clock: Clock, world: Any, bus: EventBus
) -> AsyncIterator[Guider]:
    from runner.engine.guider_link import open_guider

    async with open_guider(eq, clock, world, bus) as g:
        yield g


def default_data_dir(eq: Equipment) -> Path:
    if eq.data_dir:
        return Path(os.path.expanduser(eq.data_dir))
    return Path.cwd() / "nightrunner-data"
