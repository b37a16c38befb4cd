"""The plan language: models (the single source of truth), loading with positions,
diagnostics and semantic checks. Importing it never imports astropy."""

from runner.plan.diagnostics import Diagnostic, Mark, Severity
from runner.plan.equipment import Equipment
from runner.plan.loader import LoadResult, load_equipment, load_plan
from runner.plan.models import STEP_KINDS, Plan, Target

__all__ = [
    "STEP_KINDS",
    "Diagnostic",
    "Equipment",
    "LoadResult",
    "Mark",
    "Plan",
    "Severity",
    "Target",
    "load_equipment",
    "load_plan",
]
