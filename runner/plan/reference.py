"""The plan reference in docs/, generated from the models so it cannot drift from them."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from runner.plan import equipment, models


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base = args[0]
        meta = annotation.__metadata__
        for m in meta:
            js = getattr(m, "json_schema", None)
            if js and "description" in js:
                return {float: "duration" if "Duration" in js["description"] else "number"}.get(
                    base, str(getattr(base, "__name__", base))
                )
        if any(type(m).__name__ == "Discriminator" for m in meta):
            return "step"
        return _type_name(base)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(_type_name(a) for a in args if a is not type(None))
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping of name → {_type_name(args[1])}"
    if origin is tuple:
        return f"[{', '.join(_type_name(a) for a in args)}]"
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        if hasattr(annotation, "__members__"):
            return " | ".join(repr(m.value) for m in annotation)  # type: ignore[attr-defined]
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        return "(see type)"
    d = field.default
    if d is None:
        return "—"
    if hasattr(d, "value"):
        return f"`{d.value}`"
    return f"`{d}`"


def _model_section(model: type[BaseModel]) -> list[str]:
    lines = [f"### {model.__name__}", ""]
    doc = (model.__doc__ or "").strip()
    if doc and not doc.startswith(("Usage docs", "!!! abstract")):
        lines += [" ".join(doc.split()), ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, f in model.model_fields.items():
        key = f.alias or name
        desc = (f.description or "").replace("|", "\\|").replace("\n", " ")
        ann = _type_name(f.annotation).replace("|", "\\|")
        lines.append(f"| `{key}` | {ann} | {_default(f)} | {desc} |")
    lines.append("")
    return lines


def _collect(root: type[BaseModel], seen: list[type[BaseModel]]) -> None:
    if root in seen:
        return
    seen.append(root)
    for f in root.model_fields.values():
        for t in _models_in(f.annotation):
            _collect(t, seen)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for a in typing.get_args(annotation):
        out += _models_in(a)
    return out


def reference_markdown() -> str:
    lines = [
        "# Plan language reference",
        "",
        "<!-- Generated from runner/plan/models/ and runner/plan/equipment.py by "
        "`nightrunner schema --reference`; a test fails when it is out of date. -->",
        "",
        "Units: durations are seconds (or a string with a unit: `90s`, `15min`, `2h`); angles "
        "are degrees; temperatures °C; positions focuser steps; sizes pixels. Clock times are "
        "`'HH:MM'` site-local (or with `Z`/`+HH:MM`) and mean the next occurrence.",
        "",
        "Every key does what it says or is rejected by `validate`: options marked *not "
        "implemented yet* accept only their default, and a profile's `address`, `device`, "
        "ports and faults are checked against the back-end that uses them "
        "(`tests/plan/test_option_audit.py` keeps the list).",
        "",
        "## Steps",
        "",
        "A step is a mapping with exactly one kind key, optionally with `timeout` and `on_error`"
        " (and `steps` for `repeat` and `each_filter`; `use`, `repeat` and `each_filter` take"
        " no `timeout`: put it on the steps inside):",
        "",
    ]
    lines += ["| kind | arguments |", "|---|---|"]
    for kind, cls in models.STEP_KINDS.items():
        ann = _type_name(cls.model_fields[kind].annotation).replace("|", "\\|")
        lines.append(f"| `{kind}` | {ann} |")
    lines.append("")
    lines += ["## Plan models", ""]
    seen: list[type[BaseModel]] = []
    _collect(models.Plan, seen)
    for cls in models.STEP_KINDS.values():
        _collect(cls, seen)
    _collect(models.IncludedPlan, seen)
    for m in seen:
        lines += _model_section(m)
    lines += ["## Equipment profile models", ""]
    eq_seen: list[type[BaseModel]] = []
    _collect(equipment.Equipment, eq_seen)
    for m in eq_seen:
        if m not in seen:
            lines += _model_section(m)
    return "\n".join(lines).rstrip() + "\n"
