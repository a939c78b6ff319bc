"""GeoJSON (QuPath) and CSV exports, and the `export` job over segment and tissue dependencies."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wsidesk.core.errors import JobCancelled, JobError
from wsidesk.core.export import read_geojson, write_csv, write_geojson
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.jobs.export import run_export_job
from wsidesk.core.segment.cells import Cell
from wsidesk.core.segment.measure import MEASUREMENTS
from wsidesk.core.tiling.grid import Tile, TilePlan
from wsidesk.core.workflow.model import Branch, Job, Workflow


def make_cells(n: int = 5) -> list[Cell]:
    cells = []
    for i in range(n):
        x, y = 100.0 + 40 * i, 50.0 + 7 * i
        t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        poly = np.column_stack((x + 10 * np.cos(t), y + 6 * np.sin(t)))
        m = {name: float(i + k / 10) for k, name in enumerate(MEASUREMENTS)}
        cells.append(Cell(poly, (x, y), (x - 10, y - 6, x + 10, y + 6), i % 2, m, id=i + 1))
    return cells


def test_geojson_is_a_qupath_feature_collection(tmp_path: Path) -> None:
    path = write_geojson(make_cells(), tmp_path / "cells.geojson")
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and "partial" not in doc
    assert len(doc["features"]) == 5
    ids = set()
    for f in doc["features"]:
        assert f["type"] == "Feature"
        ids.add(str(uuid.UUID(f["id"])))
        assert f["geometry"]["type"] == "Polygon"
        (ring,) = f["geometry"]["coordinates"]
        assert len(ring) >= 4 and ring[0] == ring[-1]
        assert all(len(p) == 2 and all(isinstance(v, float | int) for v in p) for p in ring)
        props = f["properties"]
        assert props["objectType"] == "detection"
        assert isinstance(props["measurements"], dict)
        assert list(props["measurements"]) == list(MEASUREMENTS)
        assert all(isinstance(v, str) for v in props["metadata"].values())  # QuPath metadata: strings
    assert len(ids) == 5
    # Stable ids: rewriting the same cells gives the same UUIDs.
    again = json.loads(write_geojson(make_cells(), tmp_path / "cells.geojson").read_text())
    assert [f["id"] for f in again["features"]] == [f["id"] for f in doc["features"]]
    assert not list(tmp_path.glob(".*.tmp"))


def test_geojson_round_trip_and_partial_flag(tmp_path: Path) -> None:
    cells = make_cells()
    cells[0] = Cell(cells[0].polygon, cells[0].centroid, cells[0].bbox, 0, {"area_um2": float("nan")}, id=1)
    path = write_geojson(cells, tmp_path / "c.geojson", partial=True)
    assert json.loads(path.read_text())["partial"] is True
    back = read_geojson(path)
    assert [c.id for c in back] == [1, 2, 3, 4, 5]
    assert [c.tile for c in back] == [c.tile for c in cells]
    for a, b in zip(cells, back, strict=True):
        assert np.allclose(a.polygon, b.polygon, atol=0.006)
        assert b.centroid == pytest.approx(a.centroid, abs=1e-3)
    assert dict(back[0].measurements) == {}  # NaN is left out, never written as NaN/null
    assert back[1].measurements == pytest.approx(dict(cells[1].measurements))


def test_read_geojson_accepts_plain_qupath_features(tmp_path: Path) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]},
                "properties": {"objectType": "detection", "measurements": [{"name": "a", "value": 2.0}]},
            },
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}, "properties": {}},
        ],
    }
    path = tmp_path / "q.geojson"
    path.write_text(json.dumps(doc))
    (cell,) = read_geojson(path)
    assert cell.centroid == pytest.approx((2.0, 2.0)) and cell.measurements == {"a": 2.0} and cell.id == 1
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read cells"):
        read_geojson(path)


def test_csv_has_fixed_header_and_one_row_per_cell(tmp_path: Path) -> None:
    cells = make_cells(3)
    path = write_csv(cells, tmp_path / "cells.csv")
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["id", "x", "y", *MEASUREMENTS]
    assert rows[0][3] == "area_um2"
    assert len(rows) == 4
    assert rows[2][:3] == ["2", "140.0", "57.0"]
    assert float(rows[2][3]) == pytest.approx(1.0)


# --- export job ------------------------------------------------------------------------------------------


def make_ctx(
    tmp_path: Path, inputs: dict[str, dict[str, str]], *, params: dict[str, Any] | None = None, cancelled: bool = False
) -> JobContext:
    job = Job("exp", "export", None, depends_on=tuple(inputs), params=params or {})
    workflow = Workflow(name="w", branches=(Branch("b", (job,)),))
    return JobContext(
        run_id="r1",
        profile="default",
        workflow=workflow,
        branch="b",
        job=job,
        params=dict(params or {}),
        image=None,
        out_dir=tmp_path / "exp",
        inputs=inputs,
        is_cancelled=lambda: cancelled,
    )


def tissue_outputs(tmp_path: Path) -> dict[str, str]:
    tiles = (Tile(0, 0, 0, 0, 0, 512, 512, 0.8), Tile(1, 0, 1, 512, 0, 100, 512, 0.0, "skipped"))
    plan = TilePlan("s.svs", 612, 512, 0.5, 0.5, 512, 80, 1.0, tiles)
    (tmp_path / "t1").mkdir()
    path = plan.write_json(tmp_path / "t1" / "tiles.json")
    return {"tiles": str(path), "tissue_png": str(tmp_path / "t1" / "tissue.png")}


def segment_outputs(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "s1").mkdir()
    return {"cells": str(write_geojson(make_cells(), tmp_path / "s1" / "cells.geojson"))}


@pytest.mark.parametrize("fmt", ["geojson", "csv"])
def test_export_job_exports_segment_and_tissue_dependencies(tmp_path: Path, fmt: str) -> None:
    inputs = {"s1": segment_outputs(tmp_path), "t1": tissue_outputs(tmp_path)}
    out = run_export_job(make_ctx(tmp_path, inputs, params={"format": fmt}))
    assert out == {"s1": str(tmp_path / "exp" / f"s1.{fmt}"), "t1": str(tmp_path / "exp" / f"t1.{fmt}")}
    if fmt == "geojson":
        cells = read_geojson(out["s1"])
        assert [c.id for c in cells] == [1, 2, 3, 4, 5]
        tiles = json.loads(Path(out["t1"]).read_text())["features"]
        assert [f["properties"]["objectType"] for f in tiles] == ["annotation", "annotation"]
        assert [f["properties"]["state"] for f in tiles] == ["pending", "skipped"]
        ring = tiles[1]["geometry"]["coordinates"][0]
        assert ring == [[512, 0], [612, 0], [612, 512], [512, 512], [512, 0]]
    else:
        rows = list(csv.reader(open(out["s1"])))
        assert rows[0][:4] == ["id", "x", "y", "area_um2"] and len(rows) == 6
        tiles = list(csv.DictReader(open(out["t1"])))
        assert [(t["index"], t["state"], t["w"]) for t in tiles] == [
            ("0", "pending", "512"),
            ("1", "skipped", "100"),
        ]


def test_export_job_defaults_to_geojson_and_keeps_partial(tmp_path: Path) -> None:
    (tmp_path / "s1").mkdir()
    src = write_geojson(make_cells(2), tmp_path / "s1" / "cells.geojson", partial=True)
    out = run_export_job(make_ctx(tmp_path, {"s1": {"cells": str(src)}}))
    assert json.loads(Path(out["s1"]).read_text())["partial"] is True


def test_export_job_errors_name_the_dependency(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="dependency other has nothing to export"):
        run_export_job(make_ctx(tmp_path, {"other": {"report": "x.txt"}}))
    with pytest.raises(JobError, match="param 'format' must be one of geojson, csv, got 'xml'"):
        run_export_job(make_ctx(tmp_path, {"s1": {"cells": "x"}}, params={"format": "xml"}))
    with pytest.raises(JobError, match="s1"):
        run_export_job(make_ctx(tmp_path, {"s1": {"cells": str(tmp_path / "missing.geojson")}}))
    with pytest.raises(JobError, match="nothing to export"):
        run_export_job(make_ctx(tmp_path, {}))
    with pytest.raises(JobCancelled):
        run_export_job(make_ctx(tmp_path, {"t1": tissue_outputs(tmp_path)}, cancelled=True))


def test_exported_csv_carries_the_segment_jobs_numbers_exactly(tmp_path: Path) -> None:
    # Centroids whose third decimal is 5: rounded to 3 and then to 2 decimals they used to move.
    cells = []
    for i, (x, y) in enumerate([(2247.455324, 942.4551), (147.87482, 139.87492), (1.234567891, 7.654321987)]):
        t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        poly = np.column_stack((x + 10 * np.cos(t), y + 6 * np.sin(t)))
        measurements = {name: (i + 1) / 3 + k / 7 for k, name in enumerate(MEASUREMENTS)}
        cells.append(Cell(poly, (x, y), (x - 10, y - 6, x + 10, y + 6), 0, measurements, id=i + 1))
    (tmp_path / "s1").mkdir()
    source = {
        "cells": str(write_geojson(cells, tmp_path / "s1" / "cells.geojson")),
        "cells_csv": str(write_csv(cells, tmp_path / "s1" / "cells.csv")),
    }
    out = run_export_job(make_ctx(tmp_path, {"s1": source}, params={"format": "csv"}))
    assert Path(out["s1"]).read_text() == Path(source["cells_csv"]).read_text()
