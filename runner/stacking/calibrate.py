"""Calibration: master bias/dark/flat, the calibration index, and calibrating light frames.

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

**Dark matching** (:meth:`CalibrationLibrary.find_dark`): a dark is usable for a light when
gain, offset, binning and size are equal and the sensor temperatures differ by at most
``temp_tolerance`` (2 °C). Among usable darks an exposure within 1 % is used as is. Otherwise,
if a master bias exists, the dark is **scaled**: ``bias + (dark − bias)·t_light/t_dark``
(dark current is proportional to exposure at fixed temperature; the longest usable dark is
chosen since it has the least noise per second). Temperature is never extrapolated: the dark
current's doubling temperature differs between sensors, so a wrong guess is worse than none.
Without a usable dark, the bias is subtracted; without a bias either, only the flat is applied.

**Hot pixels**: from a master dark, pixels whose thermal signal exceeds the median by more
than ``hot_sigma``·σ (and by 5 ADU/s·t) are listed once; every calibrated light gets them
replaced by the median of their same-colour neighbours (±2 px on a CFA, ±1 px on mono).
Without a dark, a per-frame test finds isolated single-pixel spikes: a pixel far above its
3×3 median (per CFA plane) in a way no star core is — stars are spread over several pixels.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from astropy.io import fits

from runner.errors import StackingError
from runner.stacking.fitsio import FrameMeta, RowReader, read_frame
from runner.stacking.output import atomic_write_bytes
from runner.stacking.synthetic import BAYER_PATTERNS
from runner.storage.durable import file_mode

F32 = npt.NDArray[np.float32]
Kind = Literal["bias", "dark", "flat"]

DEFAULT_MEMORY = 256 * 1024 * 1024


# --------------------------------------------------------------------------- combine


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


# --------------------------------------------------------------------------- library


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


_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _slug(text: str) -> str:
    return _ID_SAFE.sub("_", text).strip("_") or "master"


def write_fits_atomic(path: Path, data: npt.NDArray[np.generic], header: fits.Header) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".fits", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would stay on the renamed file
        fits.PrimaryHDU(data=data, header=header).writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CalibrationLibrary:
    """``<data_dir>/calibration/``: master FITS files and ``index.json`` (seed 004's fields).

    Index entries carry, besides the seed's ``id, path, camera, settings, date, frames``, the
    master's ``kind``; ``settings`` holds exposure, gain, offset, binning, temperature,
    filter, bayer, width and height — what dark and flat matching use.
    """

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

    # ---- building

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

    # ---- matching

    def _compatible(self, m: Master, meta: FrameMeta, temp_tolerance: float) -> bool:
        for key, value in (
            ("gain", meta.gain),
            ("offset", meta.offset),
            ("binning", meta.binning),
            ("width", meta.width),
            ("height", meta.height),
        ):
            mv = m.get(key)
            if mv is not None and value is not None and float(mv) != float(value):
                return False
        mt = m.get("temperature")
        if mt is not None and meta.temperature is not None:
            return abs(float(mt) - meta.temperature) <= temp_tolerance
        return True

    def find_bias(self, meta: FrameMeta) -> Master | None:
        cands = [m for m in self.masters() if m.kind == "bias" and self._compatible(m, meta, 1e9)]
        return max(cands, key=lambda m: m.frames, default=None)

    def find_dark(
        self, meta: FrameMeta, *, temp_tolerance: float = 2.0, allow_scaling: bool = True
    ) -> tuple[Master, float] | None:
        """The best dark for a light and the factor its thermal signal must be scaled by."""
        cands = [
            m
            for m in self.masters()
            if m.kind == "dark" and self._compatible(m, meta, temp_tolerance)
        ]
        if not cands:
            return None
        if meta.exposure is None:
            return max(cands, key=lambda m: m.frames), 1.0
        exact = [
            m
            for m in cands
            if m.get("exposure") is not None
            and abs(float(m.get("exposure")) - meta.exposure) <= 0.01 * meta.exposure
        ]
        if exact:
            return max(exact, key=lambda m: m.frames), 1.0
        if not allow_scaling:
            return None
        timed = [m for m in cands if m.get("exposure")]
        if not timed:
            return None
        best = max(timed, key=lambda m: float(m.get("exposure")))
        return best, meta.exposure / float(best.get("exposure"))

    def find_flat(self, meta: FrameMeta) -> Master | None:
        cands = [
            m
            for m in self.masters()
            if m.kind == "flat"
            and self._compatible(m, meta, 1e9)
            and (meta.filter is None or m.get("filter") in (None, meta.filter))
        ]
        return max(cands, key=lambda m: m.frames, default=None)


# --------------------------------------------------------------------------- lights


@dataclass
class CalibrationSet:
    """The masters to apply to a series of lights (arrays in ADU; flat normalised)."""

    bias: F32 | None = None
    dark: F32 | None = None  # includes bias
    dark_exposure: float | None = None  # s
    flat: F32 | None = None
    ids: dict[str, str] = field(default_factory=dict)

    def shape(self) -> tuple[int, ...] | None:
        for a in (self.dark, self.bias, self.flat):
            if a is not None:
                return a.shape
        return None


class Calibrator:
    """Turns raw lights into calibrated float32 frames: (raw − dark·s) / flat, hot pixels fixed.

    The subtraction frame for each exposure and the reciprocal flat are computed once and
    cached, so calibrating a frame is a handful of vectorised passes.
    """

    def __init__(
        self,
        masters: CalibrationSet | None = None,
        *,
        bayer: str | None = None,
        hot_sigma: float = 8.0,
        cosmetic: bool = True,
    ) -> None:
        self.masters = masters or CalibrationSet()
        if bayer is not None and bayer not in BAYER_PATTERNS:
            raise StackingError(f"unsupported Bayer pattern {bayer!r}")
        self.bayer = bayer
        self.hot_sigma = hot_sigma
        self.cosmetic = cosmetic
        self._offset_cache: dict[float | None, F32 | None] = {}
        self._inv_flat: F32 | None = None
        if self.masters.flat is not None:
            flat = self.masters.flat
            good = flat > 0.05
            inv = np.ones_like(flat)
            np.divide(1.0, flat, out=inv, where=good)
            self._inv_flat = inv.astype(np.float32)
        self._hot: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None = None
        if self.masters.dark is not None:
            self._hot = self._hot_from_dark()

    @property
    def hot_pixel_count(self) -> int:
        return 0 if self._hot is None else int(self._hot[0].size)

    def _hot_from_dark(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        dark = self.masters.dark
        assert dark is not None
        thermal = dark - (self.masters.bias if self.masters.bias is not None else np.median(dark))
        sample = thermal[:: max(1, thermal.shape[0] // 256), :: max(1, thermal.shape[1] // 256)]
        med = float(np.median(sample))
        sigma = 1.4826 * float(np.median(np.abs(sample - med))) + 1e-6
        t = self.masters.dark_exposure or 1.0
        limit = med + max(self.hot_sigma * sigma, 5.0 * t)
        ys, xs = np.nonzero(thermal > limit)
        return ys.astype(np.intp), xs.astype(np.intp)

    def _offset(self, exposure: float | None) -> F32 | None:
        key = None if exposure is None else round(exposure, 6)
        if key in self._offset_cache:
            return self._offset_cache[key]
        m = self.masters
        off: F32 | None
        if m.dark is not None:
            if exposure is None or m.dark_exposure is None or m.dark_exposure <= 0:
                scale = 1.0
            else:
                scale = exposure / m.dark_exposure
            if abs(scale - 1.0) <= 0.01:
                off = m.dark
            elif m.bias is not None:
                off = (m.bias + (m.dark - m.bias) * np.float32(scale)).astype(np.float32)
            else:
                raise StackingError(
                    f"dark of {m.dark_exposure:g} s cannot be scaled to {exposure:g} s "
                    "without a master bias"
                )
        else:
            off = m.bias
        self._offset_cache[key] = off
        return off

    def apply(self, raw: npt.NDArray[np.generic], exposure: float | None = None) -> F32:
        if raw.ndim != 2:
            raise StackingError(f"calibration needs a 2-D raw frame, got shape {raw.shape}")
        shape = self.masters.shape()
        if shape is not None and tuple(raw.shape) != tuple(shape):
            raise StackingError(f"frame {raw.shape} does not match calibration masters {shape}")
        out: F32 = raw.astype(np.float32, copy=True)
        off = self._offset(exposure)
        if off is not None:
            np.subtract(out, off, out=out)
        if self._inv_flat is not None:
            np.multiply(out, self._inv_flat, out=out)
        if self._hot is not None:
            self._replace(out, *self._hot)
        elif self.cosmetic:
            self._fix_isolated(out)
        return out

    def _replace(self, img: F32, ys: npt.NDArray[np.intp], xs: npt.NDArray[np.intp]) -> None:
        """Median of the 8 same-colour neighbours (step 2 on a CFA, 1 on mono)."""
        if ys.size == 0:
            return
        h, w = img.shape
        s = 2 if self.bayer else 1
        vals = []
        for dy in (-s, 0, s):
            for dx in (-s, 0, s):
                if dy == 0 and dx == 0:
                    continue
                yy = np.clip(ys + dy, 0, h - 1)
                xx = np.clip(xs + dx, 0, w - 1)
                vals.append(img[yy, xx])
        img[ys, xs] = np.median(np.stack(vals), axis=0)

    def _fix_isolated(self, img: F32) -> None:
        planes = (
            [(slice(dy, None, 2), slice(dx, None, 2)) for dy in (0, 1) for dx in (0, 1)]
            if self.bayer
            else [(slice(None), slice(None))]
        )
        for sl in planes:
            plane = np.ascontiguousarray(img[sl])
            if min(plane.shape) < 3:
                continue
            med = cv2.medianBlur(plane, 3)
            sample = plane[:: max(1, plane.shape[0] // 128), :: max(1, plane.shape[1] // 128)]
            sky = float(np.median(sample))
            noise = 1.4826 * float(np.median(np.abs(sample - sky))) + 1e-6
            excess = cv2.subtract(plane, med)
            # A spike: far above its neighbourhood, and carrying most of its own signal above
            # the sky (a star's core is at most ~60 % above its 3×3 median for σ ≥ 1 px).
            # The second test runs on the few pixels that pass the first (one full pass less).
            cand = np.flatnonzero(excess > np.float32(self.hot_sigma * noise))
            if cand.size == 0:
                continue
            flat_plane, flat_med = plane.ravel(), med.ravel()
            hot = cand[excess.ravel()[cand] > 0.7 * (flat_plane[cand] - sky)]
            if hot.size:
                flat_plane[hot] = flat_med[hot]
                img[sl] = plane


def calibration_for(
    library: CalibrationLibrary,
    meta: FrameMeta,
    *,
    bias: str | None = None,
    dark: str | None = None,
    flat: str | None = None,
    auto: bool = True,
    temp_tolerance: float = 2.0,
) -> CalibrationSet:
    """Masters for lights like ``meta``: the ids given, else (``auto``) the best matches."""
    ids: dict[str, str] = {}
    bias_m = library.get(bias) if bias else (library.find_bias(meta) if auto else None)
    dark_m: Master | None = None
    if dark:
        dark_m = library.get(dark)
    elif auto:
        found = library.find_dark(meta, temp_tolerance=temp_tolerance)
        if found is not None and (found[1] == 1.0 or bias_m is not None):
            dark_m = found[0]
    flat_m = library.get(flat) if flat else (library.find_flat(meta) if auto else None)
    cs = CalibrationSet()
    if bias_m is not None:
        cs.bias = library.load(bias_m)
        ids["bias"] = bias_m.id
    if dark_m is not None:
        cs.dark = library.load(dark_m)
        exp = dark_m.get("exposure")
        cs.dark_exposure = float(exp) if exp is not None else None
        ids["darks"] = dark_m.id
    if flat_m is not None:
        cs.flat = library.load(flat_m)
        ids["flats"] = flat_m.id
    for a in (cs.bias, cs.dark, cs.flat):
        if a is not None and meta.width is not None and a.shape[-1] != meta.width:
            raise StackingError(f"calibration master {a.shape} does not fit {meta.width} px")
    return replace(cs, ids=ids)
