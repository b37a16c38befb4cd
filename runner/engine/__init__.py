"""The engine: a plan compiled into a program, run by the executor under a state machine.

The names are loaded on first use (PEP 562): ``runner.estimate`` imports the executor, and
importing ``Run`` here eagerly would load storage and astropy into every ``validate`` and
``estimate`` (seconds of start-up the desk user feels on each keystroke-check)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.engine.compiler import Program, compile_plan
    from runner.engine.run import Run, RunOptions, RunResult

__all__ = ["Program", "Run", "RunOptions", "RunResult", "compile_plan"]

_WHERE = {"Program": "compiler", "compile_plan": "compiler",
          "Run": "run", "RunOptions": "run", "RunResult": "run"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'runner.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"runner.engine.{_WHERE[name]}"), name)
