"""Values that used to fail only at dusk (or never) are FILE:LINE:COL errors from `validate`.

An address with a port out of range, a device id of the wrong kind for its back-end, an option
a fault kind ignores, a time zone that does not exist: each is reported at the value, with what
would be right, before a night depends on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.plan.loader import load_equipment, load_plan

ROOT = Path(__file__).resolve().parents[2]

PLAN = """\
version: 1
name: profile check
site: {latitude: 34, longitude: -118, timezone: America/Los_Angeles}
equipment: eq.yaml
targets:
  - name: M81
    coordinates: {ra: "09:55:33", dec: "+69:03:55"}
    sequence:
      - expose: {exposure: 1}
"""


def _profile(write_plan: Callable[..., Path], body: str) -> list[str]:
    path = write_plan("name: rig\n" + body, "eq.yaml")
    eq, diags = load_equipment(path)
    if any(d.severity == "error" for d in diags):
        assert eq is None
    return [d.format().replace(str(path.parent) + os.sep, "") for d in diags]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('camera: {backend: alpaca, address: "127.0.0.1:99999"}',
         "eq.yaml:2:36: error: alpaca address '127.0.0.1:99999': port 99999 is outside 1–65535"),
        ("camera: {backend: alpaca, device: zero}",
         "eq.yaml:2:35: error: an Alpaca device is a device number (0, 1, …), got 'zero'"),
        ('camera: {backend: indi, address: "localhost:70000"}',
         "eq.yaml:2:34: error: indi address 'localhost:70000': port 70000 is outside 1–65535"),
        ('camera: {backend: indi, address: "localhost:ccd"}',
         "eq.yaml:2:34: error: indi address 'localhost:ccd': the port must be a number"),
        ("camera: {backend: indi, device: 3}",
         "eq.yaml:2:33: error: an INDI device is named by a string"),
        ('camera: {backend: simulator, address: "127.0.0.1:11111"}',
         "eq.yaml:2:39: error: a simulated device has no address"),
        ("camera: {backend: simulator, device: 1}",
         "eq.yaml:2:38: error: a simulated device has no 'device'"),
        ("guider: {backend: simulator, host: 10.0.0.5}",
         "eq.yaml:2:36: error: the PHD2 simulator runs on this machine (127.0.0.1); 'host' "
         "applies to backend phd2"),
        ("safety: {}\nsimulation: {faults: [{kind: unsafe_weather, at_frame: 4}]}",
         "eq.yaml:3:56: error: 'at_frame' is not supported for unsafe_weather (the weather has no "
         "frame number: use at_time)"),
        ("safety: {}\nsimulation: {faults: [{kind: unsafe_weather, times: 3}]}",
         "eq.yaml:3:53: error: 'times' is not supported for unsafe_weather"),
        ("focuser: {}\nsimulation: {faults: [{kind: focuser_stuck, at_frame: 2}]}",
         "eq.yaml:3:55: error: 'at_frame' is not supported for focuser_stuck"),
        ("simulation: {faults: [{kind: unsafe_weather, at_time: 60}]}",
         "eq.yaml:2:30: error: fault unsafe_weather acts on the safety monitor, but the profile "
         "has no 'safety'"),
        ("camera: {backend: alpaca}\n"
         "simulation: {faults: [{kind: camera_disconnect, at_frame: 2}]}",
         "eq.yaml:3:30: error: fault camera_disconnect is injected by the simulators only, but the "
         "camera uses backend alpaca"),
        ("camera: {backend: alpaca}\nsimulation: {speed: 60}",
         "eq.yaml:3:21: error: time acceleration needs every device simulated; camera is real"),
    ],
)
def test_a_profile_value_that_cannot_work_is_an_error_at_the_value(
    write_plan: Callable[..., Path], body: str, expected: str
) -> None:
    messages = _profile(write_plan, body)
    assert any(m.startswith(expected) for m in messages), messages


def test_what_each_back_end_accepts_validates(write_plan: Callable[..., Path]) -> None:
    messages = _profile(write_plan, """\
