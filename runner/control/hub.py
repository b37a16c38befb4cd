"""What the control plane's methods act on: the rig's devices, the night running on them (if
any), the event stream, the data directory and the token.

Ownership rule: while a night runs, read-only methods always answer; a method that moves
hardware is refused unless the night is paused (then the plan's settings are restored by the
engine before its next exposure: filter, focus and temperature are re-sent on resume).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
from pathlib import Path, PurePosixPath
from typing import Any

from runner.control.fanout import FanOut
from runner.control.protocol import RpcError


class Hub:
    def __init__(
        self, data_dir: Path, *, token: str | None = None, devices: Any = None,
        equipment: Any = None, clock: Any = None, plan_dirs: list[Path] | None = None,
    ) -> None:
        self.data_dir = data_dir
        #: where ``validate_plan``/``run_plan`` may read plans (``serve --plans``): a remote
        #: client never has the hub read, and echo, any other file of its machine
        self.plan_dirs = plan_dirs if plan_dirs is not None else [data_dir / "plans"]
        self.token = token
        self._devices = devices  # serve: the hub's own; run: the night's (see ``devices``)
        self.equipment = equipment
        self.clock = clock
        self.run: Any = None  # runner.engine.run.Run while a night is on
        self.night_task: asyncio.Task[Any] | None = None
        self.last_run: Any = None
        self.events = FanOut()
        self.last_image: Any = None  # the Frame of the last take_image, for save_image
        self.image_lock = asyncio.Lock()
        self.plan_path: Path | None = None
        self.version = _version()
        self.telemetry: Any = None  # runner.control.telemetry.Telemetry once serving
        #: ``nightrunner serve`` sets this: ``await start_night(plan_path) -> dict``
        self.start_night: Any = None
        self.web: Any = None  # runner.control.web_state.WebState once the HTTP app is built

    def telemetry_latest(self) -> dict[str, Any]:
        return dict(self.telemetry.latest) if self.telemetry is not None else {}

    # ------------------------------------------------------------------ security

    def token_ok(self, given: str) -> bool:
        if self.token is None:
            return True
        return hmac.compare_digest(given.encode(), self.token.encode())

    def safe_path(self, filename: str) -> Path:
        """``filename`` inside the data directory: no ``..``, no symlink leading out, never an
        existing file.

        An absolute path is the client's own (pyastroimageview's camera client sends the path
        it would write on its machine, ``C:\\…`` or ``/home/…``): one inside the data
        directory is used as given, any other is kept in the data directory under its name
        — never written where it points."""
        if not filename or "\x00" in filename:
            raise RpcError("filename is empty or contains a NUL byte")
        root = self.data_dir.resolve()
        rel = PurePosixPath(filename.replace("\\", "/"))
        if rel.is_absolute() or (rel.parts and ":" in rel.parts[0]):
            given = Path(filename)
            base = next((b for b in (root, self.data_dir.absolute())
                         if given.is_absolute() and given.is_relative_to(b)), None)
            rel = PurePosixPath(given.relative_to(base)) if base is not None \
                else PurePosixPath(rel.name)
            if not rel.parts:
                raise RpcError(f"filename {filename!r} names no file")
        if any(p == ".." for p in rel.parts):
            raise RpcError(f"filename {filename!r} must stay inside the data directory "
                           "(no '..')")
        target = (root / Path(*rel.parts)).resolve()
        if root != target and root not in target.parents:
            raise RpcError(f"filename {filename!r} leads outside the data directory")
        if target.exists() or os.path.lexists(root / Path(*rel.parts)):
            raise RpcError(f"{filename!r} exists already: frames are never overwritten")
        return target

    def plan_file(self, path: str) -> Path:
        """A plan a client named: absolute or relative to a plans directory, and inside one
        (symlinks resolved)."""
        if "\x00" in path:
            raise RpcError("path contains a NUL byte")
        try:
            path.encode("utf-8")
        except UnicodeError:
            raise RpcError("path is not valid UTF-8 text") from None
        given = Path(path)
        roots = [d.resolve() for d in self.plan_dirs]
        candidates = [given] if given.is_absolute() else [r / given for r in roots]
        for c in candidates:
            try:
                real = c.resolve()
                is_file = real.is_file()
            except (OSError, ValueError, RuntimeError):  # a loop of links, a name too long
                continue
            if any(real.is_relative_to(r) for r in roots):
                if is_file:
                    return real
            elif given.is_absolute():
                raise RpcError(f"{path} is outside the plans directories "
                               f"({', '.join(map(str, roots))}; serve --plans DIR adds one)")
        raise RpcError(f"no plan file at {path} in the plans directories "
                       f"({', '.join(map(str, roots))})")

    # ------------------------------------------------------------------ the rig

    @property
    def devices(self) -> Any:
        if self.run is not None and self.run.devices is not None:
            return self.run.devices
        return self._devices

    def device(self, kind: str) -> Any:
        devs = self.devices
        dev = getattr(devs, kind, None) if devs is not None else None
        if dev is None:
            label = kind.replace("_", " ")
            raise RpcError(f"no {label}: the equipment profile has none, or no night or hub "
                           "holds the devices")
        return dev

    @property
    def night_active(self) -> bool:
        return self.run is not None and (self.night_task is None or not self.night_task.done())

    def night_paused(self) -> bool:
        ex = self.run.executor if self.run is not None else None
        return ex is not None and ex.model.state == "paused"

    def check_may_move(self, device: str, method: str) -> None:
        if self.night_active and not self.night_paused():
            label = device.replace("_", " ")
            raise RpcError(f"{method}: the night owns the {label}; pause it first")

    def attach(self, run: Any, task: asyncio.Task[Any] | None = None) -> None:
        """Serve ``run``'s events and state (``run.listeners`` must include ``self.events``).
        Call it before the night emits its first event: sequence numbers start again at 1,
        so that they are the lines of the night's events.jsonl, which ``get_events`` reads."""
        self.run = run
        self.night_task = task
        self.events.new_night()

    def detach(self) -> None:
        self.last_run = self.run
        self.run = None
        self.night_task = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nightrunner")
    except PackageNotFoundError:
        return "0"
