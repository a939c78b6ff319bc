"""Summaries: count, density per mm² of tissue, mean and median per slide, class and region."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.core.cells.conftest import make_cells
from wsidesk.core.cells.classes import ClassRule, classify
from wsidesk.core.cells.store import open_cells, write_cell_store
from wsidesk.core.cells.summary import region_areas_mm2, summarize, tissue_area_mm2, write_summary_csv
from wsidesk.core.export.geojson import read_geojson


def test_slide_and_class_rows_match_the_source_cells(result: Path, tmp_path: Path) -> None:
    tissue = tissue_area_mm2(result)
    assert tissue == pytest.approx(0.5)  # 4 tiles of 1000² px at 0.5 µm/px, half tissue each
    table = open_cells(result)
    table.set_classes(classify(table, [ClassRule("Big", "#ff0000", "area_um2 > 25")]))
    rows = summarize(table, tissue_mm2=tissue)
    source = read_geojson(result / "cells.geojson")
    slide, big, rest = rows
    assert (slide.scope, slide.count, slide.density_per_mm2) == ("slide", 300, pytest.approx(600.0))
    areas = np.array([c.measurements["area_um2"] for c in source])
    assert slide.mean["area_um2"] == pytest.approx(areas.mean())
    assert slide.median["area_um2"] == pytest.approx(np.median(areas))
    solidity = np.array([c.measurements["solidity"] for c in source if "solidity" in c.measurements])
    assert slide.mean["solidity"] == pytest.approx(solidity.mean())  # missing values left out
    assert (big.scope, big.name, big.count) == ("class", "Big", int((areas > 25).sum()))
    assert big.median["area_um2"] == pytest.approx(np.median(areas[areas > 25]))
    assert big.density_per_mm2 == pytest.approx(big.count / 0.5)
    assert (rest.name, rest.count) == ("", 300 - big.count)

    path = write_summary_csv(rows, tmp_path / "summary.csv")
    with path.open(newline="") as f:
        table_rows = list(csv.DictReader(f))
    assert [r["count"] for r in table_rows] == [str(r.count) for r in rows]
    assert float(table_rows[0]["area_um2_mean"]) == pytest.approx(areas.mean(), abs=1e-6)


def test_regions_get_rows_with_their_density_and_no_tiles_means_no_slide_density(tmp_path: Path) -> None:
    write_cell_store(make_cells(6), tmp_path, regions=["A", "A", "B", "", "B", "B"])
    (tmp_path / "regions.json").write_text(json.dumps({"regions": [{"name": "A", "cells": 2, "area_mm2": 0.5}]}))
    table = open_cells(tmp_path)
    assert tissue_area_mm2(tmp_path) is None
    rows = summarize(table, region_mm2=region_areas_mm2(tmp_path))
    assert [(r.scope, r.name, r.count, r.density_per_mm2) for r in rows] == [
        ("slide", "", 6, None),
        ("region", "A", 2, 4.0),
        ("region", "B", 3, None),
        ("region", "", 1, None),
    ]
