"""Compile a validated plan into a ``Program``: blocks inlined, defaults and error policies
resolved, every step given a stable identity.

Identities are what the journal records and ``--resume`` matches, so they depend only on the
plan's structure: ``T0/sequence[1]/steps[0]`` is the first step of the second sequence entry
of target 0; a step reached through ``use:`` carries the block path after ``>``. Loop
iterations and frame numbers are added at run time (``…#i2#f5``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runner.plan.equipment import Equipment
from runner.plan.models import (
    EachFilterStep,
    ErrorPolicy,
    Plan,
    RepeatArgs,
    RepeatStep,
    Settle,
    StepBase,
    Target,
    Then,
    Triggers,
    UseStep,
    step_kind,
)


@dataclass(frozen=True)
class Leaf:
    """One executable step."""

    id: str
    kind: str
    step: StepBase
    policy: ErrorPolicy
    timeout: float | None


@dataclass(frozen=True)
class Loop:
    """``repeat`` (count or until) around a body."""

    id: str
    spec: RepeatArgs
    body: tuple[Node, ...]
    policy: ErrorPolicy


@dataclass(frozen=True)
class FilterLoop:
    """``each_filter``: the body once per filter, switching filter first."""

    id: str
    filters: tuple[str, ...]
    body: tuple[Node, ...]
    policy: ErrorPolicy


Node = Leaf | Loop | FilterLoop


@dataclass(frozen=True)
class CompiledTarget:
    index: int
    id: str
    target: Target
    body: tuple[Node, ...]
    policy: ErrorPolicy


@dataclass(frozen=True)
class Program:
    plan: Plan
    equipment: Equipment
    startup: tuple[Node, ...]
    targets: tuple[CompiledTarget, ...]
    shutdown: tuple[Node, ...]
    triggers: Triggers
    settle: Settle

    def light_frames_planned(self) -> int:
        """Light frames in count-bounded structure (until-loops count one iteration)."""
        from runner.plan.models import ExposeStep

        def count(nodes: Sequence[Node]) -> int:
            total = 0
            for n in nodes:
                if isinstance(n, Leaf) and isinstance(n.step, ExposeStep):
                    if n.step.expose.type == "light":
                        total += n.step.expose.count
                elif isinstance(n, Loop):
                    total += count(n.body) * (n.spec.count or 1)
                elif isinstance(n, FilterLoop):
                    total += count(n.body) * len(n.filters)
            return total

        return sum(count(t.body) for t in self.targets)


class _Compiler:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def nodes(
        self, steps: Sequence[StepBase], prefix: str, policy: ErrorPolicy, depth: int = 0
    ) -> tuple[Node, ...]:
        if depth > 64:
            raise ValueError(f"blocks nested too deeply at {prefix} (a use-cycle?)")
        out: list[Node] = []
        for i, step in enumerate(steps):
            sid = f"{prefix}[{i}]"
            pol = step.on_error or policy
            if isinstance(step, UseStep):
                body = self.plan.blocks[step.use]
                out.extend(self.nodes(body, f"{sid}>{step.use}", pol, depth + 1))
            elif isinstance(step, RepeatStep):
                out.append(Loop(sid, step.repeat, self.nodes(step.steps, f"{sid}/steps", pol,
                                                             depth + 1), pol))
            elif isinstance(step, EachFilterStep):
                out.append(FilterLoop(sid, tuple(step.each_filter),
                                      self.nodes(step.steps, f"{sid}/steps", pol, depth + 1), pol))
            else:
                kind = step_kind(step)
                assert kind is not None
                out.append(Leaf(sid, kind, step, pol, step.timeout))
        return tuple(out)


SHUTDOWN_RETRIES = 2
SHUTDOWN_BACKOFF = 5.0  # seconds (engine clock): retries after 5 s and 10 s


def compile_plan(plan: Plan, equipment: Equipment) -> Program:
    c = _Compiler(plan)
    startup = c.nodes(plan.startup, "startup", plan.on_error)
    targets = []
    for i, t in enumerate(plan.targets):
        pol = t.on_error or plan.on_error
        targets.append(CompiledTarget(i, f"T{i}", t, c.nodes(t.sequence, f"T{i}/seq", pol), pol))
    # shutdown never gives up the rest of the shutdown for one failing step, and a device
    # that cannot be reached gets a bounded second and third chance (reconnecting between)
    shut_policy = ErrorPolicy(retry=SHUTDOWN_RETRIES, backoff=SHUTDOWN_BACKOFF,
                              then=Then.skip_step)
    shutdown = c.nodes(plan.shutdown, "shutdown", shut_policy)
    return Program(
        plan=plan,
        equipment=equipment,
        startup=startup,
        targets=tuple(targets),
        shutdown=shutdown,
        triggers=plan.trigger_set(),
        settle=plan.defaults.settle,
    )
