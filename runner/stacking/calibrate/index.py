"""The calibration directory's index: ``calibration/index.json`` and the masters it lists."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from runner.errors import StackingError
from runner.stacking.fitsio import read_frame
from runner.stacking.output import atomic_write_bytes

F32 = npt.NDArray[np.float32]
Kind = Literal["bias", "dark", "flat"]


@dataclass
class Master:
    """One calibration master and its seed-004 index entry."""

    id: str
    kind: Kind
    path: str  # relative to the calibration directory
    camera: str
    settings: dict[str, Any]
    date: str
    frames: int

    def index_entry(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "camera": self.camera,
            "settings": self.settings,
            "date": self.date,
            "frames": self.frames,
            "kind": self.kind,
        }

    @classmethod
    def from_entry(cls, e: dict[str, Any]) -> Master:
        kind = e.get("kind") or e.get("settings", {}).get("kind")
        if kind not in ("bias", "dark", "flat"):
            raise StackingError(f"calibration index entry {e.get('id')!r} has no valid kind")
        return cls(
            id=str(e["id"]),
            kind=kind,
            path=str(e["path"]),
            camera=str(e.get("camera", "")),
            settings=dict(e.get("settings", {})),
            date=str(e.get("date", "")),
            frames=int(e.get("frames", 0)),
        )

    def get(self, key: str) -> Any:
        return self.settings.get(key)


class CalibrationIndex:
    """``<data_dir>/calibration/``: read, look up and load the masters ``index.json`` lists,
    and add one (the base :class:`~runner.stacking.calibrate.CalibrationLibrary` builds and
    matches on)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / "calibration"
        self.index_path = self.root / "index.json"
        self._lock = threading.Lock()

    # ---- index

    def masters(self) -> list[Master]:
        if not self.index_path.exists():
            return []
        try:
            entries = json.loads(self.index_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StackingError(f"cannot read {self.index_path}: {exc}") from exc
        if not isinstance(entries, list):
            raise StackingError(f"{self.index_path}: expected a JSON list")
        return [Master.from_entry(e) for e in entries]

    def get(self, master_id: str) -> Master:
        for m in self.masters():
            if m.id == master_id:
                return m
        raise StackingError(f"no calibration master with id {master_id!r} in {self.index_path}")

    def load(self, master: Master | str) -> F32:
        m = self.get(master) if isinstance(master, str) else master
        data, _ = read_frame(self.root / m.path)
        return np.asarray(data, dtype=np.float32)

    def _add(self, master: Master) -> None:
        entries = [m.index_entry() for m in self.masters() if m.id != master.id]
        entries.append(master.index_entry())
        atomic_write_bytes(self.index_path, (json.dumps(entries, indent=2) + "\n").encode())
