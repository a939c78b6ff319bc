"""Regions a job works in (`roi`): tile plans limited to tissue ∩ regions, cells kept by centroid.

A job's `roi` is either a GeoJSON file of annotations (ends in .geojson or .json) or the names of the
slide's saved annotations, separated by commas. Annotations sharing a name form one region (the union
of their areas), so five "Tumor" polygons are one Tumor region. A cell belongs to the first region, in
`roi` order, that holds its centroid; cells in no region are dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from wsidesk.core.annotations.geojson import read_annotations, write_annotations
from wsidesk.core.annotations.model import Annotation, AnnotationError, polygonal
from wsidesk.core.annotations.store import AnnotationStore
from wsidesk.core.fileio import atomic_write

if TYPE_CHECKING:
    from wsidesk.core.segment.cells import Cell
    from wsidesk.core.tiling.grid import TilePlan
    from wsidesk.core.tiling.tissue import TissueMask

logger = logging.getLogger(__name__)

ROI_FILE_SUFFIXES = (".geojson", ".json")


def roi_names(roi: str) -> list[str]:
    """The annotation names of a `roi` value that is not a file: comma-separated, blanks ignored."""
    return [name.strip() for name in roi.split(",") if name.strip()]


@dataclass(frozen=True, slots=True, eq=False)
class Regions:
    """Named areas in level-0 px, in the order the job was given them; `annotations` as read."""

    names: tuple[str, ...]
    geometries: tuple[Polygon | MultiPolygon, ...]
    annotations: tuple[Annotation, ...]
    source: str  # the file, or "saved annotations of <slide>"

    def __post_init__(self) -> None:
        if not self.names or len(self.names) != len(self.geometries):
            msg = f"regions need one geometry per name, got {len(self.names)} names for {len(self.geometries)}"
            raise AnnotationError(msg)
        for g in self.geometries:
            shapely.prepare(g)  # many point-in-region and box tests follow

    @classmethod
    def from_annotations(cls, annotations: Sequence[Annotation], *, source: str) -> Regions:
        names: list[str] = []
        for a in annotations:
            if a.name not in names:
                names.append(a.name)
        geometries = tuple(
            polygonal(shapely.union_all([a.geometry for a in annotations if a.name == name])) for name in names
        )
        return cls(tuple(names), geometries, tuple(annotations), source)

    @property
    def union(self) -> Polygon | MultiPolygon:
        return polygonal(shapely.union_all(self.geometries))

    @property
    def digest(self) -> str:
        """Identifies names and shapes: a plan or checkpoint made for other regions is not reused."""
        h = hashlib.sha256()
        for name, geometry in zip(self.names, self.geometries, strict=True):
            h.update(name.encode("utf-8") + b"\0" + shapely.to_wkb(shapely.normalize(geometry)) + b"\0")
        return h.hexdigest()[:16]

    def region_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index into `names` of the region holding each point, -1 for none (first region wins)."""
        out = np.full(len(x), -1, dtype=np.int64)
        for i, geometry in enumerate(self.geometries):
            free = out < 0
            if not free.any():
                break
            inside = shapely.contains_xy(geometry, x[free], y[free])
            idx = np.flatnonzero(free)[inside]
            out[idx] = i
        return out


def load_regions(
    roi: str,
    *,
    slide: str | Path,
    slide_size: tuple[int, int],
    profile_dir: Path | None,
    base_dir: Path | None = None,
) -> Regions:
    """The regions `roi` names for `slide`; AnnotationError saying what is missing or unusable."""
    from wsidesk.core.paths import resolve_path

    if roi.lower().endswith(ROI_FILE_SUFFIXES):
        path = resolve_path(roi, base_dir)
        result = read_annotations(path, slide_size=slide_size)
        for note in result.notes:
            logger.warning("roi %s: %s", path, note)
        return Regions.from_annotations(result.annotations, source=str(path))
    names = roi_names(roi)
    if not names:
        msg = "roi is empty: name saved annotations (comma-separated) or give a .geojson file"
        raise AnnotationError(msg)
    if profile_dir is None:
        msg = (
            f"roi {roi!r} names saved annotations, but this job has no profile folder to look in; give a .geojson file"
        )
        raise AnnotationError(msg)
    saved = AnnotationStore(profile_dir).load(slide)
    known = {a.name for a in saved}
    missing = [n for n in names if n not in known]
    if missing:
        have = ", ".join(sorted(known)) if known else "none"
        msg = (
            f"roi names {', '.join(repr(n) for n in missing)}, but {Path(slide).name} has no saved annotation by "
            f"that name (saved: {have}); draw it in the viewer or give a .geojson file"
        )
        raise AnnotationError(msg)
    chosen: list[Annotation] = []
    for name in names:  # roi order decides which region wins where they overlap
        chosen += [a for a in saved if a.name == name]
    return Regions.from_annotations(chosen, source=f"saved annotations of {slide}")


