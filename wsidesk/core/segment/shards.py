"""Append-only checkpoint of a segment job's cells: one fsynced JSON line per finished batch.

`<out_dir>/cells.parts.jsonl` starts with a header line naming the plan and model; then each line is
`{"tiles": [...], "failed": {"index": "reason"}, "cells": [Cell.to_dict(), ...]}`. A batch's line is
written and fsynced before its tile states are saved in the run store, so after a crash every tile the
store calls finished has its cells on disk. A batch line whose tiles the store does not record as
finished (a kill between the two writes) is dropped on resume and those tiles are segmented again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from wsidesk.core.fileio import atomic_write
from wsidesk.core.segment.cells import Cell

logger = logging.getLogger(__name__)

SHARDS_FILENAME = "cells.parts.jsonl"
SHARDS_VERSION = 1


@dataclass(frozen=True, slots=True, eq=False)
class ShardState:
    """What a previous run left: finished tiles, failed tiles with reasons, and their merged cells."""

    done: frozenset[int] = frozenset()
    failed: Mapping[int, str] = field(default_factory=dict)
    cells: tuple[Cell, ...] = ()
    batches: int = 0
    dropped_batches: int = 0

    @property
    def finished(self) -> frozenset[int]:
        return self.done | frozenset(self.failed)


class CellShards:
    """The shard file of one segment job. `header` identifies the plan: a file with another header is stale."""

    def __init__(self, out_dir: str | Path, header: Mapping[str, Any]) -> None:
        self.path = Path(out_dir) / SHARDS_FILENAME
        self.header = {"version": SHARDS_VERSION, **dict(header)}
        self._file: IO[str] | None = None

    def load(self, finished: Collection[int]) -> ShardState:
        """Read back batches whose tiles are all in `finished` (the store's done/failed tiles).

        The file is rewritten with only those batches (and a fresh header), so it never holds a tile twice.
        A torn last line, a stale header or a missing file give an empty state.
        """
        finished = frozenset(finished)
        kept: list[str] = []
        done: set[int] = set()
        failed: dict[int, str] = {}
        cells: list[Cell] = []
        dropped = 0
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            header = _parse(lines[0]) if lines else None
            if header is None or header.get("header") != _jsonable(self.header):
                if lines:
                    logger.info("ignoring %s: it belongs to another plan or model", self.path)
                lines = []
            for number, line in enumerate(lines[1:], start=2):
                record = _parse(line)
                if record is None or "tiles" not in record:
                    logger.warning("ignoring unreadable line %d of %s (torn write?)", number, self.path)
                    dropped += 1
                    continue
                tiles = [int(i) for i in record["tiles"]]
                fails = {int(k): str(v) for k, v in record.get("failed", {}).items()}
                if not set(tiles) | set(fails) <= finished:
                    dropped += 1  # saved before a kill, never confirmed: those tiles run again
                    continue
                done.update(tiles)
                failed.update(fails)
                cells.extend(Cell.from_dict(c) for c in record.get("cells", ()))
                kept.append(line)
        self._rewrite(kept)
        return ShardState(frozenset(done), failed, tuple(cells), len(kept), dropped)

    def append(self, tiles: Iterable[int], failed: Mapping[int, str], cells: Iterable[Cell]) -> None:
        """Write one batch and make it durable (flush + fsync) before returning."""
        if self._file is None:
            if not self.path.exists():
                self._rewrite([])
            self._file = self.path.open("a", encoding="utf-8")
        record = {
            "tiles": [int(i) for i in tiles],
            "failed": {str(k): v for k, v in failed.items()},
            "cells": [c.to_dict() for c in cells],
        }
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """Delete the shard file (once the final outputs are written it is no longer needed)."""
        self.close()
        self.path.unlink(missing_ok=True)

    def _rewrite(self, lines: list[str]) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, fsync=True) as f:
            f.write(json.dumps({"header": self.header}, separators=(",", ":")) + "\n")
            for line in lines:
                f.write(line + "\n")
        _fsync_dir(self.path.parent)

    def __enter__(self) -> CellShards:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recorded_tiles(out_dir: str | Path) -> dict[int, tuple[str, str | None]]:
    """Tile states written in a job's shard file (`wsidesk store rebuild` restores checkpoints from it):
    done tiles and failed ones with their reasons. Torn or unreadable lines are left out."""
    path = Path(out_dir) / SHARDS_FILENAME
    states: dict[int, tuple[str, str | None]] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return states
    for line in lines[1:]:
        record = _parse(line)
        if record is None or "tiles" not in record:
            continue
        try:
            batch: dict[int, tuple[str, str | None]] = {int(i): ("done", None) for i in record["tiles"]}
            batch.update({int(k): ("failed", str(v)) for k, v in record.get("failed", {}).items()})
        except (TypeError, ValueError, AttributeError):
            continue
        states.update(batch)
    return states


def _parse(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
