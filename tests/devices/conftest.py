"""Fixtures for the device tests."""

from __future__ import annotations

import pytest
from devsim_helpers import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
