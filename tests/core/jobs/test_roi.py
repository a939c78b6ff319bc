"""Jobs limited to regions (`roi`): no tile outside them, no cell whose centroid is outside, per-region counts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from wsidesk.core.annotations import Annotation, AnnotationStore, write_annotations
from wsidesk.core.errors import JobError
from wsidesk.core.export.geojson import read_geojson
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.jobs.segment import run_segment_job
from wsidesk.core.jobs.tissue import run_tissue_job
from wsidesk.core.slide.demo import write_demo_slide
from wsidesk.core.tiling.grid import TilePlan
from wsidesk.core.workflow.model import Branch, Job, Workflow

WIDTH, HEIGHT = 1536, 1024
SEGMENT = {
    "model": "wsidesk_test_nuclei",
    "tile_size": 256,
    "padding": 32,
    "batch_size": 4,
    "device": "cpu",
    "backend": "torch",
}
# Two regions: a polygon with a hole on the left, a triangle on the right.
TUMOUR = shapely.Polygon(
    [(100, 100), (480, 100), (480, 480), (100, 480)], holes=[[(220, 220), (360, 220), (360, 360), (220, 360)]]
)
EDGE = shapely.Polygon([(1100, 600), (1450, 600), (1450, 950)])
HOLE = shapely.box(220, 220, 360, 360)


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("roi") / "s.svs"
    write_demo_slide(path, width=WIDTH, height=HEIGHT, mpp=0.5, seed=4)
    return path


def context(data: Path, slide: Path, job_type: str, params: dict, *, job_id: str = "job") -> JobContext:
    job = Job(job_id, job_type, str(slide), params=params)
    workflow = Workflow(name="roi", branches=(Branch("b", (job,)),), base_dir=data)
    out = data / "profiles" / "default" / "runs" / "r1" / job_id
    out.mkdir(parents=True, exist_ok=True)
    return JobContext(
        run_id="r1", profile="default", workflow=workflow, branch="b", job=job, params=params, image=slide, out_dir=out
    )


def regions_file(folder: Path) -> Path:
    anns = [Annotation("Tumour", TUMOUR, color=(200, 0, 0)), Annotation("Edge", EDGE)]
    return write_annotations(anns, folder / "regions.geojson")


def test_tissue_plan_has_no_tile_outside_the_regions(tmp_path: Path, slide: Path) -> None:
    whole = TilePlan.read_json(run_tissue_job(context(tmp_path / "a", slide, "tissue", {"tile_size": 256}))["tiles"])
    roi = str(regions_file(tmp_path))
    outputs = run_tissue_job(context(tmp_path / "b", slide, "tissue", {"tile_size": 256, "roi": roi}))
    plan = TilePlan.read_json(outputs["tiles"])
    union = shapely.union(TUMOUR, EDGE)
    kept = plan.tissue_tiles
    assert 0 < len(kept) < whole.tissue
    for tile in kept:
        core = shapely.box(tile.x, tile.y, tile.x + tile.w, tile.y + tile.h)
        assert core.intersection(union).area > 0, f"tile {tile.index} lies outside the regions"
    assert plan.regions == ("Tumour", "Edge") and plan.region_digest
    summary = json.loads(Path(outputs["regions"]).read_text())
    areas = {r["name"]: r["area_mm2"] for r in summary["regions"]}
    assert areas["Tumour"] == pytest.approx(TUMOUR.area * 0.25 / 1e6)


def test_roi_names_saved_annotations_of_the_slide_and_unknown_names_are_refused(tmp_path: Path, slide: Path) -> None:
    AnnotationStore(tmp_path / "profiles" / "default").save(slide, [Annotation("Edge", EDGE)])
    plan = TilePlan.read_json(run_tissue_job(context(tmp_path, slide, "tissue", {"roi": "Edge"}))["tiles"])
    assert plan.regions == ("Edge",) and plan.tissue > 0
    with pytest.raises(JobError, match=r"roi names 'Tumour', but s.svs has no saved annotation .*saved: Edge"):
        run_tissue_job(context(tmp_path, slide, "tissue", {"roi": "Edge, Tumour"}))


def test_segment_keeps_only_cells_whose_centroid_is_inside_and_counts_them_per_region(
    tmp_path: Path, slide: Path
) -> None:
    roi = str(regions_file(tmp_path))
    outputs = run_segment_job(context(tmp_path, slide, "segment", {**SEGMENT, "roi": roi}))
    cells = read_geojson(outputs["cells"])
    assert cells, "the demo slide has nuclei in both regions"
    regions = {"Tumour": TUMOUR, "Edge": EDGE}
    for cell in cells:
        assert cell.region in regions
        assert regions[cell.region].contains(shapely.Point(cell.centroid)), f"cell {cell.id} is outside"
    with open(outputs["cells_csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["region"] for r in rows] == [c.region for c in cells]
    summary = {r["name"]: r for r in json.loads(Path(outputs["regions"]).read_text())["regions"]}
    for name in regions:
        count = sum(c.region == name for c in cells)
        assert summary[name]["cells"] == count
        assert summary[name]["density_per_mm2"] == pytest.approx(count / summary[name]["area_mm2"], rel=1e-3)
    assert not [c for c in cells if shapely.Point(c.centroid).within(HOLE)]
    xs = np.array([c.centroid[0] for c in cells])
    assert (xs < 480).any() and (xs > 1100).any()


def test_cli_roi_file_is_taken_from_the_current_folder_and_names_stay_names(tmp_path: Path, monkeypatch) -> None:
    from wsidesk.cli import build_parser

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["run", "sub/wf.yaml", "--roi", "regions.geojson"])
    assert args.roi == str(tmp_path / "regions.geojson")  # not the workflow's folder
    assert build_parser().parse_args(["segment", "s.svs", "--roi", "Tumour,Core 2"]).roi == "Tumour,Core 2"
