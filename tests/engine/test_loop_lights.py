"""`repeat: {until: {frames: N}}` counts the lights of one run of its loop, nested loops and
resumed frames included, and never a light of another loop or of another run of the same loop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.engine.loop_lights import LoopLights

OUTER = "T0/sequence[0]"  # repeat …
INNER = "T0/sequence[0]/steps[1]"  # … a repeat inside it
STEP_IN_INNER = f"{INNER}/steps[0]"


def test_a_light_counts_towards_its_loop_run_and_every_enclosing_one() -> None:
    lights = LoopLights([f"{STEP_IN_INNER}#i2#i0#f0", f"{STEP_IN_INNER}#i2#i1#f0"])
    assert lights.in_loop(INNER, "#i2") == 2  # run of the inner loop in outer iteration 2
    assert lights.in_loop(OUTER, "") == 2  # the outer loop's only run
    assert lights.in_loop(INNER, "#i1") == 0  # another run of the inner loop
    assert lights.in_loop("T0/sequence[1]", "") == 0  # another loop


def test_a_light_counted_twice_counts_once() -> None:
    lights = LoopLights([f"{OUTER}/steps[0]#i0#f0"])
    lights.add(f"{OUTER}/steps[0]#i0#f0")  # a resumed key taken again
    assert lights.in_loop(OUTER, "") == 1 and len(lights) == 1


def test_a_step_outside_every_loop_counts_for_none() -> None:
    lights = LoopLights(["T0/sequence[2]#f0", "k0"])
    assert lights.in_loop("T0/sequence[2]", "") == 0 and "k0" in lights


def _scan(keys: set[str], loop_id: str, outer_suffix: str) -> int:
    """The definition, by brute force: step id below ``<loop>/steps``, suffix below ``S#i``."""
    return sum(1 for k in keys if k.startswith(f"{loop_id}/steps")
               and k[k.index("#"):].startswith(f"{outer_suffix}#i"))


_ids = st.lists(st.sampled_from(["T0/sequence[0]", "/steps[0]", "/steps[1]", "/steps[10]"]),
                min_size=1, max_size=4).map("".join)
_suffix = st.lists(st.sampled_from(["#i0", "#i1", "#i10", "#c0"]), max_size=4).map("".join)
_keys = st.lists(st.tuples(_ids, _suffix, st.integers(0, 2)).map(
    lambda t: f"{t[0]}{t[1]}#f{t[2]}"), max_size=30)


@settings(max_examples=200, derandomize=True, database=None)
@given(keys=_keys, loop_id=_ids, outer=_suffix)
def test_the_count_is_the_brute_force_count(keys: list[str], loop_id: str, outer: str) -> None:
    lights = LoopLights(keys[: len(keys) // 2])
    for k in keys[len(keys) // 2:]:
        lights.add(k)
    assert lights.in_loop(loop_id, outer) == _scan(set(keys), loop_id, outer)
