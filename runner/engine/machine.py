"""The run's state machine, declared as data.

States are ``phase`` or ``phase:kind`` — the phase of the night (startup, imaging, waiting,
paused, shutdown) and the kind of step running in it (expose, filter, focus, …, plus the
trigger actions dither/autofocus/flip). The engine never does long work in a callback: it runs
a step as a task and fires ``begin_<kind>`` / ``step_done`` around it, so the machine always
says what is happening and refuses impossible requests (pause during shutdown, resume when
not paused).
"""

from __future__ import annotations

from typing import Any

from transitions import Machine, MachineError

from runner.plan.models import STEP_KINDS

PHASES_WITH_STEPS = ("startup", "imaging", "shutdown")
STEP_ACTIONS = tuple(k for k in STEP_KINDS if k not in ("use", "repeat", "each_filter"))
#: What runs in the gap between two light frames of an ``expose`` step.
GAP_ACTIONS = ("trigger_dither", "trigger_autofocus", "meridian_flip", "recover_guiding")
ACTIONS = STEP_ACTIONS + GAP_ACTIONS
FINAL = ("completed", "failed", "aborted")

STATES: list[str] = [
    "idle",
    *PHASES_WITH_STEPS,
    *(f"{p}:{a}" for p in PHASES_WITH_STEPS for a in ACTIONS),
    "waiting",
    "paused",
    *FINAL,
]

_LIVE = [s for s in STATES if s not in FINAL and s != "shutdown" and not s.startswith("shutdown:")]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "begin_startup", "source": "idle", "dest": "startup"},
    {"trigger": "begin_target", "source": ["startup", "imaging", "waiting"], "dest": "imaging"},
    {"trigger": "wait_constraints", "source": ["startup", "imaging"], "dest": "waiting"},
    {"trigger": "pause", "source": "imaging:expose", "dest": "paused"},
    {"trigger": "resume", "source": "paused", "dest": "imaging:expose"},
    {"trigger": "begin_shutdown", "source": _LIVE, "dest": "shutdown"},
    {"trigger": "finish", "source": "shutdown", "dest": "completed"},
    {"trigger": "fail", "source": "shutdown", "dest": "failed"},
    {"trigger": "aborted", "source": "shutdown", "dest": "aborted"},
]
for _phase in PHASES_WITH_STEPS:
    for _action in STEP_ACTIONS:
        TRANSITIONS.append(
            {"trigger": f"begin_{_action}", "source": _phase, "dest": f"{_phase}:{_action}"}
        )
    for _action in GAP_ACTIONS:
        TRANSITIONS.append(
            {"trigger": f"begin_{_action}", "source": f"{_phase}:expose",
             "dest": f"{_phase}:{_action}"}
        )
        TRANSITIONS.append(
            {"trigger": "gap_done", "source": f"{_phase}:{_action}", "dest": f"{_phase}:expose"}
        )
    TRANSITIONS.append(
        {"trigger": "step_done", "source": [f"{_phase}:{a}" for a in STEP_ACTIONS],
         "dest": _phase}
    )


#: (state, trigger) → next state: the transitions above as a table.
_NEXT: dict[tuple[str, str], str] = {}
for _t in TRANSITIONS:
    _sources = _t["source"] if isinstance(_t["source"], list) else [_t["source"]]
    for _s in _sources:
        _NEXT[(_s, _t["trigger"])] = _t["dest"]


class RunModel:
    """The model the machine drives; ``state`` is read by status requests.

    A table lookup per trigger: the night fires two per step, and a virtual night (the
    estimate) of 10,000 steps should not spend a second in a state-machine library.
    ``transitions`` validated the same table (``Machine`` below, built once, in tests).
    """

    state: str

    def __init__(self) -> None:
        self.state = "idle"

    def fire(self, trigger: str) -> None:
        """Fire a trigger; an impossible one raises ``MachineError`` naming the state."""
        dest = _NEXT.get((self.state, trigger))
        if dest is None:
            raise MachineError(f"Can't trigger event {trigger} from state {self.state}!")
        self.state = dest

    @property
    def action(self) -> str | None:
        parts = self.state.split(":", 1)
        return parts[1] if len(parts) == 2 else None


def reference_machine(model: Any) -> Machine:
    """The same table as a ``transitions`` machine (to check the table against the library)."""
    return Machine(model=model, states=STATES, transitions=TRANSITIONS, initial="idle",
                   auto_transitions=False, queued=True, send_event=False)


__all__ = ["ACTIONS", "STATES", "TRANSITIONS", "MachineError", "RunModel", "reference_machine"]
