"""The base of every plan model, and the schema helpers the models share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler

if TYPE_CHECKING:
    from pydantic import GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema


class Shorthand:
    """Schema metadata: the field also accepts a short form (``guide: start``, ``focus: auto``,
    ``stack: true``) that a before-validator expands; editors must know it too."""

    def __init__(self, *alternatives: dict[str, Any]) -> None:
        self.alternatives = alternatives

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(core_schema), *self.alternatives]}


def not_implemented(what: str, instead: str, coming: str | None = None) -> ValueError:
    """The error for an option the language reserves but the engine does not do yet: a plan
    must never validate and then silently go without it."""
    note = f" ({coming})" if coming else ""
    return ValueError(f"{what} is not implemented yet{note}; {instead}")


class Model(BaseModel):
    """Base of every plan model: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, defer_build=True
    )
