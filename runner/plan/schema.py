"""JSON Schema for editors, generated from the models (never written by hand)."""

from __future__ import annotations

import json
from typing import Any, Literal

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SchemaName = Literal["plan", "equipment"]


def schema_for(name: SchemaName) -> dict[str, Any]:
    from runner.plan.equipment import Equipment
    from runner.plan.models import Plan

    model = Plan if name == "plan" else Equipment
    schema = model.model_json_schema(mode="validation")
    schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://nightrunner.dev/schemas/{name}.schema.json",
        **schema,
    }
    if name == "plan":
        schema["title"] = "Nightrunner plan"
        schema["description"] = (
            "A night's imaging plan for Nightrunner. Steps are mappings with exactly one kind "
            "key (expose, filter, repeat, …). Units: seconds, degrees, °C, pixels."
        )
    else:
        schema["title"] = "Nightrunner equipment profile"
    return schema


def schema_text(name: SchemaName) -> str:
    return json.dumps(schema_for(name), indent=2, ensure_ascii=False) + "\n"
