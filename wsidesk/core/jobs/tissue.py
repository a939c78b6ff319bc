"""The `tissue` job: tissue mask and tile plan of one slide (tiles.json + tissue.png)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wsidesk.core.errors import JobError
from wsidesk.core.events import EventName, TilesPlannedPayload
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.slide.reader import SlideReader, open_slide, require_mpp
from wsidesk.core.tiling.grid import TilePlan, plan_tiles, render_tissue_png
from wsidesk.core.tiling.tissue import TissueMask, detect_tissue, mask_thumbnail_size

logger = logging.getLogger(__name__)

DEFAULT_TILE_SIZE = 512
DEFAULT_PADDING = 80
DEFAULT_TARGET_MPP = 0.5
DEFAULT_MIN_TISSUE = 0.0


def compute_plan(
    image_path: str | Path,
    params: Mapping[str, Any],
    *,
    check_cancelled: Callable[[], None] | None = None,
) -> tuple[TilePlan, np.ndarray, TissueMask]:
    """Open a slide, detect tissue on its thumbnail and plan its tiles; the slide is always closed."""
    reader = open_slide(image_path, mpp=param(params, "mpp", None))
    try:
        return plan_from_reader(reader, params, check_cancelled=check_cancelled)
    finally:
        reader.close()


def plan_from_reader(
    reader: SlideReader,
    params: Mapping[str, Any],
    *,
    check_cancelled: Callable[[], None] | None = None,
) -> tuple[TilePlan, np.ndarray, TissueMask]:
    """`compute_plan` on an open reader (segment jobs already hold one)."""
    check = check_cancelled or (lambda: None)
    mpp = param(params, "mpp", None)
    slide_mpp = require_mpp(reader, mpp)  # fail before the thumbnail is decoded
    thumbnail = reader.thumbnail(mask_thumbnail_size(reader.dimensions, slide_mpp))
    check()
    mask = TissueMask.for_slide(detect_tissue(thumbnail), reader.dimensions)
    check()
    plan = plan_tiles(
        reader,
        tile_size=int(param(params, "tile_size", DEFAULT_TILE_SIZE)),
        padding=int(param(params, "padding", DEFAULT_PADDING)),
        target_mpp=float(param(params, "target_mpp", DEFAULT_TARGET_MPP)),
        min_tissue=float(param(params, "min_tissue", DEFAULT_MIN_TISSUE)),
        mpp=mpp,
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
        plan, thumbnail, mask = compute_plan(ctx.image, ctx.params, check_cancelled=ctx.check_cancelled)
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


def param(params: Mapping[str, Any], name: str, default: Any) -> Any:
    """A job param, or `default` when it is unset or null."""
    value = params.get(name)
    return default if value is None else value
