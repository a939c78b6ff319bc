"""The `tissue` job: tiles.json + tissue.png, the tiles_planned event, errors and cancellation."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage import draw

from wsidesk.core.errors import JobCancelled, JobError, SlideError
from wsidesk.core.jobs import tissue as tissue_job
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.slide.demo import DemoTruth
from wsidesk.core.slide.reader import ArrayReader
from wsidesk.core.tiling import TilePlan
from wsidesk.core.workflow.model import Branch, Job, Workflow


@functools.cache
def slide_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((1536, 2048, 3))
    img[:] = (236, 234, 239)
    rr, cc = draw.ellipse(700, 900, 400, 600, shape=img.shape[:2])
    img[rr, cc] = (228, 160, 205)
    for _ in range(200):
        k = rng.integers(len(rr))
        nr, nc = draw.ellipse(rr[k], cc[k], 5, 4, shape=img.shape[:2])
        img[nr, nc] = (95, 62, 150)
    img += rng.normal(0.0, 3.0, img.shape)
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    out.flags.writeable = False  # shared between tests
    return out


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], Any]] = []

    def __call__(self, name: str, fields: Any, payload: Any = None) -> None:
        self.events.append((name, dict(fields), payload))


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[ArrayReader]:
    """Route the job's open_slide to in-memory readers; records them to check they get closed."""
    readers: list[ArrayReader] = []

    def fake_open(path: str | Path, *, mpp: float | None = None) -> ArrayReader:
        slide_mpp = mpp if mpp is not None else (None if "nompp" in str(path) else 0.5)
        reader = ArrayReader(slide_image(), mpp=slide_mpp, path=str(path))
        readers.append(reader)
        return reader

    monkeypatch.setattr(tissue_job, "open_slide", fake_open)
    return readers


def make_ctx(
    tmp_path: Path,
    *,
    image: str | None = "x.svs",
    params: dict[str, Any] | None = None,
    emit: Recorder | None = None,
    cancelled: bool = False,
) -> JobContext:
    job = Job("t1", "tissue", image, params=params or {})
    workflow = Workflow(name="w", branches=(Branch("b", (job,)),))
    return JobContext(
        run_id="r1",
        profile="default",
        workflow=workflow,
        branch="b",
        job=job,
        params=dict(params or {}),
        image=None if image is None else tmp_path / image,
        out_dir=tmp_path / "t1",
        emit=emit or Recorder(),
        is_cancelled=lambda: cancelled,
    )


def test_job_writes_tiles_json_and_tissue_png_and_emits_counts(tmp_path: Path, opened: list) -> None:
    rec = Recorder()
    outputs = tissue_job.run_tissue_job(make_ctx(tmp_path, emit=rec))
    assert set(outputs) == {"tiles", "tissue_png"}
    tiles_path, png_path = Path(outputs["tiles"]), Path(outputs["tissue_png"])
    assert tiles_path == tmp_path / "t1" / "tiles.json"
    assert png_path == tmp_path / "t1" / "tissue.png"

    doc = json.loads(tiles_path.read_text())
    assert doc["tile_size"] == 512 and doc["padding"] == 80 and doc["mpp"] == 0.5
    assert doc["total"] == 4 * 3
    assert 0 < doc["tissue"] < doc["total"]
    assert doc["tissue"] + doc["skipped"] == doc["total"]
    assert sum(t["state"] == "pending" for t in doc["tiles"]) == doc["tissue"]
    assert TilePlan.from_json(doc).total == 12

    [(name, fields, payload)] = rec.events
    assert name == "tiles_planned"
    assert fields == {"total": doc["total"], "tissue": doc["tissue"], "skipped": doc["skipped"]}
    # The in-memory payload lets the GUI draw the grid and mask without reading files back.
    assert payload.plan.to_json() == doc and payload.mask.mask.any()
    with Image.open(png_path) as png:
        # Thumbnail at ~4 µm/px, never below 1024 px on its longer side.
        assert png.format == "PNG" and max(png.size) == 1024
    assert all(r._levels == [] for r in opened)  # the reader was closed


