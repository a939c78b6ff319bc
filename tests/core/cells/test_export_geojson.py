"""The chunked GeoJSON export writes byte for byte what the per-cell writer writes from the same cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.core.cells.conftest import make_cells
from wsidesk.core.cells.export import export_geojson, hex_to_rgb
from wsidesk.core.cells.store import CellTable, open_cells, table_from_cells
from wsidesk.core.export.geojson import feature_id_prefix, write_geojson
from wsidesk.core.segment.cells import Cell


def writer_output(table: CellTable, path: Path) -> bytes:
    """What export_geojson wrote before it was chunked: write_geojson over the table's cells."""
    colors = {name: hex_to_rgb(color) for name, color in table.class_colors.items()}
    classes = table.classes.tolist() if table.classified else None
    write_geojson(table.iter_cells(), path, partial=table.partial, classes=classes, colors=colors)
    return path.read_bytes().replace(feature_id_prefix(path).encode(), b"<prefix>")


def chunked_output(table: CellTable, path: Path, chunk: int) -> bytes:
    export_geojson(table, path, chunk=chunk)
    return path.read_bytes().replace(feature_id_prefix(path).encode(), b"<prefix>")


def odd_cells() -> list[Cell]:
    """A closed ring, an unnumbered cell, a NaN and an infinite value, a region with quotes and a %."""
    square = np.array([[10.0, 10.0], [20.0, 10.0], [20.0, 20.0], [10.0, 20.0]])
    closed = np.vstack([square, square[:1]]) + 100
    return [
        Cell(closed, (115.0, 115.0), (110, 110, 120, 120), 1, {"area_um2": 25.0, "odd %s name": 1.5}, id=7),
        Cell(square, (15.0, 15.0), (10, 10, 20, 20), 0, {"area_um2": float("nan"), "odd %s name": 2.0}, id=0),
        Cell(square + 40, (55.0, 55.0), (50, 50, 60, 60), 2, {"area_um2": float("inf"), "odd %s name": 0.1}, id=9),
        Cell(square - 5, (10.0, 10.0), (5, 5, 15, 15), 3, {"area_um2": 1 / 3, "odd %s name": -0.0}, id=3),
    ]


@pytest.mark.parametrize("chunk", [7, 16384])
def test_export_of_a_segment_result_matches_the_writer(result, tmp_path, chunk):
    table = open_cells(result)
    assert chunked_output(table, tmp_path / "a.geojson", chunk) == writer_output(table, tmp_path / "b.geojson")


def test_export_with_classes_regions_missing_values_and_closed_rings_matches_the_writer(tmp_path):
    cells = [*odd_cells(), *make_cells(40, seed=3)]
    regions = ["", 'tumour "A" 100%', "stroma ∂", "", *[""] * 40]
    table = table_from_cells(cells, regions=regions, partial=True)
    classes = np.array(["", "Big %d", "Small", "Big %d", *(["Small", ""] * 20)])
    table.set_classes(classes, {"Big %d": "#c83232", "Small": "#3264c8"})
    for chunk in (1, 3, 1000):
        got = chunked_output(table, tmp_path / f"a{chunk}.geojson", chunk)
        assert got == writer_output(table, tmp_path / "b.geojson")
    assert b'"partial": true' in got and b"Big %d" in got and b"stroma" in got


def test_export_of_no_cells_is_an_empty_collection(result, tmp_path):
    empty = open_cells(result).take(np.zeros(0, dtype=np.int64))
    assert chunked_output(empty, tmp_path / "a.geojson", 100) == writer_output(empty, tmp_path / "b.geojson")
