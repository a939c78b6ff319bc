"""Exports made from a CellTable with the writers that made cells.geojson and cells.csv: the same numbers.

Classes go into GeoJSON as QuPath's `classification: {"name", "color": [r, g, b]}` and into CSV as a
`class` column (only when some cell is classified, so an unclassified export equals the source file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wsidesk.core.cells.expression import compile_filter
from wsidesk.core.segment.measure import MEASUREMENTS

if TYPE_CHECKING:
    from wsidesk.core.cells.store import CellTable

FORMATS = ("geojson", "csv")


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def select_cells(
    table: CellTable, *, indices: Sequence[int] | np.ndarray | None = None, filter_text: str = ""
) -> CellTable:
    """The cells to export: all, the given indices, and/or those matching a filter expression."""
    if indices is not None:
        table = table.take(np.asarray(indices, dtype=np.int64))
    if filter_text.strip():
        table = table.take(compile_filter(filter_text, table.column_names)(table))
    return table


def export_geojson(table: CellTable, path: str | Path) -> Path:
    """QuPath-importable GeoJSON of the table's cells (with their classes, if any)."""
    from wsidesk.core.export.geojson import write_geojson

    colors = {name: hex_to_rgb(color) for name, color in table.class_colors.items()}
    return write_geojson(
        table.iter_cells(),
        path,
        partial=table.partial,
        classes=table.classes.tolist() if table.classified else None,
        colors=colors,
    )


def export_csv(table: CellTable, path: str | Path) -> Path:
    """cells.csv's table of the table's cells, plus a `class` column when any cell is classified."""
    from wsidesk.core.export.table import write_csv

    columns = [*MEASUREMENTS, *(name for name in table.column_names if name not in MEASUREMENTS)]
    labels = {"class": table.classes.tolist()} if table.classified else None
    return write_csv(table.iter_cells(), path, columns=columns, labels=labels)


def export_cells(table: CellTable, path: str | Path, *, fmt: str) -> Path:
    """GeoJSON or CSV by `fmt` ('geojson' | 'csv')."""
    if fmt == "geojson":
        return export_geojson(table, path)
    if fmt == "csv":
        return export_csv(table, path)
    msg = f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}"
    raise ValueError(msg)


def export_summary_csv(
    table: CellTable,
    path: str | Path,
    *,
    tissue_mm2: float | None,
    region_mm2: Mapping[str, float] | None = None,
) -> Path:
    """Per slide, class and region: count, density per mm² (of tissue; of each region), mean and median."""
    from wsidesk.core.cells.summary import summarize, write_summary_csv

    return write_summary_csv(summarize(table, tissue_mm2=tissue_mm2, region_mm2=region_mm2), path)


__all__ = ["FORMATS", "export_cells", "export_csv", "export_geojson", "export_summary_csv", "select_cells"]
