"""Scene layers drawn over the slide, in level-0 px: tissue mask, tile grid, cells.

Each is a QGraphicsObject, so `setVisible`, `setOpacity` and `setZValue` work as usual.
"""

from __future__ import annotations

import ctypes
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import shiboken6
from PySide6.QtCore import QRectF, Qt, QTimer, QVariantAnimation
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject, QStyleOptionGraphicsItem, QWidget

from wsidesk.core.segment.cells import Cell
from wsidesk.core.tiling.grid import TilePlan
from wsidesk.core.tiling.tissue import TissueMask

logger = logging.getLogger(__name__)


class OverlayItem(QGraphicsObject):
    """Base layer: a named item whose bounding rect is a level-0 extent."""

    name = "overlay"

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._bounds = QRectF()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setAcceptHoverEvents(False)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return QRectF(self._bounds)

    def _set_bounds(self, rect: QRectF) -> None:
        if rect != self._bounds:
            self.prepareGeometryChange()
            self._bounds = QRectF(rect)

    def _device_px(self) -> float:
        """Level-0 px per screen px in the first view showing this item (1 when there is none)."""
        scene = self.scene()
        if scene is not None:
            for view in scene.views():
                s = view.transform().m11()
                if s > 0:
                    return 1.0 / s
        return 1.0

    def clear(self) -> None:  # pragma: no cover - every layer overrides it
        raise NotImplementedError


def _exposed(option: QStyleOptionGraphicsItem, fallback: QRectF) -> QRectF:
    rect = option.exposedRect
    return rect if not rect.isEmpty() else fallback


