"""Sites and instants shared by the sky tests (one night, so grids are computed once).

A plain module, not a conftest: test directories without packages share one ``conftest``
module name, so helpers imported by name must have unique names."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from runner.plan.models import Site

AMSTERDAM = Site(latitude=52.37, longitude=4.89, elevation=5, timezone="Europe/Amsterdam")
SYDNEY = Site(latitude=-33.87, longitude=151.21, elevation=40, timezone="Australia/Sydney")
TROMSO = Site(latitude=69.65, longitude=18.96, elevation=10, timezone="Europe/Oslo")
NIGHT = date(2026, 11, 25)
AMS_TZ = ZoneInfo("Europe/Amsterdam")
#: Local noon opening the night of NIGHT in Amsterdam.
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=AMS_TZ)

#: Vega, J2000 (Hipparcos).
VEGA = (279.234735, 38.783689)
