"""Load a plan file: YAML with positions → includes merged → models → semantic checks.

``load_plan`` never raises for bad input: every problem becomes a ``Diagnostic`` at
FILE:LINE:COL, and the plan is returned only when there is no error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runner.plan.diagnostics import Diagnostic, Mark, has_errors
from runner.plan.equipment import Equipment
from runner.plan.models import IncludedPlan, Plan
from runner.plan.yamlsource import Positions, read_yaml

BUILTIN_PROFILES = Path(__file__).parent / "profiles"
MAX_INCLUDE_DEPTH = 16
#: What an included file may hold (the main plan alone describes the night).
FRAGMENT_KEYS = tuple(IncludedPlan.model_fields)


@dataclass
class LoadResult:
    path: Path
    plan: Plan | None = None
    equipment: Equipment | None = None
    equipment_path: Path | None = None
    positions: Positions = field(default_factory=Positions)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.plan is not None and not has_errors(self.diagnostics)


def display_path(path: Path, relative_to: str | None = None) -> str:
    """Paths as the user wrote them: the plan as typed on the command line, an included file
    relative to the directory of the file that names it."""
    if relative_to is None or path.is_absolute():
        return str(path)
    return os.path.normpath(os.path.join(os.path.dirname(relative_to), path))


def _merge_includes(
    data: dict[str, Any],
    positions: Positions,
    file: Path,
    shown: str,
    stack: tuple[Path, ...],
    diags: list[Diagnostic],
) -> None:
    """Splice blocks and targets of every included file into ``data`` (depth-first)."""
    includes = data.get("include")
    if includes is None:
        return
    if not isinstance(includes, list):
        return  # the model reports the type error
    for i, name in enumerate(includes):
        mark = positions.mark(("include", i))
        if not isinstance(name, str):
            continue
        target = (file.parent / name).resolve()
        if target in stack:
            chain = " → ".join(p.name for p in (*stack, target))
            diags.append(Diagnostic.at(mark, f"include cycle: {chain}"))
            continue
        if len(stack) >= MAX_INCLUDE_DEPTH:
            diags.append(Diagnostic.at(mark, f"includes nested deeper than {MAX_INCLUDE_DEPTH}"))
            continue
        if not target.exists():
            diags.append(Diagnostic.at(mark, f"included file '{name}' not found"))
            continue
        inc_shown = display_path(Path(name), shown)
        doc = read_yaml(target, display=inc_shown, what="included plan")
        diags.extend(doc.diagnostics)
        if doc.data is None:
            continue
        if not _fragment_ok(doc.data, doc.positions, shown, diags):
            continue
        _merge_includes(doc.data, doc.positions, target, inc_shown, (*stack, target), diags)
        blocks = data.setdefault("blocks", {})
        if isinstance(blocks, dict):
            for bname, body in (doc.data.get("blocks") or {}).items():
                if bname in blocks:
                    first = positions.key_mark(("blocks", bname))
                    diags.append(
                        Diagnostic.at(
                            doc.positions.key_mark(("blocks", bname)),
                            f"block '{bname}' is already defined at "
                            f"{first.file}:{first.line}:{first.column}",
                        )
                    )
                    continue
                blocks[bname] = body
                positions.graft(doc.positions, ("blocks", bname), ("blocks", bname))
        targets = data.setdefault("targets", [])
        if isinstance(targets, list):
            for j, tgt in enumerate(doc.data.get("targets") or []):
                positions.graft(doc.positions, ("targets", j), ("targets", len(targets)))
                targets.append(tgt)


def _fragment_ok(
    data: dict[str, Any], positions: Positions, including: str, diags: list[Diagnostic]
) -> bool:
    """An included file holds only ``blocks``, ``targets`` and further ``include``s.

    Everything that describes the night itself (version, name, site, equipment, defaults,
    startup, triggers, shutdown, on_error) comes from the main plan alone, so that one night
    never has two of them. Other keys are reported here with that reason, and the blocks and
    targets are merged all the same: their contents are checked with the main plan, so errors
    point into this file and a block is still known by name (no follow-on "no block named").
    False when the three have the wrong shape to merge.
    """
    ok = True
    for key in data:
        if key in FRAGMENT_KEYS:
            continue
        mark = positions.key_mark((key,))
        if key in Plan.model_fields:
            msg = (f"'{key}' is not allowed in an included file: an included file holds only "
                   f"{', '.join(FRAGMENT_KEYS)}; '{key}' belongs to the main plan ({including})")
        else:
            msg = f"unknown key '{key}' in an included file; allowed: {', '.join(FRAGMENT_KEYS)}"
        diags.append(Diagnostic.at(mark, msg))
    for key, kind in (("include", list), ("blocks", dict), ("targets", list)):
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            ok = False
            shape = "a list" if kind is list else "a mapping"
            diags.append(Diagnostic.at(positions.mark((key,)), f"'{key}' must be {shape}"))
    return ok


def resolve_equipment_path(ref: str, plan_file: Path) -> Path | None:
    """Where the profile ``ref`` lives: a path relative to the plan, ``equipment/NAME.yaml``
    beside the plan, ``~/.config/nightrunner/equipment/NAME.yaml``, or built in."""
    candidates: list[Path] = []
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        candidates.append(plan_file.parent / ref)
    else:
        candidates += [
            plan_file.parent / "equipment" / f"{ref}.yaml",
            Path.home() / ".config" / "nightrunner" / "equipment" / f"{ref}.yaml",
            BUILTIN_PROFILES / f"{ref}.yaml",
        ]
    # exists, not is_file: a directory or a device in the way is reported as what it is
    return next((c for c in candidates if c.exists()), None)


def _profile_not_found(ref: str, plan_file: Path) -> str:
    """Where a profile name was looked for, and what stands there instead."""
    msg = f"equipment profile '{ref}' not found"
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        return msg
    beside = plan_file.parent / ref
    if beside.is_dir():
        return (f"{msg}: '{ref}' beside the plan is a directory; name the profile file "
                f"('{ref}/NAME.yaml') or put it at equipment/{ref}.yaml")
    builtin = ", ".join(sorted(p.stem for p in BUILTIN_PROFILES.glob("*.yaml")))
    return (f"{msg} (looked for equipment/{ref}.yaml beside the plan, "
            f"~/.config/nightrunner/equipment/{ref}.yaml and the built-in ones: {builtin})")


def load_equipment(path: Path) -> tuple[Equipment | None, list[Diagnostic]]:
    """Read and check a profile; the profile is returned only when it has no error."""
    doc = read_yaml(path, display=display_path(path), what="equipment profile")
    if doc.data is None:
        return None, doc.diagnostics
    try:
        eq = Equipment.model_validate(doc.data)
    except ValidationError as exc:
        from runner.plan.errors_map import diagnostics_from

        return None, doc.diagnostics + diagnostics_from(
            exc, doc.data, doc.positions, root_model=Equipment
        )
    from runner.plan.profile_checks import check_equipment

    diags = doc.diagnostics + check_equipment(eq, doc.positions)
    return (None if has_errors(diags) else eq), diags


def load_plan(
    path: Path | str,
    *,
    equipment: Path | None = None,
    semantic: bool = True,
) -> LoadResult:
    """Load, validate and check a plan; ``equipment`` overrides the plan's profile."""
    path = Path(path)
    result = LoadResult(path=path)
    doc = read_yaml(path, display=display_path(path))
    result.positions = doc.positions
    result.diagnostics.extend(doc.diagnostics)
    if doc.data is None or has_errors(doc.diagnostics):
        return result  # structural YAML problems first: models would only echo them
    _merge_includes(
        doc.data, doc.positions, path.resolve(), str(path), (path.resolve(),), result.diagnostics
    )
    try:
        plan = Plan.model_validate(doc.data)
    except ValidationError as exc:
        from runner.plan.errors_map import diagnostics_from

        result.diagnostics.extend(diagnostics_from(exc, doc.data, doc.positions))
        return result
    # equipment
    eq_path = equipment
    eq_mark: Mark = doc.positions.mark(("equipment",))
    if eq_path is None:
        eq_path = resolve_equipment_path(plan.equipment, path)
        if eq_path is None:
            result.diagnostics.append(
                Diagnostic.at(eq_mark, _profile_not_found(plan.equipment, path)))
    if eq_path is not None:
        eq, eq_diags = load_equipment(eq_path)
        result.diagnostics.extend(eq_diags)
        result.equipment = eq
        result.equipment_path = eq_path
    if semantic:
        from runner.plan.semantic import check_plan, check_site

        result.diagnostics.extend(check_site(plan, doc.positions))
        if result.equipment is not None:
            result.diagnostics.extend(check_plan(plan, result.equipment, doc.positions))
    if not has_errors(result.diagnostics):
        result.plan = plan
    return result
