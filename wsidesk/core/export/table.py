"""Cell measurement tables (CSV): id, centroid x, y (level-0 px), then the measurements in fixed order."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from wsidesk.core.fileio import atomic_write
from wsidesk.core.segment.cells import Cell
from wsidesk.core.segment.measure import MEASUREMENTS


def write_csv(
    cells: Iterable[Cell],
    path: str | Path,
    *,
    columns: Sequence[str] = MEASUREMENTS,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write one row per cell atomically; a missing or non-finite measurement is an empty field.

    Cells of a job run with `roi` get a `region` column after x, y: the annotation holding the centroid.
    `labels` adds text columns after the measurements (e.g. {"class": one name per cell}).
    """
    labels = labels or {}
    cells = list(cells)
    region = ["region"] if any(cell.region for cell in cells) else []
    rows = (
        [
            cell.id,
            _fmt(cell.centroid[0], 2),
            _fmt(cell.centroid[1], 2),
            *([cell.region] if region else []),
            *(_fmt(cell.measurements.get(name), 6) for name in columns),
            *(str(values[i]) for values in labels.values()),
        ]
        for i, cell in enumerate(cells)
    )
    return write_rows(["id", "x", "y", *region, *columns, *labels], rows, path)


def write_rows(header: Sequence[str], rows: Iterable[Sequence[object]], path: str | Path) -> Path:
    """Write a plain table atomically (used for tile plans)."""
    path = Path(path)
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(list(header))
        writer.writerows(rows)
    return path


def _fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return ""
    value = float(value)
    if not math.isfinite(value):
        return ""
    return repr(round(value, decimals))


def number_strings(values: np.ndarray, decimals: int) -> list[str]:
    """`_fmt` over a float column: one list comprehension, '' where a value is not finite."""
    out = [repr(round(v, decimals)) for v in values.tolist()]
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        out[i] = ""
    return out


__all__ = ["number_strings", "write_csv", "write_rows"]
