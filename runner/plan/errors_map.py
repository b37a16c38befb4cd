"""Turn pydantic validation errors into diagnostics at the exact YAML node at fault."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from runner.plan.diagnostics import Diagnostic, Mark
from runner.plan.yamlsource import PathKey, Positions

_STEP_LISTS = ("sequence", "startup", "shutdown", "steps")


def _walk(loc: tuple[Any, ...], data: Any) -> tuple[PathKey, Any, list[Any]]:
    """Follow ``loc`` through ``data``; segments that are not in the data (union tags, model
    names) are skipped. Returns the data path, the node reached and the unmatched tail."""
    from runner.plan.models import step_kind

    path: list[str | int] = []
    cur = data
    unmatched: list[Any] = []
    skip_tag: str | None = None
    for seg in loc:
        if skip_tag is not None and seg == skip_tag:
            skip_tag = None  # the union tag of a step precedes its fields
            continue
        skip_tag = None
        if isinstance(cur, dict) and seg in cur:
            path.append(seg)
            cur = cur[seg]
            unmatched = []
        elif isinstance(cur, list) and isinstance(seg, int) and 0 <= seg < len(cur):
            in_steps = bool(path) and (
                path[-1] in _STEP_LISTS or (len(path) >= 2 and path[-2] == "blocks")
            )
            path.append(seg)
            cur = cur[seg]
            unmatched = []
            if in_steps:
                skip_tag = step_kind(cur)
        else:
            unmatched.append(seg)
    return tuple(path), cur, unmatched


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _allowed_keys(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _message(err: Any, node: Any, unmatched: list[Any], path: PathKey) -> str:
    from runner.plan.models import STEP_KINDS

    etype: str = err["type"]
    msg: str = err["msg"]
    ctx = err.get("ctx") or {}
    where = f" in '{path[-1]}'" if path and isinstance(path[-1], str) else ""
    if etype == "step_kind":
        if isinstance(node, dict):
            kinds = [k for k in node if k in STEP_KINDS]
            if len(kinds) > 1:
                return f"a step has exactly one kind, found {', '.join(kinds)}"
            unknown = [str(k) for k in node if k not in ("timeout", "on_error", "steps")]
            if unknown:
                return f"unknown step '{unknown[0]}'{_suggest(unknown[0], list(STEP_KINDS))}; " \
                    f"steps are: {', '.join(STEP_KINDS)}"
        return f"expected a step (a mapping with one of: {', '.join(STEP_KINDS)}), got {_fmt(node)}"
    if etype == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        return f"unknown key '{key}'"
    if etype == "missing":
        key = unmatched[-1] if unmatched else "?"
        return f"missing required key '{key}'"
    if etype.startswith("value_error") or etype == "assertion_error":
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if etype in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        return f"expected {expected}, got {_fmt(node)}"
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<",
              "less_than_equal": "≤"}[etype]
        bound = next(iter(ctx.values())) if ctx else "?"
        return f"must be {op} {bound}, got {_fmt(node)}"
    if etype in ("too_short", "too_long"):
        return msg.replace("List should", "must").replace("String should", "must")
    if msg.startswith("Input should be"):
        return "expected " + msg.removeprefix("Input should be ") + f", got {_fmt(node)}" + where
    return msg


def diagnostics_from(
    exc: ValidationError,
    data: Any,
    positions: Positions,
    *,
    root_model: type[BaseModel] | None = None,
) -> list[Diagnostic]:
    """One diagnostic per distinct problem, at the node at fault."""
    out: list[Diagnostic] = []
    seen: set[tuple[Mark, str]] = set()
    for err in exc.errors():
        loc = tuple(err["loc"])
        path, node, unmatched = _walk(loc, data)
        if err["type"] == "extra_forbidden":
            mark = positions.key_mark(path)
            parent_loc = loc[:-1]
            message = _message(err, node, unmatched, path)
            model = _model_at(parent_loc, root_model)
            if model is not None:
                allowed = _allowed_keys(model)
                message += _suggest(str(path[-1]), allowed) + f"; allowed: {', '.join(allowed)}"
        else:
            mark = positions.mark(path)
            message = _message(err, node, unmatched, path)
        key = (mark, message)
        if key not in seen:
            seen.add(key)
            out.append(Diagnostic.at(mark, message))
    return out


def _model_at(loc: tuple[Any, ...], root: type[BaseModel] | None) -> type[BaseModel] | None:
    """The model class whose field list applies at a validation location."""
    from runner.plan import models

    cls: Any = root or models.Plan
    for seg in loc:
        if isinstance(seg, int):
            continue
        if isinstance(seg, str) and seg in models.STEP_KINDS and cls is None:
            cls = models.STEP_KINDS[seg]
            continue
        fields = getattr(cls, "model_fields", None) if cls is not None else None
        if fields is None:
            cls = models.STEP_KINDS.get(seg) if isinstance(seg, str) else None
            continue
        fname = next((n for n, f in fields.items() if (f.alias or n) == seg), None)
        if fname is None:
            if isinstance(seg, str) and seg in models.STEP_KINDS:
                cls = models.STEP_KINDS[seg]
            continue
        cls = _inner_model(fields[fname].annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside Optional[...]/list[...]/dict[..., ...]; None when it is a union of
    steps (the next loc segment names the kind)."""
    import typing

    from pydantic import Discriminator

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is typing.Annotated and any(
        isinstance(m, Discriminator) for m in annotation.__metadata__
    ):
        return None
    args = typing.get_args(annotation)
    models_in = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(models_in) == 1:
        return models_in[0]
    for a in args:
        inner = _inner_model(a)
        if inner is not None:
            return inner
    return None