def test_job_params_change_the_plan(tmp_path: Path, opened: list) -> None:
    ctx = make_ctx(tmp_path, params={"tile_size": 256, "padding": 0, "target_mpp": 1.0, "min_tissue": 0.5})
    doc = json.loads(Path(tissue_job.run_tissue_job(ctx)["tiles"]).read_text())
    assert (doc["tile_size"], doc["padding"], doc["target_mpp"], doc["min_tissue"]) == (256, 0, 1.0, 0.5)
    assert doc["downsample"] == 2.0  # level-0 step 512
    assert doc["total"] == 4 * 3
    assert all(t["tissue"] > 0.5 for t in doc["tiles"] if t["state"] == "pending")


def test_missing_mpp_fails_naming_target_mpp_and_closes_the_slide(tmp_path: Path, opened: list) -> None:
    with pytest.raises(SlideError, match="--target-mpp"):
        tissue_job.run_tissue_job(make_ctx(tmp_path, image="nompp.svs"))
    assert opened and all(r._levels == [] for r in opened)
    assert not (tmp_path / "t1" / "tiles.json").exists()


def test_mpp_param_supplies_a_missing_pixel_size(tmp_path: Path, opened: list) -> None:
    ctx = make_ctx(tmp_path, image="nompp.svs", params={"mpp": 0.25})
    doc = json.loads(Path(tissue_job.run_tissue_job(ctx)["tiles"]).read_text())
    assert doc["slide"]["mpp"] == 0.25
    assert doc["downsample"] == 2.0


def test_job_without_image_is_a_job_error(tmp_path: Path, opened: list) -> None:
    with pytest.raises(JobError, match="needs an image"):
        tissue_job.run_tissue_job(make_ctx(tmp_path, image=None))


def test_bad_param_is_a_job_error_naming_the_job(tmp_path: Path, opened: list) -> None:
    with pytest.raises(JobError, match="t1.*min_tissue"):
        tissue_job.run_tissue_job(make_ctx(tmp_path, params={"min_tissue": 2.0}))


def test_cancelled_job_stops_before_writing(tmp_path: Path, opened: list) -> None:
    with pytest.raises(JobCancelled):
        tissue_job.run_tissue_job(make_ctx(tmp_path, cancelled=True))
    assert not (tmp_path / "t1" / "tiles.json").exists()


def test_compute_plan_returns_plan_thumbnail_and_mask(tmp_path: Path, opened: list) -> None:
    plan, thumb, mask = tissue_job.compute_plan(tmp_path / "x.svs", tissue_job.TilingParams(tile_size=512))
    assert thumb.shape[:2] == mask.shape
    assert plan.dimensions == (2048, 1536)
    assert plan.tissue > 0
    assert opened[-1]._levels == []


# --- integration with the synthetic demo slide (written by wsidesk.core.slide.demo) ----------------


def _truth_nuclei(truth: DemoTruth) -> list[dict[str, float]]:
    data = json.loads(truth.truth_path.read_text(encoding="utf-8"))
    return list(data["nuclei"] if isinstance(data, dict) else data)


def test_every_demo_slide_nucleus_lies_in_a_planned_tile(demo_slide: DemoTruth) -> None:
    slide_path = demo_slide.path
    nuclei = _truth_nuclei(demo_slide)
    assert nuclei

    plan, _, _ = tissue_job.compute_plan(slide_path, tissue_job.TilingParams())
    assert plan.skipped > 0 or plan.tissue == plan.total
    cols = max(t.col for t in plan.tiles) + 1
    xs = np.array([t.x for t in plan.tiles[:cols]] + [plan.slide_width])
    ys = np.array([t.y for t in plan.tiles[::cols]] + [plan.slide_height])
    missed = []
    for n in nuclei:
        col = int(np.searchsorted(xs, float(n["x"]), side="right")) - 1
        row = int(np.searchsorted(ys, float(n["y"]), side="right")) - 1
        tile = plan.tiles[row * cols + col]
        if tile.state == "skipped":
            missed.append((n["x"], n["y"], tile.index))
    assert not missed, f"{len(missed)} of {len(nuclei)} nuclei lie in skipped tiles, e.g. {missed[:5]}"