def restrict_mask(mask: TissueMask, regions: Regions) -> TissueMask:
    """The tissue mask with everything outside the regions removed.

    Every mask pixel a region's outline touches is kept, so a thin region never loses its tiles.
    """
    from PIL import Image, ImageDraw

    from wsidesk.core.tiling.tissue import TissueMask

    h, w = mask.shape
    sx = mask.downsample
    sy = mask.downsample_y if mask.downsample_y is not None else sx
    canvas = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    scale = np.array([1.0 / sx, 1.0 / sy])

    def ring(coords: Any) -> list[tuple[float, float]]:
        return [(float(px), float(py)) for px, py in np.asarray(coords)[:, :2] * scale]

    polygons = [p for g in regions.geometries for p in shapely.get_parts(g)]
    for polygon in polygons:
        draw.polygon(ring(polygon.exterior.coords), fill=1, outline=1)
    for polygon in polygons:
        for hole in polygon.interiors:
            draw.polygon(ring(hole.coords), fill=0, outline=1)
    inside = np.asarray(canvas, dtype=bool)
    return TissueMask(mask.mask & inside, mask.downsample, mask.downsample_y)


def restrict_plan(plan: TilePlan, regions: Regions) -> TilePlan:
    """The plan with every tile whose core does not overlap a region (by area) marked skipped."""
    union = regions.union
    shapely.prepare(union)
    tiles = plan.tiles
    boxes = shapely.box(
        np.array([t.x for t in tiles], dtype=np.float64),
        np.array([t.y for t in tiles], dtype=np.float64),
        np.array([t.x + t.w for t in tiles], dtype=np.float64),
        np.array([t.y + t.h for t in tiles], dtype=np.float64),
    )
    # Intersecting but only touching: the tile shares an edge or a corner with the region, no area.
    overlaps = shapely.intersects(boxes, union) & ~shapely.touches(boxes, union)
    kept = tuple(
        t if overlap or t.state == "skipped" else replace(t, state="skipped")
        for t, overlap in zip(tiles, overlaps.tolist(), strict=True)
    )
    return replace(plan, tiles=kept, regions=regions.names, region_digest=regions.digest)


class RegionFilter:
    """A cell merger that only lets in cells whose centroid lies in a region, labelled with its name."""

    def __init__(self, merger: Any, regions: Regions) -> None:
        self._merger = merger
        self.regions = regions

    def add(self, cells: Sequence[Cell]) -> list[Cell]:
        if not cells:
            return list(self._merger.add([]))
        x = np.array([c.centroid[0] for c in cells], dtype=np.float64)
        y = np.array([c.centroid[1] for c in cells], dtype=np.float64)
        which = self.regions.region_of(x, y)
        names = self.regions.names
        kept = [replace(c, region=names[i]) for c, i in zip(cells, which.tolist(), strict=True) if i >= 0]
        return list(self._merger.add(kept))

    def cells(self) -> list[Cell]:
        return list(self._merger.cells())

    def restore(self, cells: Sequence[Cell]) -> None:
        self._merger.restore(cells)

    def __len__(self) -> int:
        return len(self._merger)


def region_summaries(cells: Sequence[Cell], regions: Regions, *, mpp: float) -> list[dict[str, Any]]:
    """Per region: name, cell count, area in mm² and cells per mm² (area from the slide's µm/px)."""
    counts = dict.fromkeys(regions.names, 0)
    for cell in cells:
        if cell.region in counts:
            counts[cell.region] += 1
    out = []
    for name, geometry in zip(regions.names, regions.geometries, strict=True):
        area_mm2 = float(geometry.area) * mpp * mpp / 1e6
        out.append(
            {
                "name": name,
                "cells": counts[name],
                "area_mm2": round(area_mm2, 6),
                "density_per_mm2": round(counts[name] / area_mm2, 3) if area_mm2 > 0 else None,
            }
        )
    return out


def write_region_outputs(
    out_dir: Path, regions: Regions, summaries: list[dict[str, Any]] | None = None
) -> dict[str, str]:
    """`regions.geojson` (the regions used, QuPath annotations) and `regions.json` (their summaries)."""
    geojson = write_annotations(regions.annotations, out_dir / "regions.geojson", source=regions.source)
    doc = {"source": regions.source, "digest": regions.digest, "regions": summaries or []}
    path = out_dir / "regions.json"
    with atomic_write(path, newline="\n") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return {"regions": str(path), "regions_geojson": str(geojson)}


__all__ = [
    "ROI_FILE_SUFFIXES",
    "RegionFilter",
    "Regions",
    "load_regions",
    "region_summaries",
    "restrict_mask",
    "restrict_plan",
    "roi_names",
    "write_region_outputs",
]