camera: {backend: alpaca, address: "192.168.1.20:11111", device: "1"}
focuser: {backend: indi, address: "[::1]:7624", device: "Focuser Simulator"}
mount: {backend: indi, address: observatory.local}
safety: {backend: simulator}
guider: {backend: phd2, host: 10.0.0.5, port: 4401}
simulation: {faults: [{kind: unsafe_weather, at_time: 60, duration: 30}]}
""")
    assert messages == []


def test_a_fault_that_fires_on_a_frame_still_takes_at_frame(
    write_plan: Callable[..., Path],
) -> None:
    messages = _profile(write_plan, "simulation: {faults: [{kind: camera_disconnect, at_frame: 4,"
                                    " times: 2}, {kind: exposure_hang, at_frame: 1}]}")
    assert messages == []


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "empty.yaml", "file is empty: expected an equipment profile"),
        (lambda d: d, "is a directory, not an equipment profile file"),
        (lambda d: Path("/dev/zero"), "more than 4 MiB to read (not a regular file?)"),
    ],
    ids=["empty", "directory", "dev-zero"],
)
def test_a_profile_that_is_not_a_profile_says_what_it_is(
    write_plan: Callable[..., Path], make: Callable[[Path], Path], expected: str
) -> None:
    plan = write_plan(PLAN)
    (plan.parent / "empty.yaml").write_text("# nothing yet\n")
    profile = make(plan.parent)
    result = load_plan(plan, equipment=profile)
    messages = [d.format() for d in result.diagnostics]
    assert not result.ok
    [message] = messages
    assert message.startswith(f"{profile}:1:1: error: {expected}"), message


def test_an_unknown_time_zone_is_an_error_with_the_nearest_names(
    write_plan: Callable[..., Path],
) -> None:
    plan = write_plan(PLAN.replace("America/Los_Angeles", "America/Los_Angles"), "plan.yaml")
    (plan.parent / "eq.yaml").write_text("name: rig\n")
    proc = subprocess.run(
        [sys.executable, "-c", "from runner.entry import main; main()", "validate", str(plan)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith(
        f"{plan}:3:49: error: unknown time zone 'America/Los_Angles': use an IANA name; "
        "did you mean America/Los_Angeles"
    ), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_clock_times_without_a_site_zone_warn_that_the_machine_zone_is_used(
    write_plan: Callable[..., Path],
) -> None:
    (Path(write_plan("name: rig\n", "eq.yaml")))
    no_zone = PLAN.replace(", timezone: America/Los_Angeles", "")
    quiet = load_plan(write_plan(no_zone, "plain.yaml"))
    assert quiet.ok and quiet.diagnostics == []
    timed = load_plan(write_plan(
        no_zone.replace("    sequence:", "    constraints: {after: '21:30'}\n    sequence:"),
        "timed.yaml",
    ))
    assert timed.ok
    [d] = timed.diagnostics
    assert (d.severity, d.line, d.column) == ("warning", 3, 7)
    assert "site has no 'timezone': clock times (first at line 8) are read in the time zone " \
        "of the machine running the night" in d.message


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("repeat: {count: 2}\n        timeout: 60\n        steps: [{expose: {exposure: 1}}]",
         "10:18: error: 'timeout' applies to single steps; a repeat step has none"),
        ("calibration: {kind: bias, exposures: [1]}",
         "9:22: error: bias frames are taken at the shortest exposure: remove 'exposures'"),
        ("calibration: {kind: flat, filters: [L, R, G], exposures: [1, 2]}",
         "9:22: error: flats take one exposure for all filters or one per filter: 2 exposures "
         "for 3 filters"),
    ],
)
def test_a_step_option_the_engine_would_ignore_is_an_error(
    write_plan: Callable[..., Path], step: str, expected: str
) -> None:
    write_plan("name: rig\nfilter_wheel: {filters: [{name: L}, {name: R}, {name: G}]}\n",
               "eq.yaml")
    plan = write_plan(PLAN.replace("expose: {exposure: 1}", step))
    messages = [d.format() for d in load_plan(plan).diagnostics]
    assert any(m.startswith(f"{plan}:{expected}") for m in messages), messages


@pytest.mark.parametrize(
    ("where", "text", "expected"),
    [
        ("sequence", "guide: {action: stop, settle: {time: 5}}",
         "9:39: error: 'settle' applies to 'guide: start'; stopping guiding neither settles "
         "nor calibrates"),
        ("sequence", "guide: {action: stop, recalibrate: true}",
         "9:44: error: 'recalibrate' applies to 'guide: start'"),
        ("startup", "repeat: {until: {altitude_below: 30}}\n    steps: [{wait: {for: 1}}]",
         "6:38: error: repeat until altitude_below needs a target; use it in a target's "
         "sequence"),
        ("triggers", "autofocus: {settings: {steps: 11}}",
         "6:5: error: autofocus trigger never fires: give it temperature_change, "
         "hfr_increase, filter_change, every_minutes or every_frames"),
    ],
)
def test_an_option_that_would_do_nothing_where_it_stands_is_an_error(
    write_plan: Callable[..., Path], where: str, text: str, expected: str
) -> None:
    """A guide stop neither settles nor calibrates; outside a target there is no altitude for
    a loop to end by; an autofocus trigger with no condition never fires."""
    write_plan("name: rig\nguider: {backend: simulator}\nfocuser: {backend: simulator}\n",
               "eq.yaml")
    body = PLAN
    if where == "sequence":
        body = PLAN.replace("expose: {exposure: 1}", text)
    else:
        body = PLAN.replace("targets:", f"{where}:\n  - {text}\ntargets:")
    plan = write_plan(body)
    messages = [d.format() for d in load_plan(plan).diagnostics]
    assert any(m.startswith(f"{plan}:{expected}") for m in messages), messages


def test_a_profile_name_not_found_says_where_it_was_looked_for(
    write_plan: Callable[..., Path],
) -> None:
    plan = write_plan(PLAN.replace("equipment: eq.yaml", "equipment: dirprof"))
    (plan.parent / "dirprof").mkdir()
    [message] = [d.format() for d in load_plan(plan).diagnostics]
    assert message.startswith(f"{plan}:4:12: error: equipment profile 'dirprof' not found: "
                              "'dirprof' beside the plan is a directory"), message
    plan = write_plan(PLAN.replace("equipment: eq.yaml", "equipment: nosuchrig"))
    [message] = [d.format() for d in load_plan(plan).diagnostics]
    assert "looked for equipment/nosuchrig.yaml beside the plan" in message, message
    assert "built-in ones: " in message and "simulator" in message, message
