"""Cell measurement tables (CSV): id, centroid x, y (level-0 px), then the measurements in fixed order."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from wsidesk.core.segment.cells import Cell
from wsidesk.core.segment.measure import MEASUREMENTS


def write_csv(cells: Iterable[Cell], path: str | Path, *, columns: Sequence[str] = MEASUREMENTS) -> Path:
    """Write one row per cell atomically; a missing or non-finite measurement is an empty field."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["id", "x", "y", *columns])
            for cell in cells:
                m = cell.measurements
                writer.writerow(
                    [
                        cell.id,
                        _fmt(cell.centroid[0], 2),
                        _fmt(cell.centroid[1], 2),
                        *(_fmt(m.get(name), 6) for name in columns),
                    ]
                )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_rows(header: Sequence[str], rows: Iterable[Sequence[object]], path: str | Path) -> Path:
    """Write a plain table atomically (used for tile plans)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(list(header))
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return ""
    value = float(value)
    if not math.isfinite(value):
        return ""
    return repr(round(value, decimals))


__all__ = ["write_csv", "write_rows"]
