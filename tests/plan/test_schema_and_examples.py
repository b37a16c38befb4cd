"""The published JSON Schema and reference match the models; every example plan is valid —
to our loader and to an independent JSON Schema validator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.plan.loader import load_plan
from runner.plan.reference import reference_markdown
from runner.plan.schema import schema_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "plans").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../schemas/plan.schema.json"


def test_checked_in_schemas_are_current() -> None:
    for name in ("plan", "equipment"):
        on_disk = (ROOT / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
        assert on_disk == schema_text(name), (
            f"schemas/{name}.schema.json is stale: run `nightrunner schema --write`"
        )


def test_plan_reference_is_current() -> None:
    on_disk = (ROOT / "docs" / "plan-reference.md").read_text(encoding="utf-8")
    assert on_disk == reference_markdown(), "run `nightrunner schema --write`"


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("plan", EXAMPLES, ids=lambda p: p.name)
def test_example_plan_is_valid_and_carries_the_modeline(plan: Path) -> None:
    assert plan.read_text(encoding="utf-8").splitlines()[0] == MODELINE
    result = load_plan(plan)
    assert result.ok, [d.format() for d in result.diagnostics]


def test_examples_pass_an_independent_validator() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    profiles = sorted((ROOT / "runner" / "plan" / "profiles").glob("*.yaml"))
    for schema, files in (("plan", EXAMPLES), ("equipment", profiles)):
        proc = subprocess.run(
            [str(checker), "--schemafile", str(ROOT / "schemas" / f"{schema}.schema.json"),
             *map(str, files)],
            capture_output=True, text=True, check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_independent_validator_rejects_what_we_reject(tmp_path: Path) -> None:
    """Guards against a schema so loose that the check above could never fail."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nname: x\nsite: {latitude: 1, longitude: 2}\n"
        "targets:\n  - name: A\n    coordinates: {ra: 1, dec: 2}\n"
        "    sequence: [{expose: {count: 0, exposure: 5}}, {exposee: {}}]\n",
        encoding="utf-8",
    )
    checker = Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run(
        [str(checker), "--schemafile", str(ROOT / "schemas" / "plan.schema.json"), str(bad)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    assert not load_plan(bad).ok
