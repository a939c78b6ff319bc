"""A segment result written by the segment job's own writer: tiles.json, cells.geojson, cells.csv, cells.arrow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsidesk.core.jobs.segment import _write_outputs
from wsidesk.core.segment.cells import Cell
from wsidesk.core.segment.measure import MEASUREMENTS
from wsidesk.core.tiling.grid import Tile, TilePlan

# Far from the origin on purpose: float32 cannot hold 2 decimals there, the store must.
ORIGIN = (140_000.0, 3_000.0)


def make_cells(n: int, *, seed: int = 0) -> list[Cell]:
    """Cells on a jittered grid with ellipse outlines (9-20 vertices) and varied measurements."""
    rng = np.random.default_rng(seed)
    cells = []
    side = int(np.ceil(np.sqrt(n)))
    for i in range(n):
        x = ORIGIN[0] + 30 * (i % side) + rng.uniform(-3, 3)
        y = ORIGIN[1] + 30 * (i // side) + rng.uniform(-3, 3)
        k = int(rng.integers(9, 21))
        t = np.linspace(0, 2 * np.pi, k, endpoint=False)
        rx, ry = rng.uniform(4, 9), rng.uniform(3, 7)
        poly = np.column_stack((x + rx * np.cos(t), y + ry * np.sin(t)))
        m = {name: float(rng.gamma(2.0, 10.0)) for name in MEASUREMENTS}
        m["hematoxylin_od_mean"] = float(rng.uniform(0, 0.8))
        if i % 17 == 3:
            del m["solidity"]  # a missing measurement stays missing
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        cells.append(Cell(poly, (x, y), (lo[0], lo[1], hi[0], hi[1]), i % 4, m, id=i + 1))
    return cells


def write_result(out_dir: Path, cells: list[Cell]) -> dict[str, str]:
    """The segment job's outputs for these cells; 4 tiles of 1000 x 1000 px at 0.5 µm/px, tissue 0.5 each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tiles = tuple(
        Tile(i, i // 2, i % 2, int(ORIGIN[0]) + 1000 * (i % 2), 1000 * (i // 2), 1000, 1000, 0.5, "done")
        for i in range(4)
    )
    plan = TilePlan("slide.svs", 200_000, 5_000, 0.5, 0.5, 1000, 80, 1.0, tiles)
    return _write_outputs(out_dir, plan, cells, {0, 1, 2, 3}, {}, partial=False)


@pytest.fixture
def result(tmp_path: Path) -> Path:
    """A segment job folder with 300 cells."""
    folder = tmp_path / "run" / "seg"
    write_result(folder, make_cells(300))
    return folder
