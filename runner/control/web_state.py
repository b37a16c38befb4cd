"""What the web side shows, kept current from the event stream (never by polling a device).

One background task follows the control plane's ``FanOut``: each ``frame`` event makes a new
live picture, each ``stack_status`` event (the live stacker reports every processed frame) a
new stacking status and stacked picture, and every event a point on the night's graphs when
it carries one. Pictures and histograms are rendered only when someone watches, once per
change, off the event loop, and shared by all the watchers: a night without viewers pays one
dict per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy.typing as npt

from runner.control.fanout import FanOut
from runner.control.render_process import RenderProcess

HISTORY = 2000  # graph points kept (a long night at one frame a minute)
EVENT_LOG = 200
RENDER_INTERVAL = 1.0  # s between renderings of one picture or histogram


class Latest:
    """A value that changes, with a version number; waiters wake on every change."""

    def __init__(self) -> None:
        self.version = 0
        self.value: Any = None
        self._changed = asyncio.Event()

    def set(self, value: Any) -> None:
        self.value = value
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def newer(self, version: int, timeout: float | None = None) -> bool:
        """Until the version is above ``version`` (False when ``timeout`` s passed first)."""
        while self.version <= version:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                return False
        return True


@dataclass
class Picture:
    """A frame to show: a FITS path written by the night, or pixels from the hub's camera."""

    path: Path | None = None
    data: npt.NDArray[Any] | None = None
    bayer: str | None = None
    reading: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


class Rendered:
    """One rendering per version of a :class:`Latest`, made off the event loop (``render``
    is a coroutine function: a thread, or the render process), shared by viewers."""

    def __init__(self, source: Latest, render: Callable[[Any], Awaitable[Any]],
                 paced: Callable[[], bool] = lambda: True) -> None:
        self.source = source
        self.render = render
        self.paced = paced
        self._version = -1
        self._value: Any = None
        self._lock = asyncio.Lock()
        self._rendered_at = -math.inf

    async def get(self) -> tuple[int, Any]:
        if self._version != self.source.version:
            async with self._lock:  # the viewers that ask together wait for one rendering
                if self._version != self.source.version:
                    loop = asyncio.get_running_loop()
                    # During a night, at most one rendering a second: frames arriving faster
                    # (short exposures, a night at speed) show the latest, and the renders'
                    # CPU and GIL time stay off the night and the control plane's replies.
                    # The hub's own camera stream (no night) renders every exposure.
                    wait = self._rendered_at + RENDER_INTERVAL - loop.time()
                    if wait > 0 and self.paced():
                        await asyncio.sleep(wait)
                    version = self.source.version
                    value = await self._safe(self.source.value)
                    self._version, self._value = version, value
                    self._rendered_at = loop.time()
        return self._version, self._value

    async def _safe(self, value: Any) -> Any:
        try:
            return None if value is None else await self.render(value)
        except Exception:  # an unreadable frame shows nothing; the next one will
            return None


