"""The run's state machine: the table the engine looks up behaves exactly like the declared
transitions run by the ``transitions`` library — every state, every trigger."""

from __future__ import annotations

import pytest

from runner.engine.machine import STATES, TRANSITIONS, MachineError, RunModel, reference_machine

TRIGGERS = sorted({str(t["trigger"]) for t in TRANSITIONS})


class _Model:
    state: str


@pytest.mark.parametrize("state", STATES)
def test_every_trigger_from_every_state_goes_where_the_declared_machine_goes(state: str) -> None:
    for trigger in TRIGGERS:
        ref = _Model()
        machine = reference_machine(ref)
        machine.set_state(state)
        ours = RunModel()
        ours.state = state
        try:
            getattr(ref, trigger)()
        except MachineError:
            with pytest.raises(MachineError, match=state):
                ours.fire(trigger)
            assert ours.state == state
        else:
            ours.fire(trigger)
            assert ours.state == ref.state, (state, trigger)
