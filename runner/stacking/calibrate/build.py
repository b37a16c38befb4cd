"""Building calibration masters: σ-clipped combine of raw frames, written and indexed.

**Masters** are σ-clipped means: per pixel, samples further than κ·σ from the median (σ from
the MAD, so one cosmic ray cannot inflate it) are dropped and the rest averaged. Frames are
read in blocks of rows (astropy ``.section``), so memory is bounded by ``memory_bytes`` and not
by the number or size of frames: 200 4k darks combine in ~256 MB.

* Bias: the combine of the bias frames.
* Dark: the combine of the darks — *including* bias, so a dark of the light's exposure
  removes bias, dark current and amp glow in one subtraction.
* Flat: each flat minus bias (or a matching flat-dark, or its own median dark level when
  neither exists), divided by its median, combined, and normalised to a median of 1 — per
  CFA colour for one-shot-colour cameras, so flat division keeps the white balance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from runner.errors import StackingError
from runner.stacking.calibrate.index import CalibrationIndex, Kind, Master
from runner.stacking.fitsio import FrameMeta, RowReader, write_fits_atomic

F32 = npt.NDArray[np.float32]

DEFAULT_MEMORY = 256 * 1024 * 1024


def sigma_clip_combine(
    blocks: Sequence[F32] | npt.NDArray[np.float32], kappa: float = 3.0
) -> tuple[F32, int]:
    """σ-clipped mean along axis 0 (median/MAD clip, one pass); returns (mean, rejected)."""
    stack = np.asarray(blocks, dtype=np.float32)
    if stack.shape[0] == 1:
        return stack[0].copy(), 0
    med = np.median(stack, axis=0)
    mad = np.median(np.abs(stack - med), axis=0) * np.float32(1.4826)
    if stack.shape[0] < 5:
        # MAD of 2–4 samples is often 0; fall back to the spread of the whole block.
        mad = np.maximum(mad, np.float32(1.4826) * np.median(np.abs(stack - med)))
    keep = np.abs(stack - med) <= np.float32(kappa) * np.maximum(mad, np.float32(1e-6))
    n = keep.sum(axis=0)
    mean = np.where(keep, stack, 0.0).sum(axis=0, dtype=np.float64) / np.maximum(n, 1)
    out: F32 = np.where(n > 0, mean, med).astype(np.float32)
    return out, int(keep.size - np.count_nonzero(keep))


def combine_files(
    paths: Sequence[Path],
    *,
    kappa: float = 3.0,
    subtract: F32 | None = None,
    normalize: bool = False,
    memory_bytes: int = DEFAULT_MEMORY,
) -> tuple[F32, list[FrameMeta]]:
    """σ-clipped combine of FITS frames, read ``memory_bytes``-sized row blocks at a time.

    ``subtract`` (a master, same shape) is removed from every frame first; ``normalize`` then
    divides each frame by its own median (flats of different brightness combine correctly).
    """
    if not paths:
        raise StackingError("no frames to combine")
    with RowReader(list(paths)) as reader:
        h, w = reader.shape
        if subtract is not None and subtract.shape != (h, w):
            raise StackingError(f"master {subtract.shape} does not match frames {(h, w)}")
        scales = np.ones(len(paths), dtype=np.float32)
        if normalize:
            scales = _frame_medians(reader, subtract, h)
            if np.any(scales <= 0):
                raise StackingError("a flat frame has a non-positive median (no light?)")
        # Working set per row: the frames' rows plus ~4 temporaries of the same size.
        per_row = w * 4 * len(paths) * 5
        rows = max(1, min(h, memory_bytes // max(per_row, 1)))
        out = np.empty((h, w), dtype=np.float32)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            blocks = []
            for k, block in enumerate(reader.rows(r0, r1)):
                if subtract is not None:
                    block -= subtract[r0:r1]
                if normalize:
                    block /= scales[k]
                blocks.append(block)
            out[r0:r1], _ = sigma_clip_combine(blocks, kappa)
        return out, reader.metas()


def _frame_medians(reader: RowReader, subtract: F32 | None, h: int) -> F32:
    """Each frame's median from a sparse sample of rows (cheap, and plenty for a flat)."""
    step = max(1, h // 64)
    rows = list(range(0, h, step))
    samples: list[list[npt.NDArray[np.float32]]] = [[] for _ in reader.paths]
    for r in rows:
        for k, block in enumerate(reader.rows(r, r + 1)):
            if subtract is not None:
                block -= subtract[r : r + 1]
            samples[k].append(block.ravel())
    return np.array([np.median(np.concatenate(s)) for s in samples], dtype=np.float32)


def normalize_flat(flat: F32, bayer: str | None) -> F32:
    """Divide by the median: per CFA colour cell for colour sensors, so colours stay put."""
    out = flat.astype(np.float32, copy=True)
    if bayer is None:
        med = float(np.median(out))
        if med <= 0:
            raise StackingError("master flat has a non-positive median")
        out /= np.float32(med)
        return out
    for dy in (0, 1):
        for dx in (0, 1):
            cell = out[dy::2, dx::2]
            med = float(np.median(cell))
            if med <= 0:
                raise StackingError("master flat has a non-positive median in a CFA channel")
            cell /= np.float32(med)
    return out


_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _slug(text: str) -> str:
    return _ID_SAFE.sub("_", text).strip("_") or "master"


class MasterBuilder(CalibrationIndex):
    """Combines raw calibration frames into masters of the library (see the module docstring)."""

    def build_master(
        self,
        kind: Kind,
        frames: Sequence[str | Path],
        *,
        master_id: str | None = None,
        bias: str | None = None,
        dark: str | None = None,
        kappa: float = 3.0,
        memory_bytes: int = DEFAULT_MEMORY,
        camera: str | None = None,
    ) -> Master:
        """Combine raw calibration frames into a master, write it, and index it.

        ``bias``/``dark`` (master ids) are subtracted from flats; for darks and biases they
        are ignored (darks keep their bias, see the module docstring).
        """
        paths = [Path(p) for p in frames]
        if not paths:
            raise StackingError(f"no {kind} frames given")
        subtract: F32 | None = None
        if kind == "flat":
            if dark is not None:
                subtract = self.load(dark)
            elif bias is not None:
                subtract = self.load(bias)
        data, metas = combine_files(
            paths,
            kappa=kappa,
            subtract=subtract,
            normalize=kind == "flat",
            memory_bytes=memory_bytes,
        )
        first = metas[0]
        if kind == "flat":
            data = normalize_flat(data, first.bayer)
        settings = self._settings(kind, metas, data.shape)
        cam = camera or first.camera or "unknown"
        now = datetime.now().astimezone()
        if master_id is None:
            parts = [kind, self._describe(kind, settings), f"{now:%Y%m%d_%H%M%S}"]
            master_id = _slug("_".join(p for p in parts if p))
            taken = {m.id for m in self.masters()}
            base, k = master_id, 1
            while master_id in taken:
                k += 1
                master_id = f"{base}_{k}"
        rel = f"{_slug(master_id)}.fits"
        header = fits.Header()
        header["IMAGETYP"] = f"Master {kind.capitalize()}"
        header["NCOMBINE"] = (len(paths), "frames combined")
        header["INSTRUME"] = cam
        for key, card in (
            ("exposure", "EXPTIME"),
            ("gain", "GAIN"),
            ("offset", "OFFSET"),
            ("temperature", "CCD-TEMP"),
            ("binning", "XBINNING"),
            ("filter", "FILTER"),
            ("bayer", "BAYERPAT"),
        ):
            if settings.get(key) is not None:
                header[card] = settings[key]
        with self._lock:
            write_fits_atomic(self.root / rel, data.astype(np.float32), header)
            master = Master(
                id=master_id,
                kind=kind,
                path=rel,
                camera=cam,
                settings=settings,
                date=now.isoformat(timespec="seconds"),
                frames=len(paths),
            )
            self._add(master)
        return master

    @staticmethod
    def _describe(kind: Kind, s: dict[str, Any]) -> str:
        if kind == "dark" and s.get("exposure") is not None:
            return f"{s['exposure']:g}s"
        if kind == "flat" and s.get("filter"):
            return str(s["filter"])
        return ""

    @staticmethod
    def _settings(kind: Kind, metas: list[FrameMeta], shape: tuple[int, ...]) -> dict[str, Any]:
        def common(attr: str) -> Any:
            values = {getattr(m, attr) for m in metas} - {None}
            if len(values) > 1 and attr in ("gain", "offset", "binning", "bayer"):
                raise StackingError(f"{kind} frames disagree on {attr}: {sorted(values)}")
            return values.pop() if len(values) == 1 else None

        temps = [m.temperature for m in metas if m.temperature is not None]
        exps = [m.exposure for m in metas if m.exposure is not None]
        settings: dict[str, Any] = {
            "kind": kind,
            "exposure": float(np.median(exps)) if exps else None,
            "gain": common("gain"),
            "offset": common("offset"),
            "binning": common("binning"),
            "temperature": round(float(np.mean(temps)), 2) if temps else None,
            "filter": common("filter") if kind == "flat" else None,
            "bayer": common("bayer"),
            "height": int(shape[0]),
            "width": int(shape[1]),
        }
        if kind == "dark" and exps and (max(exps) - min(exps)) > 0.01 * max(exps):
            raise StackingError(f"darks of different exposures cannot combine: {sorted(set(exps))}")
        return {k: v for k, v in settings.items() if v is not None}