class WebState:
    """The web side's view of the hub: pictures, stacking status, graphs and the event log."""

    def __init__(self, hub: Any) -> None:
        from runner.control import web_render

        self.hub = hub
        self.live = Latest()  # Picture
        self.stacking = Latest()  # seed 004's stacking status dict
        #: every event of the night with its graph point, ``{"event", "point"}``, for the
        #: page's and the stacking-status streams (one subscriber per web client)
        self.feed = FanOut()
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.log: deque[dict[str, Any]] = deque(maxlen=EVENT_LOG)
        def night() -> bool:
            return self.hub.run is not None

        #: renders frames and stack previews in a lower-priority process (see its module)
        self.renderer = RenderProcess()

        def picture(kind: str) -> Callable[[Picture], Awaitable[Any]]:
            async def render(pic: Picture) -> Any:
                if pic.path is None:  # the hub's camera: pixels in memory, no night running
                    return await asyncio.to_thread(getattr(web_render, kind), pic)
                return await self.renderer.call(kind, str(pic.path), pic.bayer)
            return render

        self.live_jpeg = Rendered(self.live, picture("picture_jpeg"), night)
        self.live_hist = Rendered(self.live, picture("picture_histogram"), night)
        self.stacked_jpeg = Rendered(self.stacking, lambda _s: self._stacked_preview(), night)
        self.stacked_hist = Rendered(
            self.stacking, lambda _s: asyncio.to_thread(self._stacked_histogram), night)
        self.manual: Any = None  # the hub's own LiveStacker (``/api/stacker/start``)
        self.stream: Any = None  # runner.control.web_camera.CameraStream while streaming
        self.exposure_ms = 1000.0  # seed 004's ``exp`` option: the stream's exposure
        self.calibration_kind: str | None = None  # a ``calibration`` stack's master kind
        self._task: asyncio.Task[None] | None = None
        self._run: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="web-state")

    async def stop(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.manual is not None:
            await asyncio.to_thread(self.manual.close)
        await asyncio.to_thread(self.renderer.close)

    # ------------------------------------------------------------------ the stacker shown

    def stacker(self) -> Any:
        """The night's live stacker while a night runs (it owns it), else the hub's own."""
        run = self.hub.run
        ex = getattr(run, "executor", None) if run is not None else None
        link = getattr(getattr(ex, "s", None), "stacking", None)
        if link is not None:
            return link.stacker
        if self.hub.night_active:
            return None
        return self.manual

    def stacking_status(self) -> dict[str, Any]:
        st = self.stacker()
        if st is None:
            return {"status": "idle", "frames": 0, "processed": 0, "stacked": 0, "dropped": 0,
                    "error_message": None}
        return dict(st.status())

    async def _stacked_preview(self) -> bytes | None:
        from runner.control.web_render import PREVIEW_SIZE

        st = self.stacker()
        if st is None:
            return None
        source = await asyncio.to_thread(st.preview_source, PREVIEW_SIZE)
        if source is None:
            return None
        preview: bytes = await self.renderer.call("stack_preview", *source, PREVIEW_SIZE)
        return preview

    def _stacked_histogram(self) -> dict[str, Any] | None:
        from runner.control.web_render import sampled_histogram

        st = self.stacker()
        stack = None if st is None else st.stack()  # before any stretch, as seed 004 says
        return None if stack is None else sampled_histogram(stack)

    def stacker_changed(self, status: dict[str, Any]) -> None:
        """The hub's own stacker reports (from its worker thread) through here."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.hub.events, {"event": "stack_status",
                                                        "status": status})

    def show(self, data: npt.NDArray[Any], bayer: str | None = None) -> None:
        """A frame from the hub's camera (``/still``, ``/stream``) becomes the live picture."""
        self.live.set(Picture(data=data, bayer=bayer))

    # ------------------------------------------------------------------ following

    async def _follow(self) -> None:
        self._loop = asyncio.get_running_loop()
        with self.hub.events.subscribe() as sub:
            while True:
                self._on_event(await sub.next())

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.hub.run is not self._run:  # a new night: its graphs start empty
            self._run = self.hub.run
            if self._run is not None:
                self.history.clear()
                self.log.clear()
        kind = event.get("event")
        if kind == "frame" and event.get("path"):
            self.live.set(Picture(path=Path(str(event["path"]))))
        elif kind in ("stack_status", "stack_start", "stack_saved"):
            self.stacking.set(event.get("status") or self.stacking_status())
        point = self._point(event)
        if point is not None:
            self.history.append(point)
        if kind != "stack_status":  # one per frame: the log has the frame event
            self.log.append(event)
        self.feed({"event": event, "point": point})

    def _point(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """A graph point per light frame: HFR, guiding RMS, the camera and the altitude."""
        if event.get("event") != "frame" or event.get("type") != "light":
            return None
        rig = self.hub.telemetry_latest()
        cam = rig.get("camera") or {}
        return {
            "t": event.get("clock") or event.get("time"), "hfr": event.get("hfr"),
            "guiding_rms": event.get("guiding_rms"), "temperature": cam.get("temperature"),
            "cooler_power": cam.get("cooler_power"), "altitude": self._altitude(event),
            "filter": event.get("filter"), "seq": event.get("seq"),
        }

    def _altitude(self, event: dict[str, Any]) -> float | None:
        run = self.hub.run
        ex = getattr(run, "executor", None)
        target = getattr(getattr(ex, "target", None), "target", None)
        site = getattr(getattr(run, "plan", None), "site", None)
        when = event.get("clock") or event.get("time")
        if target is None or site is None or when is None:
            return None
        try:
            return altitude(float(target.coordinates.ra), float(target.coordinates.dec),
                            site.latitude, site.longitude, datetime.fromisoformat(when))
        except (TypeError, ValueError):
            return None


def altitude(ra: float, dec: float, lat: float, lon: float, when: datetime) -> float:
    """Altitude in degrees (J2000 coordinates, no refraction: a graph's accuracy, ~0.5°)."""
    jd = when.timestamp() / 86400.0 + 2440587.5
    gmst = (280.46061837 + 360.98564736629 * (jd - 2451545.0)) % 360.0
    ha = math.radians((gmst + lon - ra) % 360.0)
    la, de = math.radians(lat), math.radians(dec)
    s = math.sin(la) * math.sin(de) + math.cos(la) * math.cos(de) * math.cos(ha)
    return round(math.degrees(math.asin(max(-1.0, min(1.0, s)))), 2)
