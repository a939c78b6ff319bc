"""Tissue detection and tile planning at the model's µm/px."""

from __future__ import annotations

from wsidesk.core.tiling.grid import TILE_STATES, Tile, TilePlan, plan_tiles, render_tissue_png
from wsidesk.core.tiling.tissue import TissueMask, detect_tissue

__all__ = [
    "TILE_STATES",
    "Tile",
    "TilePlan",
    "TissueMask",
    "detect_tissue",
    "plan_tiles",
    "render_tissue_png",
]
