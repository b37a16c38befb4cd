"""Diagnostics: the compiler-style contract that editors and tools rely on.

One problem is one line ``FILE:LINE:COL: severity: MESSAGE`` (1-based), pointing at the exact YAML
node at fault. ``--format json`` prints the same records as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum


class Severity(StrEnum):
    error = "error"
    warning = "warning"


@dataclass(frozen=True)
class Mark:
    """A position in a file, 1-based line and column."""

    file: str
    line: int
    column: int


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    column: int
    severity: Severity
    message: str

    @classmethod
    def at(cls, mark: Mark, message: str, severity: Severity = Severity.error) -> Diagnostic:
        return cls(mark.file, mark.line, mark.column, severity, message)

    def format(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity.value}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["severity"] = self.severity.value
        return d


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity is Severity.error for d in diagnostics)


def sort_key(d: Diagnostic) -> tuple[str, int, int]:
    return (d.file, d.line, d.column)


def to_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in sorted(diagnostics, key=sort_key)], indent=2)
