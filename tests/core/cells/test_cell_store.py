"""The cell store: same numbers as cells.geojson / cells.csv, fast columns, and a loud fallback to the GeoJSON."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.core.cells.conftest import make_cells, write_result
from wsidesk.core.cells.export import export_cells, select_cells
from wsidesk.core.cells.store import (
    CellStoreError,
    open_cells,
    result_dir,
    table_from_cells,
    write_cell_store,
)
from wsidesk.core.export.geojson import read_geojson, write_geojson


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


def test_store_holds_the_numbers_of_cells_geojson(result: Path) -> None:
    table = open_cells(result)
    assert table.source == result / "cells.arrow" and table.note == ""
    source = read_geojson(result / "cells.geojson")
    assert len(table) == len(source) == 300
    assert table.ids.tolist() == [c.id for c in source]
    assert table.x.tolist() == [c.centroid[0] for c in source]
    assert table.y.tolist() == [c.centroid[1] for c in source]
    assert table.tile.tolist() == [c.tile for c in source]
    for name in table.column_names:
        expected = np.array([c.measurements.get(name, np.nan) for c in source])
        assert _same(table.columns[name], expected), name
    assert np.isnan(table.columns["solidity"][3])  # missing stays missing
    for i in (0, 150, 299):  # 2 decimals exact at x = 140,000 px
        assert np.array_equal(table.polygon(i), source[i].polygon)
    assert table.poly_xy.dtype == np.float32 and len(table.poly_xy) == table.poly_offsets[-1]
    assert table.bbox.shape == (300, 4)


@pytest.mark.parametrize("fmt", ["geojson", "csv"])
def test_exports_from_the_store_equal_the_segment_outputs(result: Path, tmp_path: Path, fmt: str) -> None:
    out = export_cells(open_cells(result), tmp_path / f"out.{fmt}", fmt=fmt)
    source = result / f"cells.{fmt}"
    if fmt == "csv":
        assert out.read_text() == source.read_text()
        return
    ours, theirs = json.loads(out.read_text()), json.loads(source.read_text())
    assert len(ours["features"]) == len(theirs["features"]) == 300
    for a, b in zip(ours["features"], theirs["features"], strict=True):
        assert a["geometry"] == b["geometry"] and a["properties"] == b["properties"]


def test_take_cells_in_rect_and_subset_export(result: Path, tmp_path: Path) -> None:
    table = open_cells(result)
    picked = table.take([5, 2, 9])
    assert picked.ids.tolist() == [6, 3, 10]
    assert np.array_equal(picked.polygon(1), table.polygon(2))
    mask = table.columns["area_um2"] > 20
    assert picked.take(np.array([True, False, True])).ids.tolist() == [6, 10]
    assert table.take(mask).ids.tolist() == table.ids[mask].tolist()
    x0, y0 = table.bbox[7, :2]
    inside = table.cells_in_rect(x0 - 1, y0 - 1, x0 + 2, y0 + 2)
    assert 7 in inside.tolist() and len(inside) < 10
    subset = select_cells(table, filter_text="area_um2 > 20")
    path = export_cells(subset, tmp_path / "subset.geojson", fmt="geojson")
    back = read_geojson(path)
    assert [c.id for c in back] == table.ids[mask].tolist()


def test_missing_store_falls_back_to_geojson_and_says_so(result: Path, caplog: pytest.LogCaptureFixture) -> None:
    (result / "cells.arrow").unlink()
    with caplog.at_level(logging.WARNING):
        table = open_cells(result)
    assert table.source == result / "cells.geojson"
    assert "no cell store" in table.note and "cells.geojson" in caplog.text
    assert len(table) == 300 and table.ids[-1] == 300


@pytest.mark.parametrize("damage", ["truncate", "garbage", "stale"])
def test_damaged_or_stale_store_falls_back_to_geojson(
    result: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = result / "cells.arrow"
    expected = open_cells(result)
    if damage == "truncate":
        store.write_bytes(store.read_bytes()[: store.stat().st_size // 2])
    elif damage == "garbage":
        store.write_bytes(b"not a store at all")
    else:  # cells.geojson rewritten after the store (e.g. a resumed run killed before the store)
        write_geojson(make_cells(300, seed=1), result / "cells.geojson")
        expected = table_from_cells(make_cells(300, seed=1))
    with caplog.at_level(logging.WARNING):
        table = open_cells(result)
    assert table.source == result / "cells.geojson" and table.note
    assert "cells.geojson" in caplog.text
    assert _same(table.columns["area_um2"], expected.columns["area_um2"])


def test_a_copied_result_still_uses_its_store(result: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(result, tmp_path / "copy", copy_function=shutil.copy)  # new mtimes
    assert open_cells(copy).note == ""


def test_no_cells_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CellStoreError, match="holds no cells"):
        open_cells(tmp_path)
    (tmp_path / "cells.arrow").write_bytes(b"junk")
    with pytest.raises(CellStoreError, match=r"cannot open the cells.*no cells.geojson"):
        open_cells(tmp_path)


def test_run_folder_with_one_segment_job_is_a_result(tmp_path: Path) -> None:
    write_result(tmp_path / "run" / "seg", make_cells(3))
    assert result_dir(tmp_path / "run") == tmp_path / "run" / "seg"
    write_result(tmp_path / "run" / "seg2", make_cells(3))
    with pytest.raises(CellStoreError, match="several segment results"):
        result_dir(tmp_path / "run")


def test_regions_and_empty_tables_round_trip(tmp_path: Path) -> None:
    cells = make_cells(4)
    path = write_cell_store(cells, tmp_path, regions=["A", "B", "", "A"])
    table = open_cells(path.parent)
    assert table.regions is not None and table.regions.tolist() == ["A", "B", "", "A"]
    (tmp_path / "empty").mkdir()
    empty = write_cell_store([], tmp_path / "empty")
    assert len(open_cells(empty.parent)) == 0
    assert len(table_from_cells([])) == 0
