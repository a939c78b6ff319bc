"""Seam-correct merging of cells from overlapping tiles: the first of two overlapping cells wins.

Two cells are duplicates when their intersection covers at least `min_overlap` of the smaller one
(QuPath InstanSeg's rule). Candidates come from a spatial hash of bounding boxes, so adding is linear
in the number of cells; exact intersections (shapely) are computed only for boxes that overlap.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from wsidesk.core.segment.cells import Cell

logger = logging.getLogger(__name__)


class CellMerger:
    """Accepts cells batch by batch, rejecting duplicates of cells already accepted; assigns ids 1, 2, ..."""

    def __init__(self, min_overlap: float = 0.5, *, bucket_size: float = 128.0) -> None:
        if not 0.0 < min_overlap <= 1.0:
            msg = f"min_overlap is a fraction in (0, 1], got {min_overlap}"
            raise ValueError(msg)
        if bucket_size <= 0:
            msg = f"bucket_size must be positive level-0 px, got {bucket_size}"
            raise ValueError(msg)
        self.min_overlap = float(min_overlap)
        self._bucket = float(bucket_size)
        self._cells: list[Cell] = []
        self._grid: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._cells)

    def cells(self) -> list[Cell]:
        """All accepted cells, in the order they were accepted."""
        return list(self._cells)

    def restore(self, cells: Iterable[Cell]) -> None:
        """Re-seed with cells accepted before (a resume): keeps their ids; new ids continue after them."""
        for cell in cells:
            if cell.id <= 0:
                cell = dataclasses.replace(cell, id=self._next_id)
            self._insert(cell)
            self._next_id = max(self._next_id, cell.id + 1)

    def add(self, cells: Iterable[Cell]) -> list[Cell]:
        """Accept the cells that do not duplicate an accepted one (earlier ones in `cells` included)."""
        import shapely

        batch = list(cells)
        if not batch:
            return []
        geoms = _geometries(batch)
        areas = shapely.area(geoms)
        old_geoms: dict[int, object] = {}
        accepted: list[Cell] = []
        for i, cell in enumerate(batch):
            candidates = self._candidates(cell.bbox)
            if candidates:
                missing = [j for j in candidates if j not in old_geoms]
                if missing:
                    for j, g in zip(missing, _geometries([self._cells[j] for j in missing]), strict=True):
                        old_geoms[j] = g
                others = np.array([old_geoms[j] for j in candidates], dtype=object)
                inter = shapely.area(shapely.intersection(geoms[i], others))
                other_area = shapely.area(others)
                smaller = np.minimum(areas[i], other_area)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ios = np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1.0), 0.0)
                if (ios >= self.min_overlap).any():
                    continue
            new = dataclasses.replace(cell, id=self._next_id)
            self._next_id += 1
            index = self._insert(new)
            old_geoms[index] = geoms[i]
            accepted.append(new)
        return accepted

    def _insert(self, cell: Cell) -> int:
        index = len(self._cells)
        self._cells.append(cell)
        for key in self._keys(cell.bbox):
            self._grid[key].append(index)
        return index

    def _keys(self, bbox: tuple[float, float, float, float]) -> list[tuple[int, int]]:
        s = self._bucket
        gx0, gy0 = math.floor(bbox[0] / s), math.floor(bbox[1] / s)
        gx1, gy1 = math.floor(bbox[2] / s), math.floor(bbox[3] / s)
        return [(gx, gy) for gx in range(gx0, gx1 + 1) for gy in range(gy0, gy1 + 1)]

    def _candidates(self, bbox: tuple[float, float, float, float]) -> list[int]:
        """Accepted cells whose bbox overlaps `bbox` with positive area (touching boxes cannot overlap)."""
        x0, y0, x1, y1 = bbox
        seen: set[int] = set()
        out: list[int] = []
        grid = self._grid
        for key in self._keys(bbox):
            for j in grid.get(key, ()):
                if j in seen:
                    continue
                seen.add(j)
                b = self._cells[j].bbox
                if b[0] < x1 and x0 < b[2] and b[1] < y1 and y0 < b[3]:
                    out.append(j)
        return out


def _geometries(cells: list[Cell]) -> np.ndarray:
    """Shapely polygons of cells, built in one vectorised call; invalid rings are made valid."""
    import shapely

    counts = np.fromiter((len(c.polygon) for c in cells), dtype=np.int64, count=len(cells))
    coords = np.concatenate([c.polygon for c in cells])
    geoms = shapely.polygons(shapely.linearrings(coords, indices=np.repeat(np.arange(len(cells)), counts)))
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    return np.asarray(geoms)


__all__ = ["CellMerger"]
