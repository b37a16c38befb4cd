"""Files that survive a crash or a failing disk: written whole, fsync'd, with the mode a user's
other files get.

A file written with ``write_text`` sits in the page cache until the kernel gets round to it;
after a power cut or a file system that starts returning EIO it can be 0 bytes (ext4's delayed
allocation), which made ``--resume`` find "nothing to resume". Everything the record of a night
depends on (``run.json``, ``summary.json``, stacked results) is written here instead: temporary
file in the same directory, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from pathlib import Path

_umask_lock = threading.Lock()
_umask: int | None = None


def file_mode() -> int:
    """0o666 less the process umask: what ``open()`` would give a new file (0644 usually).

    ``tempfile.mkstemp`` creates 0600 files; renamed into place they kept that mode, so the
    stacked results were unreadable to the group that reads the frames."""
    global _umask
    with _umask_lock:
        if _umask is None:
            current = os.umask(0o022)  # the only way to read it is to set it
            os.umask(current)
            _umask = current
        return 0o666 & ~_umask


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """``path`` holds ``data`` whole or keeps its old content; never half a file.

    ``durable=False`` skips the fsyncs (previews rewritten every few frames, where losing the
    latest one to a power cut costs nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)
