"""The column-wise CSV export writes byte for byte what the per-cell writer writes from the same cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.core.cells.conftest import make_cells
from tests.core.cells.test_export_geojson import odd_cells
from wsidesk.core.cells.export import export_csv
from wsidesk.core.cells.store import CellTable, open_cells, table_from_cells
from wsidesk.core.export.table import write_csv
from wsidesk.core.segment.measure import MEASUREMENTS


def writer_output(table: CellTable, path: Path) -> bytes:
    """What export_csv wrote before it went column-wise: write_csv over the table's cells."""
    columns = [*MEASUREMENTS, *(name for name in table.column_names if name not in MEASUREMENTS)]
    labels = {"class": table.classes.tolist()} if table.classified else None
    return write_csv(table.iter_cells(), path, columns=columns, labels=labels).read_bytes()


@pytest.mark.parametrize("chunk", [7, 65536])
def test_export_of_a_segment_result_matches_the_writer(result, tmp_path, chunk):
    table = open_cells(result)
    got = export_csv(table, tmp_path / "a.csv", chunk=chunk).read_bytes()
    assert got == writer_output(table, tmp_path / "b.csv")
    assert got == (result / "cells.csv").read_bytes()  # and what the segment job wrote


def test_export_with_classes_regions_and_missing_values_matches_the_writer(tmp_path):
    cells = [*odd_cells(), *make_cells(40, seed=3)]
    regions = ["", 'tumour "A", 100%', "stroma\n∂", "", *[""] * 40]
    table = table_from_cells(cells, regions=regions)
    table.set_classes(np.array(["", "Big, odd", 'Small "s"', "", *(["Small", ""] * 20)]), {"Small": "#3264c8"})
    for chunk in (1, 3, 1000):
        got = export_csv(table, tmp_path / f"a{chunk}.csv", chunk=chunk).read_bytes()
        assert got == writer_output(table, tmp_path / "b.csv")
    header = got.split(b"\n", 1)[0].decode()
    assert header.startswith("id,x,y,region,") and header.endswith(",class") and "odd %s name" in header


def test_export_of_no_cells_is_the_header_alone(result, tmp_path):
    empty = open_cells(result).take(np.zeros(0, dtype=np.int64))
    got = export_csv(empty, tmp_path / "a.csv").read_bytes()
    assert got == writer_output(empty, tmp_path / "b.csv") and got.count(b"\n") == 1
