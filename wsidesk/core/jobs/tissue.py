"""The `tissue` job: tissue mask and tile plan of one slide (tiles.json + tissue.png)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsidesk.core.errors import JobError
from wsidesk.core.events import EventName, TilesPlannedPayload
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.jobs.params import JobParams, JobType, param
from wsidesk.core.slide.reader import SlideReader, open_slide, require_mpp
from wsidesk.core.tiling.grid import TilePlan, plan_tiles, render_tissue_png
from wsidesk.core.tiling.tissue import TissueMask, detect_tissue, mask_thumbnail_size

if TYPE_CHECKING:
    from wsidesk.core.annotations.regions import Regions

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
    roi: str | None = param(
        None,
        help="work only inside these regions: names of the slide's saved annotations (comma-separated) or a "
        "QuPath GeoJSON file of annotations; cells are kept when their centroid is inside",
        path=True,
        file_suffixes=(".geojson", ".json"),
        default_text="the whole slide",
        example="Tumor",
    )


def compute_plan(
    image_path: str | Path,
    params: TilingParams,
    *,
    check_cancelled: Callable[[], None] | None = None,
    regions: Regions | None = None,
) -> tuple[TilePlan, np.ndarray, TissueMask]:
    """Open a slide, detect tissue on its thumbnail and plan its tiles; the slide is always closed."""
    reader = open_slide(image_path, mpp=params.mpp)
    try:
        return plan_from_reader(reader, params, check_cancelled=check_cancelled, regions=regions)
    finally:
        reader.close()


def plan_from_reader(
    reader: SlideReader,
    params: TilingParams,
    *,
    check_cancelled: Callable[[], None] | None = None,
    regions: Regions | None = None,
) -> tuple[TilePlan, np.ndarray, TissueMask]:
    """`compute_plan` on an open reader (segment jobs already hold one).

    With `regions` the mask is tissue ∩ regions and no tile lies outside them.
    """
    check = check_cancelled or (lambda: None)
    slide_mpp = require_mpp(reader, params.mpp)  # fail before the thumbnail is decoded
    thumbnail = reader.thumbnail(mask_thumbnail_size(reader.dimensions, slide_mpp))
    check()
    mask = TissueMask.for_slide(detect_tissue(thumbnail), reader.dimensions)
    if regions is not None:
        from wsidesk.core.annotations.regions import restrict_mask

        mask = restrict_mask(mask, regions)
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
    if regions is not None:
        from wsidesk.core.annotations.regions import restrict_plan

        plan = restrict_plan(plan, regions)
    return plan, thumbnail, mask


def job_regions(ctx: JobContext, roi: str | None, slide_size: tuple[int, int]) -> Regions | None:
    """The regions a job's `roi` names (None: the whole slide); JobError saying what is wrong."""
    if roi is None:
        return None
    from wsidesk.core.annotations.model import AnnotationError
    from wsidesk.core.annotations.regions import load_regions

    assert ctx.image is not None
    # Saved annotations live in the profile folder: the run's job folder is <profile>/runs/<run>/<job>.
    profile_dir = Path(ctx.out_dir).parents[2] if len(Path(ctx.out_dir).parents) > 2 else None
    if profile_dir is not None and (profile_dir.name != ctx.profile or profile_dir.parent.name != "profiles"):
        profile_dir = None
    try:
        return load_regions(
            roi, slide=ctx.image, slide_size=slide_size, profile_dir=profile_dir, base_dir=ctx.workflow.base_dir
        )
    except AnnotationError as exc:
        msg = f"job {ctx.job.job_id} ({ctx.job.type}) on {ctx.image}: {exc}"
        raise JobError(msg) from exc


def run_tissue_job(ctx: JobContext) -> dict[str, str]:
    """Job function for type `tissue`: writes tiles.json and tissue.png, emits `tiles_planned`."""
    if ctx.image is None:
        msg = f"job {ctx.job.job_id} (tissue) needs an image: add 'image: <slide path>' to the job"
        raise JobError(msg)
    ctx.check_cancelled()
    params = TilingParams.from_mapping(ctx.params, where=f"job {ctx.job.job_id} (tissue)")
    reader = open_slide(ctx.image, mpp=params.mpp)
    try:
        regions = job_regions(ctx, params.roi, reader.dimensions)
        plan, thumbnail, mask = plan_from_reader(reader, params, check_cancelled=ctx.check_cancelled, regions=regions)
    except ValueError as exc:
        msg = f"job {ctx.job.job_id} (tissue) on {ctx.image}: {exc}"
        raise JobError(msg) from exc
    finally:
        reader.close()
    ctx.check_cancelled()
    out_dir = Path(ctx.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tiles_path = plan.write_json(out_dir / "tiles.json")
    png_path = render_tissue_png(thumbnail, mask, plan, out_dir / "tissue.png")
    counts = {"total": plan.total, "tissue": plan.tissue, "skipped": plan.skipped}
    ctx.emit(EventName.TILES_PLANNED, counts, TilesPlannedPayload(plan, mask))
    outputs = {"tiles": str(tiles_path), "tissue_png": str(png_path)}
    if regions is not None:
        from wsidesk.core.annotations.regions import write_region_outputs

        outputs.update(write_region_outputs(out_dir, regions, _area_summaries(regions, plan.slide_mpp)))
    return outputs


def _area_summaries(regions: Regions, mpp: float) -> list[dict[str, Any]]:
    from wsidesk.core.annotations.regions import region_summaries

    return [{k: v for k, v in s.items() if k in ("name", "area_mm2")} for s in region_summaries([], regions, mpp=mpp)]


TISSUE = JobType(
    name="tissue",
    summary="tissue mask and tile plan of one slide (tiles.json, tissue.png)",
    params=TilingParams,
    run=run_tissue_job,
    takes_image=True,
)
