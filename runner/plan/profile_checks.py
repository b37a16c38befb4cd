"""Checks of an equipment profile that need more than one section of it.

A field-level problem (a bad address, a port out of range, an option a fault kind ignores) is
caught by the models themselves; what is left is whether the parts fit together: a fault acts
on a simulated device only, and time acceleration is for an all-simulated rig only.
"""

from __future__ import annotations

from runner.plan.diagnostics import Diagnostic
from runner.plan.equipment import FAULT_DEVICE, Equipment
from runner.plan.yamlsource import Positions

DEVICE_NAMES = {"camera": "camera", "focuser": "focuser", "safety": "safety monitor",
                "guider": "guider"}


def simulated(eq: Equipment, section: str) -> bool | None:
    """Whether the device of ``section`` is simulated; None when the profile has none."""
    conn = getattr(eq, section)
    if conn is None:
        return None
    return bool(conn.backend == "simulator")


def real_devices(eq: Equipment) -> list[str]:
    """Sections whose device is not simulated (a real PHD2 counts)."""
    sections = ("camera", "filter_wheel", "focuser", "mount", "safety", "guider")
    return [s for s in sections if simulated(eq, s) is False]


def check_equipment(eq: Equipment, pos: Positions) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for i, fault in enumerate(eq.simulation.faults):
        section = FAULT_DEVICE[fault.kind]
        sim = simulated(eq, section)
        if sim is None:
            out.append(Diagnostic.at(
                pos.mark(("simulation", "faults", i, "kind")),
                f"fault {fault.kind} acts on the {DEVICE_NAMES[section]}, but the profile "
                f"has no '{section}'",
            ))
        elif not sim:
            backend = getattr(eq, section).backend
            out.append(Diagnostic.at(
                pos.mark(("simulation", "faults", i, "kind")),
                f"fault {fault.kind} is injected by the simulators only, but the {section} "
                f"uses backend {backend}",
            ))
    real = real_devices(eq)
    if real and "speed" in eq.simulation.model_fields_set and eq.simulation.speed != 1.0:
        out.append(Diagnostic.at(
            pos.mark(("simulation", "speed")),
            f"time acceleration needs every device simulated; {', '.join(real)} "
            f"{'is' if len(real) == 1 else 'are'} real (use --dry-run to rehearse fast)",
        ))
    return out
