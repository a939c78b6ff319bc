"""The `segment` job: cells of one slide with an InstanSeg model (tiles.json, cells.geojson, cells.csv).

Resumable: every finished batch is appended to `cells.parts.jsonl` (fsynced) and then recorded in the
job's tile checkpoints, so a rerun after a kill or a cancel only segments the tiles that are missing.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsidesk.core.errors import JobCancelled, JobError
from wsidesk.core.events import EventName, TilesPlannedPayload
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.jobs.params import JobType, param
from wsidesk.core.jobs.tissue import MAX_TILE_SIZE, TilingParams, job_regions, plan_from_reader, target_mpp_param
from wsidesk.core.paths import resolve_path
from wsidesk.core.segment.backends import BACKENDS
from wsidesk.core.segment.defaults import recommended_settings
from wsidesk.core.segment.engine import PRECISIONS
from wsidesk.core.segment.models import DEFAULT_MODEL, KNOWN_MODELS, TEST_MODEL
from wsidesk.core.slide.protocol import looks_grayscale
from wsidesk.core.slide.reader import SlideReader, open_slide, require_mpp
from wsidesk.core.tiling.grid import TilePlan, write_plan_json

if TYPE_CHECKING:
    import numpy as np

    from wsidesk.core.annotations.regions import Regions
    from wsidesk.core.segment.cells import Cell
    from wsidesk.core.segment.engine import BatchResult
    from wsidesk.core.tiling.tissue import TissueMask

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True, slots=True)
class SegmentParams(TilingParams):
    """The tiling params (planned at the model's resolution unless set), the model and how it runs."""

    # None: recommended_settings(device, backend) decides when the job runs (wsidesk/core/segment/defaults.py);
    # the job builds its own TilingParams from the decided values, so the narrower base type never sees None.
    tile_size: int | None = param(  # type: ignore[assignment]
        None,
        help="tile edge at `target_mpp`",
        unit="px",
        minimum=0,
        exclusive_minimum=True,
        maximum=MAX_TILE_SIZE,
        default_text="by device and backend",
        example=512,
    )
    padding: int | None = param(  # type: ignore[assignment]
        None,
        help="context added on each side of a tile",
        unit="px",
        minimum=0,
        default_text="by device and backend",
        example=80,
    )
    target_mpp: float | None = target_mpp_param(None, default_text="the model's")
    model: str = param(
        DEFAULT_MODEL,
        help="pretrained InstanSeg model name, or a path to instanseg.pt",
        path=True,
        names=(*KNOWN_MODELS, TEST_MODEL),
    )
    batch_size: int | None = param(
        None,
        help="tiles per model call",
        minimum=0,
        exclusive_minimum=True,
        maximum=4096,
        default_text="by device and backend (16 on a GPU)",
        example=16,
    )
    device: str = param("auto", help="where the model runs (auto: cuda, then mps, then cpu)", choices=DEVICES)
    precision: str = param(
        "auto",
        help="model precision (auto: fp32 on CPU; on CUDA half precision if ≥ 99% of cells match fp32)",
        choices=PRECISIONS,
    )
    backend: str = param(
        "auto",
        help="what runs the model (auto: torch on CUDA/MPS, OpenVINO on a CPU when installed)",
        choices=BACKENDS,
    )
    min_cell_area: float = param(0.0, help="cells smaller than this are left out of the results", unit="µm²", minimum=0)


def model_dir(ctx: JobContext) -> Path:
    """Where named models are installed: $WSIDESK_MODEL_DIR, else the run's <data>/models."""
    from wsidesk.core.segment.models import models_root
    from wsidesk.core.store.paths import default_data_dir

    return models_root(ctx.models_dir or default_data_dir() / "models")


def openvino_cache(models: Path) -> Path:
    """Where OpenVINO's converted and compiled forms of the models installed in `models` are kept."""
    return models / ".openvino"


def run_segment_job(ctx: JobContext) -> dict[str, str]:  # noqa: PLR0915 - one linear recipe
    """Job function for type `segment`; see the module docstring."""
    from wsidesk.core.annotations.regions import RegionFilter, region_summaries, write_region_outputs
    from wsidesk.core.segment.engine import segment_slide
    from wsidesk.core.segment.merge import CellMerger
    from wsidesk.core.segment.models import ModelStore, cached_model
    from wsidesk.core.segment.shards import CellShards

    job_id = ctx.job.job_id
    if ctx.image is None:
        msg = f"job {job_id} (segment) needs an image: add 'image: <slide path>' to the job"
        raise JobError(msg)
    params = SegmentParams.from_mapping(ctx.params, where=f"job {job_id} (segment)")
    ctx.check_cancelled()

    # Cached per process: a Dask worker (or the app) keeps the model loaded between slides.
    spec = SegmentParams.spec("model")
    # A model file is named relative to the workflow's folder, like the image.
    model_ref = str(resolve_path(params.model, ctx.workflow.base_dir)) if spec.is_file(params.model) else params.model
    model = cached_model(ModelStore(model_dir(ctx)).resolve(model_ref), device=params.device)
    target_mpp = params.target_mpp if params.target_mpp is not None else model.pixel_size
    recommended = recommended_settings(model.device, params.backend)
    tile_size = params.tile_size if params.tile_size is not None else recommended.tile_size
    padding = params.padding if params.padding is not None else recommended.padding
    batch_size = params.batch_size if params.batch_size is not None else recommended.batch_size
    slide_mpp_override = params.mpp
    out_dir = Path(ctx.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    reader = open_slide(ctx.image, mpp=slide_mpp_override)
    try:
        if reader.mpp is None and slide_mpp_override is None and params.target_mpp is not None:
            # No pixel size on the slide, but the user named the resolution: take the slide as being at it.
            logger.warning(
                "%s does not record its µm/px: treating it as %.4g µm/px (target_mpp)", ctx.image, target_mpp
            )
            slide_mpp_override = target_mpp
            reader.close()
            reader = open_slide(ctx.image, mpp=slide_mpp_override)
        require_mpp(reader)  # a clear error before any work
        regions = job_regions(ctx, params.roi, reader.dimensions)
        plan_params = TilingParams(
            tile_size=tile_size,
            padding=padding,
            target_mpp=target_mpp,
            min_tissue=params.min_tissue,
            mpp=slide_mpp_override,
        )
        plan = _plan_from_inputs(ctx, plan_params, require_mpp(reader), regions)
        if plan is not None:
            thumbnail, mask = _tissue_thumbnail(reader)
        else:
            try:
                plan, thumbnail, mask = plan_from_reader(
                    reader, plan_params, check_cancelled=ctx.check_cancelled, regions=regions
                )
            except ValueError as exc:
                msg = f"job {job_id} (segment) on {ctx.image}: {exc}"
                raise JobError(msg) from exc
            counts = {"total": plan.total, "tissue": plan.tissue, "skipped": plan.skipped}
            ctx.emit(EventName.TILES_PLANNED, counts, TilesPlannedPayload(plan, mask))  # as the tissue job does
        from wsidesk.core.segment.normalise import SlideNormaliser

        if looks_grayscale(thumbnail):
            logger.warning(
                "job %s: %s has no colour (grayscale); %s expects stained RGB brightfield slides and may find no cells",
                job_id,
                ctx.image,
                params.model,
            )
        normaliser = SlideNormaliser.from_thumbnail(thumbnail, mask)
    finally:
        reader.close()
    logger.info(
        "job %s: %d tissue tiles of %d at %.3f µm/px; model %s on %s; normaliser %s",
        job_id,
        plan.tissue,
        plan.total,
        target_mpp,
        model.name,
        model.device,
        normaliser,
    )

    # Resume: tiles the store calls finished AND whose cells are in the shard file are not run again.
    header = _shard_header(plan, model_name=str(model.path))
    shards = CellShards(out_dir, header=header | ({"regions": plan.region_digest} if regions is not None else {}))
    stored = ctx.checkpoints.load()
    finished = {i for i, (state, _) in stored.items() if state in ("done", "failed")}
    previous = shards.load(finished)
    merger: CellMerger | RegionFilter = CellMerger() if regions is None else RegionFilter(CellMerger(), regions)
    merger.restore(previous.cells)
    done: set[int] = set(previous.done)
    failed: dict[int, str] = dict(previous.failed)
    if previous.batches:
        logger.info(
            "job %s resumes: %d tiles done, %d failed, %d cells from the previous run",
            job_id,
            len(done),
            len(failed),
            len(previous.cells),
        )
    emitted = {"batches": 0}

    def on_batch(result: BatchResult) -> None:
        shards.append(result.tile_indices, result.failed, result.cells)  # durable before the store says so
        ctx.checkpoints.save(
            [(i, "done", None) for i in result.tile_indices]
            + [(i, "failed", reason) for i, reason in result.failed.items()]
        )
        done.update(result.tile_indices)
        failed.update(result.failed)
        emitted["batches"] += 1
        ctx.emit(
            EventName.TILE_BATCH_DONE,
            {
                "done": result.done,
                "total": result.total,
                "cells": result.cells_total,
                "failed": len(failed),
                "batch_cells": len(result.cells),
            },
            result,
        )

    def write_outputs(*, partial: bool) -> dict[str, str]:
        cells = merger.cells()
        if params.min_cell_area > 0:
            cells = [c for c in cells if c.measurements.get("area_um2", 0.0) >= params.min_cell_area]
        outputs = _write_outputs(out_dir, plan, cells, done, failed, partial=partial)
        if regions is not None:
            summaries = region_summaries(cells, regions, mpp=plan.slide_mpp)
            outputs.update(write_region_outputs(out_dir, regions, summaries))
        return outputs

    mpp_for_reads = slide_mpp_override
    try:
        report = segment_slide(
            lambda: open_slide(ctx.image, mpp=mpp_for_reads),  # type: ignore[arg-type]
            plan,
            model,
            normaliser,
            batch_size=batch_size,
            skip=previous.finished,
            on_batch=on_batch,
            check_cancelled=ctx.check_cancelled,
            precision=params.precision,
            merger=merger,
            cells_before=len(previous.cells),
            backend=params.backend,
            cache_dir=openvino_cache(model_dir(ctx)),
        )
    except JobCancelled:
        write_outputs(partial=True)
        logger.info("job %s cancelled: partial results written (%d tiles done)", job_id, len(done))
        raise
    finally:
        shards.close()

    if emitted["batches"] == 0:  # nothing left to run (resumed or no tissue): still report where it stands
        n_cells = len(merger.cells())
        ctx.emit(
            EventName.TILE_BATCH_DONE,
            {
                "done": len(done) + len(failed),
                "total": plan.tissue,
                "cells": n_cells,
                "failed": len(failed),
                "batch_cells": 0,
            },
            None,
        )
    outputs = write_outputs(partial=False)
    outputs["engine"] = str(write_engine_json(out_dir / "engine.json", report.engine()))
    logger.info("job %s: %s", job_id, report.summary())
    if failed:
        logger.warning(
            "job %s: %d of %d tissue tiles failed, e.g. tile %d: %s",
            job_id,
            len(failed),
            plan.tissue,
            *next(iter(sorted(failed.items()))),
        )
    if plan.tissue and not done and len(failed) >= plan.tissue:
        index, reason = next(iter(sorted(failed.items())))
        msg = (
            f"job {job_id} (segment) on {ctx.image}: all {plan.tissue} tissue tiles failed "
            f"(tile {index}: {reason}); see {outputs['tiles']}"
        )
        raise JobError(msg)
    return outputs


def write_engine_json(path: Path, facts: Mapping[str, Any]) -> Path:
    """engine.json: the backend, device and precision that ran, the auto-precision agreement, timings."""
    from wsidesk.core.fileio import atomic_write

    with atomic_write(path) as f:
        json.dump(dict(facts), f, indent=1)
    return path


def _plan_from_inputs(
    ctx: JobContext, params: TilingParams, slide_mpp: float, regions: Regions | None
) -> TilePlan | None:
    """A tissue job's plan from the dependencies, when it was made for the same grid, slide and regions."""
    for dep, outputs in ctx.inputs.items():
        path = outputs.get("tiles")
        if not path:
            continue
        try:
            plan = TilePlan.read_json(path)
        except (OSError, ValueError) as exc:
            logger.warning("cannot use the tile plan of job %s (%s): planning again", dep, exc)
            continue
        same = (
            params.target_mpp is not None
            and plan.tile_size == params.tile_size
            and plan.padding == params.padding
            and math.isclose(plan.target_mpp, params.target_mpp, rel_tol=1e-6)
            and math.isclose(plan.slide_mpp, slide_mpp, rel_tol=1e-6)
            and math.isclose(plan.min_tissue, params.min_tissue, abs_tol=1e-9)
            and Path(plan.slide_path).resolve() == Path(str(ctx.image)).resolve()
            and plan.region_digest == ("" if regions is None else regions.digest)
        )
        if same:
            logger.info("using the tile plan of job %s (%s)", dep, path)
            return plan
        logger.info("tile plan of job %s was made for another grid or slide: planning again", dep)
    return None


def _tissue_thumbnail(reader: SlideReader) -> tuple[np.ndarray, TissueMask]:
    """The same thumbnail and tissue mask the tissue job computes (for the slide normaliser)."""
    from wsidesk.core.tiling.tissue import TissueMask, detect_tissue, mask_thumbnail_size

    thumbnail = reader.thumbnail(mask_thumbnail_size(reader.dimensions, require_mpp(reader)))
    return thumbnail, TissueMask.for_slide(detect_tissue(thumbnail), reader.dimensions)


def _shard_header(plan: TilePlan, *, model_name: str) -> dict[str, Any]:
    return {
        "slide": plan.slide_path,
        "tile_size": plan.tile_size,
        "padding": plan.padding,
        "downsample": round(plan.downsample, 9),
        "tiles": plan.total,
        "model": model_name,
    }


def _write_outputs(
    out_dir: Path,
    plan: TilePlan,
    cells: list[Cell],
    done: set[int],
    failed: Mapping[int, str],
    *,
    partial: bool,
) -> dict[str, str]:
    from wsidesk.core.cells.export import export_csv
    from wsidesk.core.cells.store import table_from_cells, write_cell_store
    from wsidesk.core.export.geojson import write_geojson

    tiles_path = write_tiles_json(out_dir / "tiles.json", plan, done, failed, partial=partial)
    table = table_from_cells(cells, partial=partial)  # with a region column for jobs run with `roi`
    geojson = write_geojson(cells, out_dir / "cells.geojson", partial=partial)
    csv = export_csv(table, out_dir / "cells.csv")
    store = write_cell_store(table, out_dir, partial=partial)  # after the GeoJSON: it records it
    return {"tiles": str(tiles_path), "cells": str(geojson), "cells_csv": str(csv), "cells_store": str(store)}


def write_tiles_json(
    path: Path, plan: TilePlan, done: set[int], failed: Mapping[int, str], *, partial: bool = False
) -> Path:
    """tiles.json with each tile's final state (done / failed with its reason / skipped / pending)."""
    tiles = []
    for t in plan.tiles:
        if t.index in failed:
            state = "failed"
        elif t.index in done:
            state = "done"
        elif t.state == "skipped":
            state = "skipped"
        else:
            state = "pending"
        tiles.append(replace(t, state=state))
    doc = replace(plan, tiles=tuple(tiles)).to_json()
    reasons = {int(k): str(v) for k, v in failed.items()}
    for entry in doc["tiles"]:
        if entry["index"] in reasons:
            entry["reason"] = reasons[entry["index"]]
    doc["done"] = sum(1 for t in tiles if t.state == "done")
    doc["failed"] = sum(1 for t in tiles if t.state == "failed")
    doc["partial"] = partial
    return write_plan_json(doc, path)


SEGMENT = JobType(
    name="segment",
    summary="smart-tiled InstanSeg cell segmentation of one slide (tiles.json, cells.geojson, cells.csv)",
    params=SegmentParams,
    run=run_segment_job,
    takes_image=True,
)
