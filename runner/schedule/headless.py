"""``--log-file``: a night without a terminal writes everything it prints to a file."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def log_to_file(path: Path) -> None:
    """Send this process's stdout and stderr (progress lines, warnings, the final words) to
    ``path``, appended: at the file-descriptor level, so a crash's last words land there
    too. The progress display then sees no terminal and writes plain lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
