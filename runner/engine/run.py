"""A run from start to finish: data directory, lock, journal, signals, the executor, the
safe shutdown — with its run directory (:mod:`run_dirs`), its services (:mod:`run_services`)
and its record (:mod:`run_record`) built beside it.

Exit semantics (CLI): completed → 0 (targets skipped by constraints are not failures);
failed or aborted → 1, always after the shutdown sequence ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.clock import VIRTUAL_HORIZON_S, ScaledClock, VirtualClock, VirtualLoop
from runner.engine.compiler import Program, compile_plan
from runner.engine.events import EventBus
from runner.engine.executor import Executor, FatalRunError
from runner.engine.journal import Journal, ResumeState, plan_digest, resume_state
from runner.engine.lock import DataDirLock
from runner.engine.reconcile import reconcile
from runner.engine.run_dirs import find_resumable, new_run_dir, why_nothing_to_resume
from runner.engine.run_record import write_record
from runner.engine.run_services import night_services, site_tz
from runner.errors import NightrunnerError, RunAborted
from runner.memory import keep_frame_buffers
from runner.plan.equipment import Equipment
from runner.plan.models import Plan

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
        self.owns_devices = devices is None
        self.listeners = list(listeners or [])
        self.run_dir: Path | None = None
        self.warnings: list[str] = []  # from collaborators (the control plane), for the log
        self.resume_from: ResumeState | None = None
        self.journal: Journal | None = None  # set when the run directory is chosen
        self.lost_frames: list[str] = []
        self.setup_errors: list[str] = []  # errors outside the executor (set-up), for the summary
        #: the night's first step has run: the clock held during set-up flows again
        self.night_begun = False

    def _run_error(self, bus: EventBus, message: str) -> None:
        self.setup_errors.append(message)
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
        if not self.owns_devices:
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
            run_dir = find_resumable(runs, digest)
            if run_dir is not None:
                resume = resume_state(run_dir / "journal.jsonl")
            else:
                resumed_note = why_nothing_to_resume(runs, digest, self.opt.plan_path,
                                                     self.plan.name)
        if run_dir is None:
            run_dir = new_run_dir(runs, self.plan.name, digest, self.opt.plan_path,
                                  dry_run=self.opt.dry_run)
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
            self.lost_frames = fixed.lost
        self.resume_from = resume
        self.journal = journal
        journal.record("run_start", resume=resume is not None, speed=self.clock.speed,
                       plan_digest=digest)
        real_start = time.monotonic()
        clock_start = self.clock.monotonic()
        outcome = "failed"
        try:
            async with night_services(self, data, bus, run_dir.name) as services:
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
            summary = write_record(self, outcome, run_dir, journal, bus, listener_close,
                                   real_start, clock_start)
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

        bus.subscribe(PlainProgress(tz=site_tz(self.plan)))
        return lambda: None

def default_data_dir(eq: Equipment) -> Path:
    if eq.data_dir:
        return Path(os.path.expanduser(eq.data_dir))
    return Path.cwd() / "nightrunner-data"
