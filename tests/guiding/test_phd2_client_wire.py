"""Our PHD2 client against a fake PHD2 scripted on the wire in each test.

The scripts send exactly what PHD2 sends (including its awkward orderings) and assert what the
client sends back, so the client cannot lean on our simulator's behaviour. Six conformance
scenarios of the protocol notes, in order.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from phd2_testkit import Peer, ScriptedServer, ev, line

from runner.clock import ScaledClock
from runner.devices.interfaces import GuiderState
from runner.errors import GuiderConnectionError, SettleFailed
from runner.guiding import NotGuidingError, PHD2Client, PHD2RpcError, SettleParams

SETTLE = SettleParams(pixels=1.5, time_s=2, timeout_s=20)


async def connect(server: ScriptedServer, speed: float = 20.0, **kw: Any) -> PHD2Client:
    c = PHD2Client(
        "127.0.0.1", server.port, clock=ScaledClock(speed=speed), reconnect_initial_s=0.2,
        settle_margin_s=1.0, min_real_timeout_s=0.5, **kw,
    )
    await c.connect_server()
    return c


async def barrier(peer: Peer, *events: dict[str, Any]) -> None:
    """Answer the client's next get_exposure after sending ``events`` (so when the client's
    call returns, it has processed them)."""
    req = await peer.expect("get_exposure")
    await peer.send(*events)
    await peer.reply(req, 1000)


def settle_done(status: int = 0, error: str | None = None, frames: int = 3) -> dict[str, Any]:
    fields: dict[str, Any] = {"Status": status}
    if error is not None:
        fields["Error"] = error
    return ev("SettleDone", **fields, TotalFrames=frames, DroppedFrames=0)


# ------------------------------------------------------------------ 1. connect in each state


@pytest.mark.parametrize("state", [s.value for s in GuiderState])
async def test_the_state_at_connect_is_the_catchup_appstate(state: str) -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake(state, ev("LockPositionSet", X=10.0, Y=20.0),
                             ev("CalibrationComplete", Mount="On Camera"))

    async with ScriptedServer(script) as server:
        c = await connect(server)
        assert c.app_state == GuiderState(state)
        assert c.lock_position_px == (10.0, 20.0)
        await c.disconnect_server()


async def test_after_connect_the_state_follows_events_without_polling() -> None:
    walk = [
        (ev("LoopingExposures", Frame=1), GuiderState.looping),
        (ev("StartCalibration", Mount="On Camera"), GuiderState.calibrating),
        (ev("StartGuiding"), GuiderState.guiding),
        (ev("StarLost", Frame=3, Time=2.0, StarMass=0, SNR=0, AvgDist=0.3, ErrorCode=1,
            Status="lost"), GuiderState.lost_lock),
        (ev("GuideStep", Frame=4, Time=3.0, dx=0.1, dy=0.1, RADistanceRaw=0.1,
            DECDistanceRaw=0.1), GuiderState.guiding),
        (ev("Paused"), GuiderState.paused),
        (ev("Resumed"), GuiderState.guiding),
        (ev("GuidingStopped"), GuiderState.stopped),
        (ev("LoopingExposures", Frame=1), GuiderState.looping),
        (ev("LoopingExposuresStopped"), GuiderState.stopped),
    ]

    async def script(peer: Peer) -> None:
        await peer.handshake("Stopped")
        for event, _ in walk:
            await barrier(peer, event)

    async with ScriptedServer(script) as server:
        c = await connect(server)
        for event, expected in walk:
            await c.get_exposure_s()
            assert c.app_state is expected, event["Event"]
        await c.disconnect_server()
    methods = [r["method"] for r in server.requests()]
    assert methods.count("get_exposure") == len(walk) + 1 and "get_app_state" not in methods


# ------------------------------------------------------------------ 2. events before response


async def test_a_settledone_sent_before_the_dither_response_is_not_lost() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Guiding")
        await peer.reply(await peer.expect("get_settling"), False)
        req = await peer.expect("dither")
        assert req["params"] == {"amount": 3.0, "raOnly": True,
                                 "settle": {"pixels": 1.5, "time": 2, "timeout": 20}}
        await peer.send(ev("LockPositionSet", X=101.0, Y=99.0), ev("GuidingDithered", dx=1.0,
                        dy=-1.0), ev("SettleBegin"), ev("Settling", Distance=0.4, Time=0.0,
                        SettleTime=2.0, StarLocked=True), settle_done(frames=1))
        await peer.reply(req, 0)

    async with ScriptedServer(script) as server:
        c = await connect(server)
        result = await c.dither(3.0, SETTLE, ra_only=True)
        assert result.total_frames == 1 and result.dropped_frames == 0
        assert c.lock_position_px == (101.0, 99.0)
        assert not c.settling
        await c.disconnect_server()


async def test_a_guide_that_fails_before_its_response_raises_settle_failed() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Stopped")
        await peer.reply(await peer.expect("get_settling"), False)
        req = await peer.expect("guide")
        await peer.send(settle_done(1, "unable to start capturing", frames=0))
        await peer.reply(req, 0)

    async with ScriptedServer(script) as server:
        c = await connect(server)
        with pytest.raises(SettleFailed, match="unable to start capturing"):
            await c.start_guiding(SETTLE)
        await c.disconnect_server()


async def test_guide_while_guiding_reports_settling_progress_until_settledone() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Guiding")
        await peer.reply(await peer.expect("get_settling"), False)
        req = await peer.expect("guide")
        assert req["params"]["recalibrate"] is False
        await peer.send(ev("SettleBegin"))
        await peer.reply(req, 0)
        for t in (0.0, 1.0, 2.0):
            await peer.send(ev("GuideStep", Frame=1, Time=t, dx=0.2, dy=0.1,
                               RADistanceRaw=0.2, DECDistanceRaw=0.1),
                            ev("Settling", Distance=0.3, Time=t, SettleTime=2.0,
                               StarLocked=True))
            await asyncio.sleep(0.02)
        await peer.send(settle_done())

    async with ScriptedServer(script) as server:
        c = await connect(server)
        progress: list[float] = []
        c.add_listener(lambda e: progress.append(c.settle_progress.time_in_range_s)
                       if e["Event"] == "Settling" and c.settle_progress else None)
        await c.start_guiding(SETTLE)
        assert progress == [0.0, 1.0, 2.0]
        assert c.settle_progress is None and c.app_state is GuiderState.guiding
        await c.disconnect_server()


# ------------------------------------------------------------------ 3. dither during a settle


async def test_a_dither_waits_for_our_own_guide_to_calibrate_and_settle() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Stopped")
        await peer.reply(await peer.expect("get_settling"), False)
        guide = await peer.expect("guide")
        await peer.reply(guide, 0)
        await peer.send(ev("LoopingExposures", Frame=1), ev("StartCalibration", Mount="m"))
        await peer.nothing_for(0.3)  # no dither while calibrating (get_settling says false!)
        await peer.send(ev("CalibrationComplete", Mount="m"), ev("StartGuiding"),
                        ev("SettleBegin"))
        await peer.nothing_for(0.2)  # nor while settling
        await peer.send(settle_done())
        await peer.reply(await peer.expect("get_settling"), False)
        dither = await peer.expect("dither")
        await peer.send(ev("SettleBegin"))
        await peer.reply(dither, 0)
        await peer.send(settle_done())

    async with ScriptedServer(script) as server:
        c = await connect(server)
        calibrating = c.expect_event(lambda e: e["Event"] == "StartCalibration")
        guide = asyncio.create_task(c.start_guiding(SETTLE))
        await asyncio.wait_for(calibrating, 5)
        dither = asyncio.create_task(c.dither(2.0, SETTLE))
        await asyncio.gather(guide, dither)
        await c.disconnect_server()


async def test_a_dither_waits_for_a_settle_started_by_another_client() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Guiding")
        await peer.reply(await peer.expect("get_settling"), True)
        await peer.reply(await peer.expect("get_settling"), True)  # re-checked with waiter set
        await peer.nothing_for(0.3)
        await peer.send(settle_done())  # the other client's settle ends
        dither = await peer.expect("dither")
        await peer.send(ev("SettleBegin"))
        await peer.reply(dither, 0)
        await peer.send(settle_done())

    async with ScriptedServer(script) as server:
        c = await connect(server)
        await c.dither(2.0, SETTLE)
        await c.disconnect_server()


async def test_a_refused_dither_leaves_no_waiter_behind() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Guiding")
        await peer.reply(await peer.expect("get_settling"), False)
        await peer.reply_error(await peer.expect("dither"), 1,
                               "Cannot initiate dither while dither is in progress")
        await peer.reply(await peer.expect("get_settling"), False)
        dither = await peer.expect("dither")
        await peer.send(ev("SettleBegin"))
        await peer.reply(dither, 0)
        await peer.send(settle_done(frames=7))

    async with ScriptedServer(script) as server:
        c = await connect(server)
        with pytest.raises(PHD2RpcError) as refused:
            await c.dither(2.0, SETTLE)
        assert refused.value.code == 1 and "in progress" in refused.value.message
        assert not c.settling
        assert (await c.dither(2.0, SETTLE)).total_frames == 7
        await c.disconnect_server()


# ------------------------------------------------------------------ 4. settle timing


async def test_the_watchdog_gives_up_after_phd2s_timeout_plus_margin_and_resyncs() -> None:
    settle = SettleParams(pixels=1.0, time_s=2, timeout_s=5)

    async def script(peer: Peer) -> None:
        await peer.handshake("Guiding")
        await peer.reply(await peer.expect("get_settling"), False)
        dither = await peer.expect("dither")
        await peer.send(ev("SettleBegin"))
        await peer.reply(dither, 0)
        await peer.send(ev("Settling", Distance=3.0, Time=0.0, SettleTime=2.0,
                           StarLocked=True))
        # … and no SettleDone, ever.
        await peer.reply(await peer.expect("get_settling", within_s=20), True)
        await peer.reply(await peer.expect("get_app_state"), "Guiding")

    async with ScriptedServer(script) as server:
        c = await connect(server, speed=100.0)
        t0 = c.clock.monotonic()
        with pytest.raises(SettleFailed, match="no SettleDone"):
            await c.dither(2.0, settle)
        # Not before PHD2's own timeout + the exposures it may be late by.
        assert c.clock.monotonic() - t0 >= settle.timeout_s + 3 * 1.0
        assert c.settling  # PHD2 said it still settles: the next dither will wait
        server.check()
        await c.disconnect_server()


# ------------------------------------------------------------------ 5. aborts


async def test_stop_during_a_settle_fails_the_settle_and_returns_when_stopped() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Guiding")
        await peer.reply(await peer.expect("get_settling"), False)
        guide = await peer.expect("guide")
        await peer.send(ev("SettleBegin"))
        await peer.reply(guide, 0)
        stop = await peer.expect("stop_capture")
        await peer.reply(stop, 0)
        await peer.send(ev("GuideStep", Frame=9, Time=9.0, dx=0.0, dy=0.0, RADistanceRaw=0.0,
                           DECDistanceRaw=0.0),  # the stray one
                        ev("GuidingStopped"), ev("LoopingExposuresStopped"),
                        settle_done(1, "Stopped capturing"))
        await peer.reply(await peer.expect("get_app_state"), "Stopped")

    async with ScriptedServer(script) as server:
        c = await connect(server)
        begun = c.expect_event(lambda e: e["Event"] == "SettleBegin")
        guide = asyncio.create_task(c.start_guiding(SETTLE))
        await asyncio.wait_for(begun, 5)
        await c.stop_capture()
        assert c.app_state is GuiderState.stopped
        with pytest.raises(SettleFailed, match="Stopped capturing"):
            await guide
        await c.disconnect_server()


async def test_stop_polls_the_state_when_guidingstopped_never_comes() -> None:
    polls: list[str] = []

    async def script(peer: Peer) -> None:
        await peer.handshake("Guiding")
        await peer.reply(await peer.expect("stop_capture"), 0)
        await peer.send(ev("GuideStep", Frame=9, Time=9.0, dx=0.0, dy=0.0,
                           RADistanceRaw=0.0, DECDistanceRaw=0.0))
        for answer in ("Guiding", "Stopped"):
            await peer.reply(await peer.expect("get_app_state", within_s=20), answer)
            polls.append(answer)

    async with ScriptedServer(script) as server:
        c = await connect(server)
        await c.stop_capture()
        assert polls == ["Guiding", "Stopped"] and c.app_state is GuiderState.stopped
        await c.disconnect_server()


async def test_no_dither_is_sent_when_not_guiding_and_phd2s_refusal_is_reported() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Looping")
        await barrier(peer, ev("StartGuiding"))  # fails if a dither came first
        await peer.reply(await peer.expect("get_settling"), False)
        await peer.reply_error(await peer.expect("dither"), 1, "Dither error")

    async with ScriptedServer(script) as server:
        c = await connect(server)
        with pytest.raises(NotGuidingError):
            await c.dither(2.0, SETTLE)
        await c.get_exposure_s()
        with pytest.raises(PHD2RpcError, match="Dither error"):
            await c.dither(2.0, SETTLE)
        assert not c.settling
        await c.disconnect_server()


# ------------------------------------------------------------------ 6. connection and framing


async def test_events_split_across_reads_or_sharing_one_are_parsed() -> None:
    async def script(peer: Peer) -> None:
        version = line(ev("Version", PHDVersion="2.6.13", PHDSubver="x", MsgVersion=1))
        for i in range(0, len(version), 7):
            await peer.send_bytes(version[i:i + 7])
            await asyncio.sleep(0.001)
        await peer.send_bytes(line(ev("LockPositionSet", X=5.0, Y=6.0))
                              + json.dumps(ev("StarSelected", X=5.0, Y=6.0)).encode() + b"\n"
                              + b"not json at all\r\n\r\n"
                              + line(ev("AppState", State="Selected")))
        req = await peer.request()
        if req["method"] == "get_pixel_scale":
            await peer.reply(req, None)
            req = await peer.request()
        reply = line({"jsonrpc": "2.0", "result": 2000, "id": req["id"]})
        await peer.send_bytes(reply[:10])
        await asyncio.sleep(0.01)
        await peer.send_bytes(reply[10:])
        note = await peer.request()
        assert "id" not in note and note == {"method": "set_paused", "params": [False]}

    async with ScriptedServer(script) as server:
        c = await connect(server)
        assert c.version == "2.6.13x" and c.app_state is GuiderState.selected
        assert c.lock_position_px == (5.0, 6.0)
        assert c.pixel_scale_arcsec is None  # PHD2 does not know it: stats in px
        await c.notify("set_paused", [False])
        await asyncio.wait_for(server.done.wait(), 5)
        await c.disconnect_server()


async def _dropped_dither(settling_after_reconnect: bool) -> tuple[PHD2Client, Any]:
    async def first(peer: Peer) -> None:
        await peer.handshake("Guiding")
        await peer.reply(await peer.expect("get_settling"), False)
        dither = await peer.expect("dither")
        await peer.send(ev("SettleBegin"))
        await peer.reply(dither, 0)
        await peer.send(ev("Settling", Distance=2.0, Time=0.0, SettleTime=2.0,
                           StarLocked=True))
        await asyncio.sleep(0.05)
        peer.abort()

    async def second(peer: Peer) -> None:
        await peer.handshake("Guiding", ev("LockPositionSet", X=1.0, Y=1.0))
        for _ in range(2):  # the reconnect re-sync, and the waiting dither
            await peer.reply(await peer.expect("get_settling"), settling_after_reconnect)
        if settling_after_reconnect:
            await peer.send(settle_done(frames=5))

    server = ScriptedServer(first, second)
    await server.__aenter__()
    c = await connect(server)
    return c, server


async def test_a_drop_mid_settle_reconnects_and_keeps_waiting_for_settledone() -> None:
    c, server = await _dropped_dither(settling_after_reconnect=True)
    try:
        result = await c.dither(2.0, SETTLE)
        assert result.total_frames == 5 and c.reconnects == 1 and c.connected
    finally:
        await c.disconnect_server()
        await server.__aexit__()


async def test_a_settle_that_ended_while_disconnected_is_reported_as_unknown() -> None:
    c, server = await _dropped_dither(settling_after_reconnect=False)
    try:
        with pytest.raises(SettleFailed, match="outcome is unknown"):
            await c.dither(2.0, SETTLE)
    finally:
        await c.disconnect_server()
        await server.__aexit__()


async def test_a_drop_fails_the_pending_call_at_once() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake("Stopped")
        await peer.expect("get_profiles")
        peer.abort()

    async with ScriptedServer(script) as server:
        c = await connect(server, auto_reconnect=False)
        with pytest.raises(GuiderConnectionError):
            await asyncio.wait_for(c.get_profiles(), 2.0)
        assert not c.connected
        await c.disconnect_server()
