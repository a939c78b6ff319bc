"""Slide viewer: tiled multi-resolution view, tile cache and loader, overlay layers."""

from __future__ import annotations

from wsidesk.gui.viewer.minimap import MinimapPainter, ScaleBarPainter, nice_scale_length
from wsidesk.gui.viewer.overlays import (
    TILE_STATE_STYLES,
    CellOverlay,
    OverlayItem,
    TileGridOverlay,
    TissueOverlay,
)
from wsidesk.gui.viewer.slide_view import SlideView, level_for_scale
from wsidesk.gui.viewer.tile_cache import CacheStats, TileCache, TileKey
from wsidesk.gui.viewer.tile_loader import TILE_SIZE, LoaderStats, TileLoader

__all__ = [
    "TILE_SIZE",
    "TILE_STATE_STYLES",
    "CacheStats",
    "CellOverlay",
    "LoaderStats",
    "MinimapPainter",
    "OverlayItem",
    "ScaleBarPainter",
    "SlideView",
    "TileCache",
    "TileGridOverlay",
    "TileKey",
    "TileLoader",
    "TissueOverlay",
    "level_for_scale",
    "nice_scale_length",
]
