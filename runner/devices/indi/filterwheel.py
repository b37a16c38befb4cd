"""INDI filter wheel → :class:`runner.devices.interfaces.FilterWheel`.

INDI slots are 1-based (``FILTER_SLOT``); ours are 0-based. Names come from ``FILTER_NAME``
(``FILTER_SLOT_NAME_1`` …).
"""

from __future__ import annotations

from runner.devices.indi.base import FILTER, IndiDevice
from runner.devices.indi.client import BUSY
from runner.devices.interfaces import FilterWheel
from runner.errors import DeviceError


def _slot_number(element: str) -> int:
    tail = element.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class IndiFilterWheel(IndiDevice, FilterWheel):
    interface = FILTER
    key_property = "FILTER_SLOT"
    kind = "filter wheel"

    def _slots(self) -> int:
        return int(self._prop("FILTER_SLOT").limits["FILTER_SLOT_VALUE"][1])

    async def names(self) -> list[str]:
        if not self._has("FILTER_NAME"):
            return [f"Filter {i + 1}" for i in range(self._slots())]
        values = self._prop("FILTER_NAME").values
        ordered = sorted(values, key=_slot_number)
        return [str(values[k]) for k in ordered][: self._slots()]

    async def position(self) -> int | None:
        slot = self._prop("FILTER_SLOT")
        if slot.state == BUSY:
            return None
        return round(slot.number("FILTER_SLOT_VALUE")) - 1

    async def move_to(self, slot: int) -> None:
        count = self._slots()
        if not 0 <= slot < count:
            raise DeviceError(f"{self.label}: slot {slot} outside 0…{count - 1}")
        await self._send("FILTER_SLOT", {"FILTER_SLOT_VALUE": slot + 1}, until="started")
