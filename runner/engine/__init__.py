"""The engine: a plan compiled into a program, run by the executor under a state machine."""

from runner.engine.compiler import Program, compile_plan
from runner.engine.run import Run, RunOptions, RunResult

__all__ = ["Program", "Run", "RunOptions", "RunResult", "compile_plan"]
