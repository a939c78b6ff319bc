"""Atomic file writes: readers (and a crash) see the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def atomic_write(path: Path, *, newline: str | None = None, fsync: bool = False) -> Iterator[TextIO]:
    """Write text to a temporary file beside `path`, then rename it over `path` in one step.

    `fsync` also forces the data to disk before the rename (checkpoints that must survive a crash).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline=newline) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left" from the OS or from SQLite ("database or disk is full")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return type(exc).__name__ in ("OperationalError", "DatabaseError") and "disk is full" in str(exc)


def free_mb(folder: Path) -> float | None:
    """Free space in MB on the file system holding `folder` (its nearest existing parent); None if unknown."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free / 1e6
    except OSError:
        return None


def disk_full_message(folder: Path) -> str:
    """'disk full: 0.1 MB free in /x/data; free space and run the same command again to resume'."""
    free = free_mb(folder)
    amount = "no space" if free is None else f"{free:.1f} MB"
    return f"disk full: {amount} free in {folder}; free space and run the same command again to resume"
