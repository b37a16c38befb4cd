"""Shared fixtures: paths of the project and a helper to write plan files."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every `nightrunner run` a test starts serves its control plane on free ports, so tests that
# run at the same time (pytest-xdist, or another checkout's suite) never fight over the default
# 8765/8800. Tests of the control plane pass their addresses explicitly.
os.environ.setdefault("NIGHTRUNNER_RPC", "127.0.0.1:0")
os.environ.setdefault("NIGHTRUNNER_TCP", "127.0.0.1:0")


@pytest.fixture
def project_root() -> Path:
    return ROOT


@pytest.fixture
def write_plan(tmp_path: Path) -> Callable[..., Path]:
    """Write YAML text (dedented) to a file in tmp_path and return its path."""

    def write(text: str, name: str = "plan.yaml") -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return p

    return write
