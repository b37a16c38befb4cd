"""Fixtures: the simulators held by a served hub, and a served night on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.control.cpkit import Served, serve_night, serve_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Served]:
    """A hub holding the simulators (no night), on free loopback ports."""
    async with serve_rig(tmp_path) as served:
        yield served


@pytest.fixture
async def night(tmp_path: Path) -> AsyncIterator[Served]:
    """A long night imaging on the simulators at 300×, served; aborted at the end."""
    async with serve_night(tmp_path) as served:
        yield served
