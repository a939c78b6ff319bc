"""Append-only JSON-lines event log, one per run, flushed line by line so a crash loses nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from wsidesk.core.errors import StoreError
from wsidesk.core.events import Event
from wsidesk.core.fileio import atomic_write


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        except OSError as exc:
            msg = f"cannot write the event log {path}: {exc}"
            raise StoreError(msg) from exc

    def write(self, event: Event) -> None:
        line = json.dumps(event.to_json(), default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            try:
                self._file.close()
            except OSError:  # a line that could not be flushed (disk full) was already reported
                pass


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file."""
    try:
        with atomic_write(path) as f:
            f.write(json.dumps(data, indent=2, default=str))
    except OSError as exc:
        msg = f"cannot write {path}: {exc}"
        raise StoreError(msg) from exc
