"""The image index: every frame's metadata in SQLite in the data directory (seed 002's "image
persistence & recall").

One row per file, keyed by its path relative to the data directory, so the data directory
can move. The engine adds a row after the FITS file is renamed into place; the control plane
and the night report query it while a run is going: WAL journaling lets readers proceed while
the engine writes. The index is derived data: the engine writes it from a worker
(:mod:`runner.storage.index_writer`) that waits out a lock instead of stopping the night, and
:func:`runner.storage.recover.index_missing` adds frames it missed from their FITS headers.
Times are stored as UTC ISO text (sortable), temperatures °C, exposures s,
guiding RMS in ``guide_unit``.

Blocking (sqlite3): the engine calls it off the event loop or accepts the ~1 ms per frame.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

from runner.records import Frame

if TYPE_CHECKING:  # astropy.io.fits is not needed to read the index (the report, `images`)
    from runner.storage.fits import FrameMeta

INDEX_FILENAME = "index.sqlite"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ImageRecord:
    path: str  # relative to the data directory, '/' separated
    frame_type: str  # light | dark | flat | bias
    exposure: float  # s
    date_obs: datetime  # UTC, shutter open
    target: str | None = None
    filter: str | None = None
    binning: int = 1
    width: int = 0  # px as stored (binned)
    height: int = 0
    gain: int | None = None
    offset: int | None = None
    ccd_temp: float | None = None  # °C
    set_temp: float | None = None  # °C
    focus_position: int | None = None  # steps
    focus_temp: float | None = None  # °C
    hfr: float | None = None  # px
    star_count: int | None = None
    guide_rms: float | None = None
    guide_rms_ra: float | None = None
    guide_rms_dec: float | None = None
    guide_unit: str | None = None  # arcsec | px
    ra: float | None = None  # J2000 degrees
    dec: float | None = None
    run_id: str | None = None  # which run wrote it (the engine's choice: plan name + start)
    id: int | None = None  # assigned by the index

    @classmethod
    def from_frame(
        cls,
        frame: Frame,
        path: str | PurePosixPath,
        meta: FrameMeta | None = None,
        *,
        run_id: str | None = None,
    ) -> ImageRecord:
        if meta is None:
            from runner.storage.fits import FrameMeta

            meta = FrameMeta()
        m = meta
        g = m.guiding
        h, w = frame.data.shape[:2]
        return cls(
            path=str(PurePosixPath(path)),
            frame_type=frame.frame_type,
            exposure=float(frame.exposure),
            date_obs=frame.start.astimezone(UTC),
            target=m.object_name,
            filter=m.filter,
            binning=frame.binning,
            width=int(w),
            height=int(h),
            gain=frame.gain,
            offset=frame.offset,
            ccd_temp=frame.ccd_temp,
            set_temp=frame.set_temp,
            focus_position=m.focus_position,
            focus_temp=m.focus_temperature,
            hfr=m.hfr,
            star_count=m.star_count,
            guide_rms=None if g is None else g.rms_total,
            guide_rms_ra=None if g is None else g.rms_ra,
            guide_rms_dec=None if g is None else g.rms_dec,
            guide_unit=None if g is None else g.unit,
            ra=m.ra,
            dec=m.dec,
            run_id=run_id,
        )


_COLUMNS = [f.name for f in fields(ImageRecord) if f.name != "id"]
_SQL_TYPES = {
    "path": "TEXT NOT NULL UNIQUE",
    "frame_type": "TEXT NOT NULL",
    "exposure": "REAL NOT NULL",
    "date_obs": "TEXT NOT NULL",
    "target": "TEXT",
    "filter": "TEXT",
    "binning": "INTEGER NOT NULL",
    "width": "INTEGER NOT NULL",
    "height": "INTEGER NOT NULL",
    "gain": "INTEGER",
    "offset": "INTEGER",
    "ccd_temp": "REAL",
    "set_temp": "REAL",
    "focus_position": "INTEGER",
    "focus_temp": "REAL",
    "hfr": "REAL",
    "star_count": "INTEGER",
    "guide_rms": "REAL",
    "guide_rms_ra": "REAL",
    "guide_rms_dec": "REAL",
    "guide_unit": "TEXT",
    "ra": "REAL",
    "dec": "REAL",
    "run_id": "TEXT",
}
assert set(_SQL_TYPES) == set(_COLUMNS), "every ImageRecord field has a column"


def _ts(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("index times must be timezone-aware")
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def relative_path(data_dir: Path, path: str | Path) -> str:
    """``path`` (absolute, or relative to ``data_dir``) as the index stores it.

    Raises:
        ValueError: ``path`` is outside ``data_dir``.
    """
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(data_dir.resolve())
        except ValueError as exc:
            raise ValueError(f"{path} is not inside the data directory {data_dir}") from exc
    return p.as_posix()


@dataclass(frozen=True)
class Summary:
    """Integration per target, filter and frame type."""

    target: str | None
    filter: str | None
    frame_type: str
    frames: int
    total_exposure: float  # s


class ImageIndex:
    """The SQLite index of one data directory. Thread-safe; use as a context manager.

    ``location`` is the data directory (the index is ``index.sqlite`` in it) or the index file
    itself (a path ending in ``.sqlite``/``.db``); stored paths are relative to its directory.
    """

    def __init__(
        self, location: str | Path, *, filename: str = INDEX_FILENAME, busy_timeout: float = 5.0
    ) -> None:
        loc = Path(location)
        is_file = loc.suffix in (".sqlite", ".db", ".sqlite3") or loc.is_file()
        self.path = loc if is_file else loc / filename
        self.data_dir = self.path.parent
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        try:
            with self._lock:
                self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: a row the engine added survives a power cut or a failing disk with
                # the frame it describes (NORMAL may roll the last commits back)
                self._db.execute("PRAGMA synchronous=FULL")
                self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer Nightrunner (schema {version})")
        if version == SCHEMA_VERSION:
            return  # nothing to write: opening must not need the lock another writer holds
        cols = ",\n  ".join(f"{c} {_SQL_TYPES[c]}" for c in _COLUMNS)
        self._db.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS images (
              id INTEGER PRIMARY KEY AUTOINCREMENT,
              {cols}
            );
            CREATE INDEX IF NOT EXISTS images_target ON images(target, filter, frame_type);
            CREATE INDEX IF NOT EXISTS images_date ON images(date_obs);
            PRAGMA user_version = {SCHEMA_VERSION};
            """
        )

    # ---------------------------------------------------------------- writing

    def add(self, record: ImageRecord) -> int:
        """Insert ``record`` (or replace the row with the same path); returns its id."""
        values = asdict(record)
        values.pop("id")
        values["date_obs"] = _ts(record.date_obs)
        names = ", ".join(_COLUMNS)
        marks = ", ".join(f":{c}" for c in _COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS if c != "path")
        with self._lock:
            cur = self._db.execute(
                f"INSERT INTO images ({names}) VALUES ({marks}) "
                f"ON CONFLICT(path) DO UPDATE SET {updates} RETURNING id",
                values,
            )
            row = cur.fetchone()
        return int(row[0])

    def add_frame(
        self,
        path: str | Path,
        frame: Frame,
        meta: FrameMeta | None = None,
        *,
        run_id: str | None = None,
    ) -> int:
        """Record a frame just written to ``path`` (absolute, or relative to the data dir)."""
        rel = self.relative(path)
        return self.add(ImageRecord.from_frame(frame, rel, meta, run_id=run_id))

    def remove(self, path: str | PurePosixPath) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM images WHERE path = ?", (str(path),))
        return cur.rowcount > 0

    # ---------------------------------------------------------------- reading

    @staticmethod
    def _where(
        target: str | None,
        filter: str | None,
        frame_type: str | None,
        since: datetime | None,
        until: datetime | None,
        run_id: str | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("target", target),
            ("filter", filter),
            ("frame_type", frame_type),
            ("run_id", run_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("date_obs >= ?")
            args.append(_ts(since))
        if until is not None:
            clauses.append("date_obs < ?")
            args.append(_ts(until))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def query(
        self,
        *,
        target: str | None = None,
        filter: str | None = None,
        frame_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ImageRecord]:
        """Frames matching every given criterion, by time; ``until`` is exclusive."""
        where, args = self._where(target, filter, frame_type, since, until, run_id)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT * FROM images{where} ORDER BY date_obs {order}, id {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [self._record(r) for r in rows]

    def get(self, path: str | PurePosixPath) -> ImageRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM images WHERE path = ?", (str(path),)).fetchone()
        return None if row is None else self._record(row)

    def by_id(self, image_id: int) -> ImageRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        return None if row is None else self._record(row)

    def count(self, **criteria: Any) -> int:
        where, args = self._where(
            criteria.get("target"),
            criteria.get("filter"),
            criteria.get("frame_type"),
            criteria.get("since"),
            criteria.get("until"),
            criteria.get("run_id"),
        )
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM images{where}", args).fetchone()[0])

    def paths(self) -> set[str]:
        """Every indexed path (relative, '/' separated)."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT path FROM images").fetchall()}

    def relative(self, path: str | Path) -> str:
        """``path`` as the index stores it. Raises ValueError outside the data directory."""
        return relative_path(self.data_dir, path)

    def targets(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT target FROM images WHERE target IS NOT NULL ORDER BY target"
            ).fetchall()
        return [r[0] for r in rows]

    def summary(self, *, run_id: str | None = None) -> list[Summary]:
        """Frames and total exposure per target / filter / type (the night report's table)."""
        where, args = self._where(None, None, None, None, None, run_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT target, filter, frame_type, COUNT(*), SUM(exposure) FROM images"
                f"{where} GROUP BY target, filter, frame_type ORDER BY target, filter, frame_type",
                args,
            ).fetchall()
        return [Summary(r[0], r[1], r[2], int(r[3]), float(r[4])) for r in rows]

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.query())

    @staticmethod
    def _record(row: sqlite3.Row) -> ImageRecord:
        values = {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row
        values["date_obs"] = datetime.fromisoformat(values["date_obs"]).replace(tzinfo=UTC)
        return ImageRecord(**values)

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ImageIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def rows_as_dicts(records: Sequence[ImageRecord]) -> list[dict[str, Any]]:
    """JSON-ready rows (ISO times) for the control plane."""
    out = []
    for r in records:
        d = asdict(r)
        d["date_obs"] = r.date_obs.isoformat()
        out.append(d)
    return out
