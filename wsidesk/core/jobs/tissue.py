"""The `tissue` job: tissue mask and tile plan of one slide (tiles.json + tissue.png)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsidesk.core.errors import JobError
from wsidesk.core.events import EventName, TilesPlannedPayload
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.jobs.params import JobParams, JobType, param
from wsidesk.core.slide.reader import SlideReader, open_slide, require_mpp
from wsidesk.core.tiling.grid import TilePlan, plan_tiles, render_tissue_png
from wsidesk.core.tiling.tissue import TissueMask, detect_tissue, mask_thumbnail_size

logger = logging.getLogger(__name__)

MAX_TILE_SIZE = 16384  # px; a 16384² RGB tile is already 0.8 GB as float32


def target_mpp_param(default: float | None, *, default_text: str = "") -> Any:
    """The `target_mpp` field: one declaration, whose default each job type chooses."""
    return param(
        default,
        help="resolution tiles are read at",
        unit="µm per pixel",
        minimum=0,
        exclusive_minimum=True,
        default_text=default_text,
        example=0.5,
    )


@dataclass(frozen=True, slots=True)
class TilingParams(JobParams):
    """How a slide is cut into tiles; shared by `tissue` and `segment`."""

    tile_size: int = param(
        512, help="tile edge at `target_mpp`", unit="px", minimum=0, exclusive_minimum=True, maximum=MAX_TILE_SIZE
    )
    padding: int = param(80, help="context added on each side of a tile", unit="px", minimum=0)
    target_mpp: float | None = target_mpp_param(0.5)
    min_tissue: float = param(0.0, help="fraction of a tile that must be tissue", minimum=0, maximum=1)
    mpp: float | None = param(
        None,
        help="overrides the slide's own pixel size",
        unit="µm per pixel",
        minimum=0,
        exclusive_minimum=True,
        default_text="the slide's",
        example=0.5,
    )


def compute_plan(
    image_path: str | Path,
    params: TilingParams,
    *,
    check_cancelled: Callable[[], None] | None = None,
) -> tuple[TilePlan, np.ndarray, TissueMask]:
    """Open a slide, detect tissue on its thumbnail and plan its tiles; the slide is always closed."""
    reader = open_slide(image_path, mpp=params.mpp)
    try:
        return plan_from_reader(reader, params, check_cancelled=check_cancelled)
    finally:
        reader.close()


def plan_from_reader(
    reader: SlideReader,
    params: TilingParams,
    *,
    check_cancelled: Callable[[], None] | None = None,
) -> tuple[TilePlan, np.ndarray, TissueMask]:
    """`compute_plan` on an open reader (segment jobs already hold one)."""
    check = check_cancelled or (lambda: None)
    slide_mpp = require_mpp(reader, params.mpp)  # fail before the thumbnail is decoded
    thumbnail = reader.thumbnail(mask_thumbnail_size(reader.dimensions, slide_mpp))
    check()
    mask = TissueMask.for_slide(detect_tissue(thumbnail), reader.dimensions)
    check()
    assert params.target_mpp is not None  # segment jobs fill in the model's before planning
    plan = plan_tiles(
        reader,
        tile_size=params.tile_size,
        padding=params.padding,
        target_mpp=params.target_mpp,
        min_tissue=params.min_tissue,
        mpp=params.mpp,
        mask=mask,
    )
    return plan, thumbnail, mask


def run_tissue_job(ctx: JobContext) -> dict[str, str]:
    """Job function for type `tissue`: writes tiles.json and tissue.png, emits `tiles_planned`."""
    if ctx.image is None:
        msg = f"job {ctx.job.job_id} (tissue) needs an image: add 'image: <slide path>' to the job"
        raise JobError(msg)
    ctx.check_cancelled()
    try:
        params = TilingParams.from_mapping(ctx.params, where=f"job {ctx.job.job_id} (tissue)")
        plan, thumbnail, mask = compute_plan(ctx.image, params, check_cancelled=ctx.check_cancelled)
    except ValueError as exc:
        msg = f"job {ctx.job.job_id} (tissue) on {ctx.image}: {exc}"
        raise JobError(msg) from exc
    ctx.check_cancelled()
    out_dir = Path(ctx.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tiles_path = plan.write_json(out_dir / "tiles.json")
    png_path = render_tissue_png(thumbnail, mask, plan, out_dir / "tissue.png")
    counts = {"total": plan.total, "tissue": plan.tissue, "skipped": plan.skipped}
    ctx.emit(EventName.TILES_PLANNED, counts, TilesPlannedPayload(plan, mask))
    return {"tiles": str(tiles_path), "tissue_png": str(png_path)}


TISSUE = JobType(
    name="tissue",
    summary="tissue mask and tile plan of one slide (tiles.json, tissue.png)",
    params=TilingParams,
    run=run_tissue_job,
    takes_image=True,
)