# -- tissue -------------------------------------------------------------------------------------------
class TissueOverlay(OverlayItem):
    """A TissueMask as a translucent colour wash, stretched to level-0."""

    name = "tissue"

    def __init__(self, color: QColor | None = None, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._color = QColor(color) if color is not None else QColor(40, 200, 90, 60)
        self._mask: TissueMask | None = None
        self._image: QImage | None = None

    @property
    def mask(self) -> TissueMask | None:
        return self._mask

    def set_mask(self, mask: TissueMask | None) -> None:
        self._mask = mask
        if mask is None:
            self._image = None
            self._set_bounds(QRectF())
        else:
            self._image = self._render(mask.mask)
            h, w = mask.shape
            sy = mask.downsample_y if mask.downsample_y is not None else mask.downsample
            self._set_bounds(QRectF(0, 0, w * mask.downsample, h * sy))
        self.update()

    def set_color(self, color: QColor) -> None:
        self._color = QColor(color)
        if self._mask is not None:
            self._image = self._render(self._mask.mask)
        self.update()

    def clear(self) -> None:
        self.set_mask(None)

    def _render(self, mask: np.ndarray) -> QImage:
        h, w = mask.shape
        image = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
        a = self._color.alpha()
        # One premultiplied ARGB word per pixel (B, G, R, A in little-endian memory), written whole:
        # ~10x faster than assigning four channels through a boolean index, on the GUI thread.
        word = (
            (a << 24)
            | ((self._color.red() * a // 255) << 16)
            | ((self._color.green() * a // 255) << 8)
            | (self._color.blue() * a // 255)
        )
        rows = np.frombuffer(image.bits(), dtype=np.uint32).reshape(h, image.bytesPerLine() // 4)
        rows[:, :w] = np.where(mask, np.uint32(word), np.uint32(0))
        return image

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self._image is None:
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(self._bounds, self._image, QRectF(self._image.rect()))


# -- tile grid ----------------------------------------------------------------------------------------
TILE_STATE_STYLES: dict[str, tuple[QColor | None, QColor | None]] = {
    # state: (outline, fill)
    # light by default: the tissue under the grid is what the user looks at
    "pending": (QColor(150, 150, 150, 120), None),
    "running": (QColor(255, 205, 0, 255), QColor(255, 205, 0, 45)),
    "done": (QColor(40, 190, 70, 150), QColor(40, 190, 70, 32)),
    "skipped": (QColor(160, 160, 160, 30), None),
    "failed": (QColor(225, 35, 35, 255), QColor(225, 35, 35, 80)),
}
FADED = 0.2  # what is left of the "done" tint once a run has finished
FADE_MS = 1500


class TileGridOverlay(OverlayItem):
    """A TilePlan's tile cores coloured by state; state changes repaint only the changed tiles.

    Once no tile is pending or running, the "done" tint fades out (failed tiles stay marked).
    """

    name = "tiles"

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._plan: TilePlan | None = None
        self._rects = np.zeros((0, 4), dtype=np.float64)  # x, y, w, h
        self._states: list[str] = []
        self._pos: dict[int, int] = {}  # tile index -> row in _rects
        self._fade = 1.0  # multiplies the "done" tint's alpha
        self._fader = QVariantAnimation(self)
        self._fader.setDuration(FADE_MS)
        self._fader.setStartValue(1.0)
        self._fader.setEndValue(FADED)
        self._fader.valueChanged.connect(self._on_fade_step)

    @property
    def plan(self) -> TilePlan | None:
        return self._plan

    def set_plan(self, plan: TilePlan | None) -> None:
        self._plan = plan
        self._fader.stop()
        self._fade = 1.0
        if plan is None:
            self._rects = np.zeros((0, 4), dtype=np.float64)
            self._states = []
            self._pos = {}
            self._set_bounds(QRectF())
        else:
            self._rects = np.array([(t.x, t.y, t.w, t.h) for t in plan.tiles], dtype=np.float64).reshape(-1, 4)
            self._states = [t.state for t in plan.tiles]
            self._pos = {t.index: i for i, t in enumerate(plan.tiles)}
            if len(self._rects):
                x0, y0 = self._rects[:, 0].min(), self._rects[:, 1].min()
                x1 = (self._rects[:, 0] + self._rects[:, 2]).max()
                y1 = (self._rects[:, 1] + self._rects[:, 3]).max()
                self._set_bounds(QRectF(x0, y0, x1 - x0, y1 - y0))
            else:
                self._set_bounds(QRectF())
        self.update()

    def clear(self) -> None:
        self.set_plan(None)

    def tile_state(self, index: int) -> str:
        return self._states[self._pos[index]]

    def state_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self._states:
            counts[s] = counts.get(s, 0) + 1
        return counts

    def set_tile_states(self, states: Mapping[int, str]) -> int:
        """Change some tiles' states; returns how many changed (only those are repainted)."""
        changed = 0
        margin = 3.0 * self._device_px()  # the cosmetic outline spills ~1 screen px outside the tile
        for index, state in states.items():
            if state not in TILE_STATE_STYLES:
                msg = f"unknown tile state {state!r}; expected one of {tuple(TILE_STATE_STYLES)}"
                raise ValueError(msg)
            i = self._pos.get(index)
            if i is None or self._states[i] == state:
                continue
            self._states[i] = state
            changed += 1
            x, y, w, h = self._rects[i]
            self.update(QRectF(x, y, w, h).adjusted(-margin, -margin, margin, margin))
        if changed and self.finished and self._fader.state() != QVariantAnimation.State.Running:
            self._fader.start()
        return changed

    @property
    def finished(self) -> bool:
        """No tile is pending or running (a run over this plan has ended)."""
        return bool(self._states) and not any(s in ("pending", "running") for s in self._states)

    @property
    def fade(self) -> float:
        return self._fade

    def _on_fade_step(self, value: object) -> None:
        self._fade = float(value)  # type: ignore[arg-type]
        self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not len(self._rects):
            return
        ex = _exposed(option, self._bounds)
        r = self._rects
        hit = np.nonzero(
            (r[:, 0] < ex.right())
            & (r[:, 0] + r[:, 2] > ex.left())
            & (r[:, 1] < ex.bottom())
            & (r[:, 1] + r[:, 3] > ex.top())
        )[0]
        groups: dict[str, list[QRectF]] = {}
        for i in hit.tolist():
            x, y, w, h = r[i]
            groups.setdefault(self._states[i], []).append(QRectF(x, y, w, h))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        # Draw quiet states first so running/failed outlines sit on top of shared edges.
        for state in ("skipped", "pending", "done", "running", "failed"):
            rects = groups.get(state)
            if not rects:
                continue
            outline, fill = TILE_STATE_STYLES[state]
            if state == "done" and self._fade < 1.0:
                outline, fill = _faded(outline, self._fade), _faded(fill, self._fade)
            if outline is not None:
                pen = QPen(outline, 2.0 if state in ("running", "failed") else 1.0)
                pen.setCosmetic(True)
                painter.setPen(pen)
            else:
                painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(fill) if fill is not None else Qt.BrushStyle.NoBrush)
            painter.drawRects(rects)


def _faded(colour: QColor | None, factor: float) -> QColor | None:
    if colour is None:
        return None
    out = QColor(colour)
    out.setAlpha(round(colour.alpha() * factor))
    return out


# -- cells --------------------------------------------------------------------------------------------
def polygon_to_qpolygonf(points: np.ndarray) -> QPolygonF:
    """A closed QPolygonF from an (N, 2) float array."""
    return polygons_to_qpolygonf([points])[0]


def polygons_to_qpolygonf(polygons: list[np.ndarray]) -> list[QPolygonF]:
    """Closed QPolygonFs for many (N, 2) arrays: the rings are closed and packed with numpy, then each
    polygon's buffer is filled with one memmove (per-point Python calls would cost ~40 us a cell)."""
    if not polygons:
        return []
    n = np.fromiter((len(p) for p in polygons), dtype=np.int64, count=len(polygons))
    pts = np.concatenate(polygons).astype(np.float64, copy=False)
    starts = np.r_[0, np.cumsum(n + 1)[:-1]]
    packed = np.empty((int(n.sum() + len(n)), 2), dtype=np.float64)
    packed[np.arange(len(pts)) + np.repeat(np.arange(len(n)), n)] = pts  # one free slot per ring...
    packed[starts + n] = pts[np.r_[0, np.cumsum(n)[:-1]]]  # ...closed on the ring's first point
    base = packed.ctypes.data
    memmove, voidptr = ctypes.memmove, shiboken6.VoidPtr
    out = []
    for start, k in zip(starts.tolist(), (n + 1).tolist(), strict=True):
        poly = QPolygonF()
        poly.resize(k)
        # PySide's stubs do not know VoidPtr(address, size, writable) or int(VoidPtr).
        memmove(int(voidptr(poly.data(), k * 16, True)), base + start * 16, k * 16)  # type: ignore[call-overload, call-arg, arg-type]
        out.append(poly)
    return out


def _colormap(n: int = 256) -> np.ndarray:
    """(n, 4) uint8 premultiplied B, G, R, A: a dark-violet -> orange -> yellow heat ramp (like inferno)."""
    anchors = np.array(
        [
            (0.00, 40, 10, 90, 110),
            (0.35, 150, 30, 120, 170),
            (0.65, 235, 90, 40, 210),
            (1.00, 252, 230, 60, 240),
        ],
        dtype=np.float64,
    )
    t = np.linspace(0, 1, n)
    rgba = np.stack([np.interp(t, anchors[:, 0], anchors[:, k]) for k in range(1, 5)], axis=1)
    a = rgba[:, 3:4] / 255.0
    out = np.empty((n, 4), dtype=np.uint8)
    out[:, 0] = np.round(rgba[:, 2] * a[:, 0])
    out[:, 1] = np.round(rgba[:, 1] * a[:, 0])
    out[:, 2] = np.round(rgba[:, 0] * a[:, 0])
    out[:, 3] = np.round(rgba[:, 3])
    return out


_COLORMAP = _colormap()


DENSITY_SCREEN_PX = 6.0


class _DensityRaster:
    """Counts summed over `factor` x `factor` bins, colour-mapped into a QImage, redone only where
    counts changed (everything only when the colour scale moves by more than 10%)."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.image: QImage | None = None
        self.norm = 0.0
        self.dirty: tuple[int, int, int, int] | None = None  # r0, r1, c0, c1 in fine bins

    def mark_dirty(self, box: tuple[int, int, int, int]) -> None:
        d = self.dirty
        self.dirty = box if d is None else (min(d[0], box[0]), max(d[1], box[1]), min(d[2], box[2]), max(d[3], box[3]))

    def _blocks(self, counts: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Block sums for coarse rows r0:r1, cols c0:c1."""
        f = self.factor
        if f == 1:
            return counts[r0:r1, c0:c1]
        part = counts[r0 * f : r1 * f, c0 * f : c1 * f]
        pad = np.zeros(((r1 - r0) * f, (c1 - c0) * f), dtype=counts.dtype)
        pad[: part.shape[0], : part.shape[1]] = part
        return np.asarray(pad.reshape(r1 - r0, f, c1 - c0, f).sum(axis=(1, 3)))

    def render(self, counts: np.ndarray) -> QImage:
        f = self.factor
        rows, cols = -(-counts.shape[0] // f), -(-counts.shape[1] // f)
        full = self.image is None or (self.image.width(), self.image.height()) != (cols, rows)
        if not full and self.dirty is None:
            assert self.image is not None
            return self.image
        if not full:
            d = self.dirty
            assert d is not None
            box = (d[0] // f, -(-d[1] // f), d[2] // f, -(-d[3] // f))
            values = self._blocks(counts, *box)
            # Colours are scaled to the 99th percentile of occupied blocks (one dense clump must not
            # wash out the rest); when new cells push that well past the scale, recolour everything.
            full = _norm(values) > 1.1 * self.norm
        if full:
            box = (0, rows, 0, cols)
            values = self._blocks(counts, *box)
            self.norm = _norm(values)
            self.image = QImage(cols, rows, QImage.Format.Format_ARGB32_Premultiplied)
        self.dirty = None
        image = self.image
        assert image is not None
        r0, r1, c0, c1 = box
        buf = np.frombuffer(image.bits(), dtype=np.uint8).reshape(rows, image.bytesPerLine())
        px = buf[:, : cols * 4].reshape(rows, cols, 4)
        t = np.sqrt(np.clip(values / self.norm, 0.0, 1.0))
        out = _COLORMAP[np.round(t * (len(_COLORMAP) - 1)).astype(np.int64)]
        out[values == 0] = 0
        px[r0:r1, c0:c1] = out
        return image


def _norm(values: np.ndarray) -> float:
    occupied = values[values > 0]
    return max(float(np.percentile(occupied, 99)) if occupied.size else 1.0, 1.0)


@dataclass(slots=True)
class _Bucket:
    polygons: list[QPolygonF] = field(default_factory=list)
    bounds: QRectF = field(default_factory=QRectF)
    path: QPainterPath | None = None  # rebuilt lazily after cells are added


class CellOverlay(OverlayItem):
    """Cell outlines kept in a spatial bucket grid; a density raster replaces them when zoomed out.

    `add_cells` may be called many times a second while segmentation streams batches in: it converts
    polygons once, marks buckets dirty and schedules one repaint per `repaint_interval_ms`.
    """

    name = "cells"
    MODES = ("contour", "filled")

    def __init__(
        self,
        *,
        bucket_size: int = 1024,
        color: QColor | None = None,
        mode: str = "contour",
        min_cell_px: float = 3.0,
        repaint_interval_ms: int = 100,
        parent: QGraphicsItem | None = None,
    ) -> None:
        super().__init__(parent)
        if bucket_size < 16:
            msg = f"cell bucket size must be at least 16 px, got {bucket_size}"
            raise ValueError(msg)
        self.bucket_size = int(bucket_size)
        self.min_cell_px = float(min_cell_px)
        self._color = QColor(color) if color is not None else QColor(0, 230, 255)
        self._mode = "contour"
        self.set_mode(mode)
        self._buckets: dict[tuple[int, int], _Bucket] = {}
        self._count = 0
        self._size_sum = 0.0  # sum of cell sizes (max bbox side), for the typical on-screen size
        self._max_extent = 0.0  # largest cell bbox side: how far a cell may reach past its bucket
        self._extent = QRectF()
        self._cells_rect = QRectF()
        # density raster: counts of cell centroids per bin of `_bin` level-0 px
        self._bin = 32
        self._counts = np.zeros((0, 0), dtype=np.int32)
        self._centroids: list[np.ndarray] = []
        # colour-mapped rasters per block factor (bins summed f x f), each with its dirty box in bins
        self._rasters: dict[int, _DensityRaster] = {}
        self._dirty = QRectF()  # level-0 extent of cells added since the last repaint
        self.last_paint_mode = "none"  # "polygons" / "density" / "none", for tests and diagnostics
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(max(0, int(repaint_interval_ms)))
        self._timer.timeout.connect(self._on_repaint_due)
        # Panning then blits the cached drawing instead of re-stroking thousands of outlines (2-3x
        # faster frames, measured); zooming or update() re-renders it.
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    # -- configuration ------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            msg = f"unknown cell overlay mode {mode!r}; expected one of {self.MODES}"
            raise ValueError(msg)
        self._mode = mode
        self.update()

    def set_color(self, color: QColor) -> None:
        self._color = QColor(color)
        self.update()

    def set_extent(self, width: float, height: float) -> None:
        """The slide's level-0 size: sizes the density raster (about 1024 bins on the long side)."""
        self._extent = QRectF(0, 0, float(width), float(height))
        longest = max(width, height, 1.0)
        self._bin = int(max(16, 2 ** math.ceil(math.log2(max(longest / 1024.0, 1.0)))))
        self._rebuild_counts()
        self._update_bounds()
        self.update()

    @property
    def density_bin(self) -> int:
        return self._bin

    # -- data ---------------------------------------------------------------------------------------
    @property
    def cell_count(self) -> int:
        return self._count

    @property
    def typical_cell_size(self) -> float:
        """Mean cell size (longest bbox side) in level-0 px; 0 without cells."""
        return self._size_sum / self._count if self._count else 0.0

    def add_cells(self, cells: Iterable[Cell]) -> int:
        """Add a batch of cells (call on the GUI thread); returns how many were added."""
        cells = list(cells)
        if not cells:
            return 0
        bs = self.bucket_size
        cents = np.array([c.centroid for c in cells], dtype=np.float64).reshape(-1, 2)
        boxes = np.array([c.bbox for c in cells], dtype=np.float64).reshape(-1, 4)
        polygons = polygons_to_qpolygonf([c.polygon for c in cells])
        sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        bx = np.floor(cents[:, 0] / bs).astype(np.int64)
        by = np.floor(cents[:, 1] / bs).astype(np.int64)
        # Group the batch by bucket with one sort instead of a dictionary lookup per cell.
        order = np.lexsort((bx, by))
        bx, by, boxes_sorted = bx[order], by[order], boxes[order]
        starts = np.flatnonzero(np.r_[True, (bx[1:] != bx[:-1]) | (by[1:] != by[:-1])])
        ends = np.r_[starts[1:], len(order)]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            key = (int(bx[a]), int(by[a]))
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            bucket.polygons.extend(polygons[i] for i in order[a:b].tolist())
            bucket.path = None
            g = boxes_sorted[a:b]
            x0, y0 = float(g[:, 0].min()), float(g[:, 1].min())
            rect = QRectF(x0, y0, float(g[:, 2].max()) - x0, float(g[:, 3].max()) - y0)
            bucket.bounds = rect if bucket.bounds.isNull() else bucket.bounds.united(rect)
        self._count += len(cells)
        self._size_sum += float(sizes.sum())
        self._max_extent = max(self._max_extent, float(sizes.max()))
        x0, y0 = float(boxes[:, 0].min()), float(boxes[:, 1].min())
        batch = QRectF(x0, y0, float(boxes[:, 2].max()) - x0, float(boxes[:, 3].max()) - y0)
        self._cells_rect = batch if self._cells_rect.isNull() else self._cells_rect.united(batch)
        self._centroids.append(cents)
        self._add_to_density(cents)
        self._update_bounds()
        self._dirty = batch if self._dirty.isNull() else self._dirty.united(batch)
        self.schedule_repaint()
        return len(cells)

    def clear(self) -> None:
        self._buckets.clear()
        self._centroids.clear()
        self._count = 0
        self._size_sum = 0.0
        self._max_extent = 0.0
        self._cells_rect = QRectF()
        self._counts = np.zeros((0, 0), dtype=np.int32)
        self._rasters.clear()
        self._dirty = QRectF()
        self._update_bounds()
        self.update()

    # -- repaint throttling -------------------------------------------------------------------------
    def schedule_repaint(self) -> None:
        """Coalesce repaints: at most one per interval however fast batches arrive."""
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Repaint now (skips the throttle)."""
        self._timer.stop()
        self._on_repaint_due()

    def _on_repaint_due(self) -> None:
        dirty, self._dirty = self._dirty, QRectF()
        if self.last_paint_mode == "density" or dirty.isNull():
            self.update()  # one image, possibly recoloured as a whole: cheap to redraw all of it
        else:
            # Only where the new cells are: the slide under them is a cached blit, so a batch costs
            # its own outlines, not a frame. The margin covers the antialiased 1 px outline.
            margin = 2.0 * self._device_px()
            self.update(dirty.adjusted(-margin, -margin, margin, margin))

    def _update_bounds(self) -> None:
        rect = self._extent
        if not self._cells_rect.isNull():
            rect = self._cells_rect if rect.isNull() else rect.united(self._cells_rect)
        self._set_bounds(rect)

    # -- density raster -----------------------------------------------------------------------------
    def _rebuild_counts(self) -> None:
        self._counts = np.zeros((0, 0), dtype=np.int32)
        self._rasters.clear()
        for cents in self._centroids:
            self._add_to_density(cents)

    def _add_to_density(self, cents: np.ndarray) -> None:
        ix = np.clip(np.floor(cents[:, 0] / self._bin), 0, None).astype(np.int64)
        iy = np.clip(np.floor(cents[:, 1] / self._bin), 0, None).astype(np.int64)
        rows, cols = self._counts.shape
        need_r = max(rows, int(iy.max()) + 1)
        need_c = max(cols, int(ix.max()) + 1)
        if not self._extent.isNull():
            need_r = max(need_r, math.ceil(self._extent.height() / self._bin))
            need_c = max(need_c, math.ceil(self._extent.width() / self._bin))
        if (need_r, need_c) != (rows, cols):
            grown = np.zeros((need_r, need_c), dtype=np.int32)
            grown[:rows, :cols] = self._counts
            self._counts = grown
            self._rasters.clear()  # size changed: rebuilt whole when next drawn
        np.add.at(self._counts, (iy, ix), 1)
        box = (int(iy.min()), int(iy.max()) + 1, int(ix.min()), int(ix.max()) + 1)
        for raster in self._rasters.values():
            raster.mark_dirty(box)

    def density_factor(self, scale: float) -> int:
        """Bins summed per raster pixel at `scale`, so a raster pixel covers >= ~6 screen px: a smooth
        map of density rather than a speckle of single cells."""
        f = 1
        while self._bin * f * scale < DENSITY_SCREEN_PX and f < 1024:
            f *= 2
        return f

    def density_image(self, factor: int = 1) -> QImage | None:
        """Colour-mapped counts, one px per `factor` x `factor` bins; recoloured incrementally."""
        if not self._counts.size:
            return None
        raster = self._rasters.get(factor)
        if raster is None:
            raster = self._rasters[factor] = _DensityRaster(factor)
        return raster.render(self._counts)

    # -- painting --------------------------------------------------------------------------------------
    def uses_density_at(self, scale: float) -> bool:
        """Whether, at `scale` screen px per level-0 px, cells are too small to draw as polygons."""
        return self._count > 0 and self.typical_cell_size * scale < self.min_cell_px

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self._count:
            self.last_paint_mode = "none"
            return
        scale = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        exposed = _exposed(option, self._bounds)
        if self.uses_density_at(scale):
            self._paint_density(painter, scale)
        else:
            self._paint_polygons(painter, exposed)

    def _paint_density(self, painter: QPainter, scale: float) -> None:
        factor = self.density_factor(scale)
        image = self.density_image(factor)
        self.last_paint_mode = "density"
        if image is None:
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        px = self._bin * factor
        painter.drawImage(QRectF(0, 0, image.width() * px, image.height() * px), image, QRectF(image.rect()))

    def _paint_polygons(self, painter: QPainter, exposed: QRectF) -> None:
        self.last_paint_mode = "polygons"
        bs = self.bucket_size
        reach = exposed.adjusted(-self._max_extent, -self._max_extent, self._max_extent, self._max_extent)
        bx0, bx1 = int(reach.left() // bs), int(reach.right() // bs)
        by0, by1 = int(reach.top() // bs), int(reach.bottom() // bs)
        # A 1 px cosmetic pen takes Qt's fast thin-line path (wider pens go through the stroker, ~10x
        # slower); fills are drawn without antialiasing for the same reason, the outline smooths them.
        pen = QPen(self._color, 1.0)
        pen.setCosmetic(True)
        fill = QColor(self._color)
        fill.setAlpha(90)
        if (bx1 - bx0 + 1) * (by1 - by0 + 1) > len(self._buckets):
            candidates = [(k, b) for k, b in self._buckets.items() if bx0 <= k[0] <= bx1 and by0 <= k[1] <= by1]
        else:
            candidates = [
                ((i, j), self._buckets[(i, j)])
                for j in range(by0, by1 + 1)
                for i in range(bx0, bx1 + 1)
                if (i, j) in self._buckets
            ]
        for _, bucket in candidates:
            if not bucket.bounds.intersects(exposed):
                continue
            if bucket.path is None:
                path = QPainterPath()
                path.setFillRule(Qt.FillRule.WindingFill)
                for poly in bucket.polygons:
                    path.addPolygon(poly)
                bucket.path = path
            if self._mode == "filled":
                painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
                painter.fillPath(bucket.path, fill)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.strokePath(bucket.path, pen)

    def bucket_keys_in(self, rect: QRectF) -> list[tuple[int, int]]:
        """Buckets whose cells intersect a level-0 rect (what a paint of that rect would draw)."""
        return [k for k, b in self._buckets.items() if b.bounds.intersects(rect)]
