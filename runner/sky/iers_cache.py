"""The Earth-orientation (IERS) table, parsed once per installed version instead of per process.

astropy parses the bundled IERS-A and IERS-B text tables (20,000 rows, fixed-width CDS format)
the first time a process converts UTC to UT1 — every Alt/Az does. That parse took 1.0 s of CPU,
more than a third of a cold ``nightrunner estimate`` of the example plan (bar 2.6 s). The
parsed table is stored as a pickle in the user's cache directory and loaded in ~10 ms by the
next process; astropy then uses it exactly as if it had parsed it (``IERS_Auto.iers_table``
is where ``IERS_Auto.open`` keeps its own parse).

The cache is keyed by everything the parse depends on: the astropy, numpy and Python versions
and the table files' paths, sizes and modification times (``pip install -U astropy-iers-data``
changes them, so fresh tables are never shadowed). It is only a speed-up: any problem (no
cache directory, a read-only home, a damaged or foreign file) falls back to astropy's own
parse, silently. Only a file owned by this user and writable by no one else is unpickled.
``NIGHTRUNNER_CACHE_DIR`` moves the cache (empty: no cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

_PREFIX = "iers-"


def cache_dir() -> Path | None:
    """Where the cache lives: $NIGHTRUNNER_CACHE_DIR, else $XDG_CACHE_HOME/nightrunner, else
    ~/.cache/nightrunner; None when caching is off (the variable set empty)."""
    given = os.environ.get("NIGHTRUNNER_CACHE_DIR")
    if given is not None:
        return Path(given) if given else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nightrunner"


def _key() -> str | None:
    """What the parsed table depends on; None when astropy would read something else (a
    ``finals2000A.all`` in the working directory, which astropy prefers)."""
    import astropy
    import numpy
    from astropy.utils import iers

    if os.path.exists("finals2000A.all"):
        return None
    parts = [astropy.__version__, numpy.__version__, sys.version]
    for name in (iers.IERS_A_FILE, iers.IERS_A_README, iers.IERS_B_FILE, iers.IERS_B_README):
        st = os.stat(name)
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _trusted(path: Path) -> bool:
    st = path.stat()
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _read(path: Path) -> Any:
    from astropy.utils import iers

    if not path.is_file() or not _trusted(path):
        return None
    table = pickle.loads(path.read_bytes())
    return table if isinstance(table, iers.IERS_Auto) else None


def _write(where: Path, path: Path, table: Any) -> None:
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=where, prefix=".iers-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(table, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # whole or absent: another process may be reading
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    for old in where.glob(f"{_PREFIX}*.pickle"):  # tables of earlier versions
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()


def install() -> None:
    """Give astropy its IERS table from the cache (or parse it and fill the cache); call with
    the astropy lock held, after :func:`runner.sky.offline.configure_offline`."""
    from astropy.utils import iers

    if iers.IERS_Auto.iers_table is not None:
        return
    try:
        where, key = cache_dir(), _key()
    except OSError:
        return
    if where is None or key is None:
        return
    path = where / f"{_PREFIX}{key}.pickle"
    try:
        table = _read(path)
    except Exception:  # a damaged cache is only a lost speed-up
        table = None
    if table is not None:
        iers.IERS_Auto.iers_table = table
        return
    table = iers.IERS_Auto.open()  # astropy's own parse, kept in IERS_Auto.iers_table
    with contextlib.suppress(Exception):
        _write(where, path, table)
