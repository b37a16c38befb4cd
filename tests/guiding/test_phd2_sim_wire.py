"""The PHD2 simulator, checked with raw sockets against PHD2's protocol (docs/guiding.md).

Nothing of our client is used here: requests are JSON typed in the test and every check reads
the bytes the simulator sent. The six conformance scenarios of the protocol notes, in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from phd2_testkit import RawClient, is_event, line, names

from runner.clock import ScaledClock
from runner.guiding import PHD2Simulator

OpenRaw = Callable[[], Awaitable[RawClient]]
SETTLE = {"pixels": 1.5, "time": 1, "timeout": 30}
COMMON = {"Event", "Timestamp", "Host", "Inst"}


async def guiding_client(open_raw: OpenRaw) -> RawClient:
    """A raw client whose simulator is guiding and settled."""
    c = await open_raw()
    await c.catchup()
    assert await c.result("set_connected", [True]) == 0
    assert await c.result("guide", [SETTLE]) == 0
    done = (await c.read_until(is_event("SettleDone")))[-1]
    assert done["Status"] == 0, done
    return c


async def catchup_of(open_raw: OpenRaw) -> list[dict[str, Any]]:
    c = await open_raw()
    msgs = await c.catchup()
    for m in msgs:
        assert m.keys() >= COMMON and m["Inst"] == 1
    assert all(raw.endswith(b"\r\n") for raw in c.raw_lines)
    await c.close()
    return msgs


# ------------------------------------------------------------------ 1. connect in each state


async def test_catchup_events_follow_phd2_order_in_every_state_and_appstate_is_never_resent(
    sim: PHD2Simulator, raw: OpenRaw, clock: ScaledClock
) -> None:
    watcher = await raw()
    seen = await watcher.catchup()
    assert names(seen) == ["Version", "AppState"]
    version = seen[0]
    assert version["MsgVersion"] == 1 and version["OverlapSupport"] is True
    assert isinstance(version["PHDVersion"], str)
    watch_task = asyncio.create_task(watcher.read_for(600))

    async def expect(state: str, *middle: str) -> None:
        msgs = await catchup_of(raw)
        assert names(msgs) == ["Version", *middle, "AppState"], state
        assert msgs[-1]["State"] == state

    drv = await raw()
    await drv.catchup()
    await expect("Stopped")
    await drv.result("set_connected", [True])
    await drv.result("loop")
    await drv.read_until(is_event("LoopingExposures"))
    await expect("Looping")
    x, y = await drv.result("find_star")
    await expect("Selected", "LockPositionSet", "StarSelected")
    assert await drv.result("get_lock_position") == [x, y]
    # Star selected and looping: calibration starts within the request, before its response.
    resp, before = await drv.call("guide", [SETTLE])
    assert resp["result"] == 0 and names(before)[-1:] == ["StartCalibration"]
    await expect("Calibrating", "LockPositionSet", "StarSelected", "StartCalibration")
    await drv.read_until(is_event("SettleDone"))
    await expect("Guiding", "LockPositionSet", "StarSelected", "CalibrationComplete",
                 "StartGuiding")
    await drv.result("set_paused", [True])
    await expect("Paused", "LockPositionSet", "StarSelected", "CalibrationComplete", "Paused")
    await drv.result("set_paused", [False])
    sim.faults.star_lost_at_s = clock.monotonic()
    await drv.read_until(is_event("StarLost"))
    await expect("LostLock", "LockPositionSet", "CalibrationComplete")
    sim.faults.star_lost_at_s = None
    await drv.read_until(is_event("GuideStep"))
    await drv.result("stop_capture")
    await drv.read_until(is_event("LoopingExposuresStopped"))
    await expect("Stopped", "LockPositionSet", "StarSelected", "CalibrationComplete")

    await asyncio.sleep(0.1)
    watch_task.cancel()
    await asyncio.gather(watch_task, return_exceptions=True)
    later_names = names([json.loads(b) for b in watcher.raw_lines[len(seen):]])
    # One AppState, at connect; afterwards the state is carried by events only.
    assert "AppState" not in later_names
    order = ["LoopingExposures", "StarSelected", "StartCalibration", "CalibrationComplete",
             "StartGuiding", "GuideStep", "Paused", "Resumed", "StarLost", "GuidingStopped",
             "LoopingExposuresStopped"]
    positions = [later_names.index(n) for n in order]
    assert positions == sorted(positions), later_names


# ------------------------------------------------------------------ 2. events before response


async def test_events_precede_the_response_for_dither_guide_while_guiding_and_failing_guide(
    sim: PHD2Simulator, raw: OpenRaw
) -> None:
    c = await guiding_client(raw)
    lock_before = await c.result("get_lock_position")
    # Named parameters this time.
    resp, before = await c.call(
        "dither", {"amount": 3, "raOnly": False, "settle": {"pixels": 1.5, "time": 1,
                                                            "timeout": 30}})
    assert resp == {"jsonrpc": "2.0", "result": 0, "id": resp["id"]}
    assert names(before)[-3:] == ["LockPositionSet", "GuidingDithered", "SettleBegin"]
    lock, dithered = before[-3], before[-2]
    assert abs(dithered["dx"]) <= 3 * 1.5 and abs(dithered["dy"]) <= 3 * 1.5
    assert abs(lock["X"] - (lock_before[0] + dithered["dx"])) < 0.02
    assert abs(lock["Y"] - (lock_before[1] + dithered["dy"])) < 0.02
    assert (await c.read_until(is_event("SettleDone")))[-1]["Status"] == 0

    resp, before = await c.call("guide", [SETTLE])
    assert resp["result"] == 0 and names(before)[-1] == "SettleBegin"
    assert "StartGuiding" not in names(before)  # already guiding: only a new settle
    assert (await c.read_until(is_event("SettleDone")))[-1]["Status"] == 0

    await c.result("stop_capture")
    await c.read_until(is_event("LoopingExposuresStopped"))
    sim.faults.camera_fails = True
    resp, before = await c.call("guide", [SETTLE])
    assert resp["result"] == 0
    assert names(before)[-1] == "SettleDone"
    assert before[-1]["Status"] == 1 and before[-1]["Error"] == "unable to start capturing"


# ------------------------------------------------------------------ 3. dither during a settle


async def test_dither_or_guide_during_a_settle_is_refused_and_one_settledone_follows(
    raw: OpenRaw
) -> None:
    c = await guiding_client(raw)
    other = await raw()
    await other.catchup()
    settle = {"pixels": 0.8, "time": 3, "timeout": 30}
    assert (await c.call("dither", [4, False, settle]))[0]["result"] == 0
    second, _ = await c.call("dither", [4, False, settle])
    assert second["error"] == {"code": 1,
                               "message": "Cannot initiate dither while dither is in progress"}
    assert await c.result("get_settling") is True
    guide, _ = await other.call("guide", [settle])
    assert guide["error"] == {"code": 1,
                              "message": "Cannot initiate guide while dither is in progress"}
    msgs = await c.read_until(is_event("SettleDone"))
    msgs += await c.read_for(0.3)  # ~15 more frames
    assert names(msgs).count("SettleDone") == 1
    assert await c.result("get_settling") is False


# ------------------------------------------------------------------ 4. settle timing


async def test_settle_timeout_is_noticed_on_the_first_frame_after_it_expires(
    sim: PHD2Simulator, raw: OpenRaw
) -> None:
    c = await guiding_client(raw)
    assert await c.result("set_exposure", [4000]) == 0
    await c.read_until(is_event("GuideStep"))  # the 4 s exposures have begun
    sim.faults.settle_never = 1
    _, before = await c.call("dither", [2, False, {"pixels": 1.0, "time": 2, "timeout": 10}])
    begin = before[-1]
    msgs = await c.read_until(is_event("SettleDone"))
    done = msgs[-1]
    assert done["Status"] == 1 and done["Error"] == "timed-out waiting for guider to settle"
    # Noticed on the first frame after 10 s — not before, and no later than that frame:
    # with 4 s frames that is ~12 s (10…14 s).
    settling = [m for m in msgs if m.get("Event") == "Settling"]
    assert done["Timestamp"] - begin["Timestamp"] >= 10.0
    assert settling and settling[-1]["Timestamp"] - begin["Timestamp"] < 10.0
    assert done["Timestamp"] - settling[-1]["Timestamp"] >= 3.5  # the next 4 s frame
    settling = [m for m in msgs if m.get("Event") == "Settling"]
    assert done["TotalFrames"] == len(settling) + 1 and done["DroppedFrames"] == 0
    assert all(s["Distance"] > 1.0 and s["Time"] == 0 for s in settling)


async def test_an_out_of_range_frame_restarts_the_in_range_time(raw: OpenRaw) -> None:
    c = await guiding_client(raw)
    settle = {"pixels": 1.0, "time": 4, "timeout": 60}
    await c.call("dither", [0.5, True, settle])
    msgs = await c.read_until(lambda m: m.get("Event") == "Settling" and m["Time"] > 0)
    x, y = await c.result("get_lock_position")
    assert await c.result("set_lock_position", [x + 3.0, y, True]) == 0  # kick it out
    msgs += await c.read_until(is_event("SettleDone"))
    done = msgs[-1]
    assert done["Status"] == 0
    settling = [m for m in msgs if m.get("Event") == "Settling"]
    kicked = next(i for i, s in enumerate(settling) if s["Distance"] > 1.0 and i > 0)
    assert settling[kicked]["Time"] == 0
    prev_in = False
    for s in settling:
        in_range = s["StarLocked"] and s["Distance"] <= 1.0
        if not in_range or not prev_in:
            assert s["Time"] == 0, s  # the in-range timer starts at the first in-range frame
        prev_in = in_range
    # SettleDone comes on the first frame ≥ 4 s into the last in-range run, not earlier.
    run_start = next(s for s in reversed(settling) if s["Time"] == 0)
    assert done["Timestamp"] - run_start["Timestamp"] >= 4.0 - 0.01
    assert settling[-1]["Timestamp"] - run_start["Timestamp"] < 4.0


async def test_lost_star_frames_count_as_dropped_frames(
    sim: PHD2Simulator, raw: OpenRaw, clock: ScaledClock
) -> None:
    c = await guiding_client(raw)
    await c.call("dither", [0.5, True, {"pixels": 1.5, "time": 3, "timeout": 60}])
    sim.faults.star_lost_at_s = clock.monotonic()
    sim.faults.star_lost_for_s = 3.0
    msgs = await c.read_until(is_event("SettleDone"))
    done = msgs[-1]
    lost = names(msgs).count("StarLost")
    assert lost >= 1 and done["Status"] == 0
    assert done["DroppedFrames"] == lost
    unlocked = [m for m in msgs if m.get("Event") == "Settling" and not m["StarLocked"]]
    assert len(unlocked) == lost


async def test_calibration_time_does_not_count_against_the_settle_timeout(
    sim: PHD2Simulator, raw: OpenRaw
) -> None:
    c = await raw()
    await c.catchup()
    await c.result("set_connected", [True])
    resp, _ = await c.call("guide", [{"pixels": 2.0, "time": 1, "timeout": 3}])
    assert resp["result"] == 0
    msgs = await c.read_until(is_event("SettleDone"))
    order = names(msgs)
    assert order.index("CalibrationComplete") < order.index("SettleBegin")
    assert order.count("Calibrating") == 8
    assert msgs[-1]["Status"] == 0
    begin = msgs[order.index("SettleBegin")]
    first = msgs[0]
    assert begin["Timestamp"] - first["Timestamp"] > 3  # calibration alone outlasts "timeout"


# ------------------------------------------------------------------ 5. aborts


async def test_stop_capture_during_a_settle_ends_it_and_dither_needs_guiding(
    raw: OpenRaw
) -> None:
    c = await guiding_client(raw)
    await c.call("dither", [3, False, {"pixels": 0.5, "time": 10, "timeout": 60}])
    resp, _ = await c.call("stop_capture")
    assert resp["result"] == 0
    msgs = await c.read_until(is_event("SettleDone"))
    tail = [n for n in names(msgs) if n not in ("GuideStep", "Settling")]
    assert tail[-3:] == ["GuidingStopped", "LoopingExposuresStopped", "SettleDone"]
    assert msgs[-1]["Status"] == 1 and msgs[-1]["Error"] == "Stopped capturing"
    assert await c.result("get_app_state") == "Stopped"

    err, _ = await c.call("dither", [3, False, SETTLE])
    assert err["error"] == {"code": 1, "message": "Dither error"}
    await c.result("loop")
    await c.read_until(is_event("LoopingExposures"))
    err, _ = await c.call("dither", [3, False, SETTLE])
    assert err["error"] == {"code": 1, "message": "Dither error"}
    await c.result("set_connected", [False])
    err, _ = await c.call("guide", [SETTLE])
    assert err["error"] == {"code": 1, "message": "all equipment must be connected first"}


# ------------------------------------------------------------------ 6. connection and framing


async def test_lines_are_split_on_newline_whatever_the_read_boundaries(raw: OpenRaw) -> None:
    c = await raw()
    await c.catchup()
    data = line({"method": "get_exposure", "id": 1})
    for i in range(0, len(data), 5):  # one request dribbled over many writes
        await c.send_bytes(data[i:i + 5])
        await asyncio.sleep(0.002)
    assert await c.read() == {"jsonrpc": "2.0", "result": 1000, "id": 1}
    # Two requests in one write, one ended by LF only.
    await c.send_bytes(b'{"method":"get_connected","id":2}\n{"method":"get_paused","id":3}\r\n')
    assert [await c.read(), await c.read()] == [
        {"jsonrpc": "2.0", "result": False, "id": 2},
        {"jsonrpc": "2.0", "result": False, "id": 3},
    ]
    assert all(raw_line.endswith(b"\r\n") for raw_line in c.raw_lines)


async def test_batches_notifications_and_unknown_methods(raw: OpenRaw) -> None:
    c = await raw()
    await c.catchup()
    await c.send({"method": "set_exposure", "params": [2000]})  # no id: done, no reply
    await c.send([
        {"method": "get_exposure", "id": 10},
        {"method": "set_exposure", "params": {"exposure": 1500}},
        {"method": "no_such_method"},
        {"method": "no_such_method", "id": "x"},
    ])
    reply = await c.read()
    assert reply == [
        {"jsonrpc": "2.0", "result": 2000, "id": 10},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "method not found"},
         "id": "x"},
    ]
    assert await c.result("get_exposure") == 1500
    await c.send([{"method": "set_exposure", "params": [1000]}])  # all notifications
    assert await c.read_for(0.1) == []


async def test_protocol_errors_carry_phd2_codes_and_messages(raw: OpenRaw) -> None:
    c = await raw()
    await c.catchup()
    await c.send_bytes(b'{"method": "get_exposure", "id": 1\r\n')
    err = await c.read()
    assert err["id"] is None and err["error"]["code"] == -32700
    assert err["error"]["message"].startswith("invalid JSON request: ")

    await c.send_bytes(b'{"id": 2, "params": []}\r\n')
    assert await c.read() == {"jsonrpc": "2.0", "error": {
        "code": -32600, "message": "invalid request - missing method"}, "id": None}
    await c.send_bytes(b'{"method": "get_exposure", "params": 5, "id": 3}\r\n')
    assert (await c.read())["error"] == {
        "code": -32600, "message": "invalid request - params must be an array or object"}

    resp, _ = await c.call("set_exposure", ["1000"])
    assert resp["error"] == {"code": -32602, "message": "expected exposure param"}
    resp, _ = await c.call("set_exposure", {"exposure": 1234})
    assert resp["error"] == {"code": 1, "message": "could not set exposure duration"}
    resp, _ = await c.call("dither", {"amount": 3, "settle": {"pixels": 1}})
    assert resp["error"] == {"code": -32602, "message": "invalid settle params"}
    resp, _ = await c.call("get_star_image")
    assert resp["error"] == {"code": 2, "message": "no star selected"}

    # A request line must fit PHD2's 1024-byte buffer with its newline.
    head = b'{"method":"get_exposure","id":4}'
    await c.send_bytes(head + b" " * (1023 - len(head)) + b"\n")
    assert await c.read() == {"jsonrpc": "2.0", "result": 1000, "id": 4}
    await c.send_bytes(head + b" " * (1024 - len(head)) + b"\n")
    assert await c.read() == {"jsonrpc": "2.0", "error": {"code": -32603, "message": "too big"},
                              "id": None}
    await c.send_bytes(b'{"method":"get_exposure","id":5,"pad":"' + b"x" * 3000 + b'"}\r\n')
    assert (await c.read())["error"]["message"] == "too big"
    assert await c.result("get_exposure") == 1000  # the connection still works


async def test_every_client_gets_the_events_but_only_its_own_responses(
    raw: OpenRaw
) -> None:
    a, b = await raw(), await raw()
    await a.catchup()
    await b.catchup()
    await a.result("set_connected", [True])
    await a.result("loop")
    await a.read_until(is_event("LoopingExposures"))
    got = await b.read_until(is_event("LoopingExposures"))
    assert names(got) == ["LoopingExposures"]  # a's responses never reached b


async def test_a_connection_dropped_mid_settle_finds_the_settle_on_reconnect(
    sim: PHD2Simulator, raw: OpenRaw
) -> None:
    c = await guiding_client(raw)
    sim.faults.drop_mid_settle = 1
    await c.call("dither", [3, False, {"pixels": 0.3, "time": 30, "timeout": 60}])
    try:
        await c.read_until(lambda m: False, within_s=5)
        raise AssertionError("the connection should have dropped")
    except (EOFError, ConnectionError):
        pass
    again = await raw()
    catch = await again.catchup()
    assert catch[-1]["State"] == "Guiding"
    assert await again.result("get_settling") is True
    assert await again.result("stop_capture") == 0
    done = (await again.read_until(is_event("SettleDone")))[-1]
    assert done["Status"] == 1  # the settle that began before the drop ends on the new link
