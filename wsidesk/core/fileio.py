"""Atomic file writes: readers (and a crash) see the old file or the new one, never half of one."""

from __future__ import annotations

import os
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
