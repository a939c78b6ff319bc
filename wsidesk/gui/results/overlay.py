"""The finished result's cells on the slide: coloured per cell, filtered, with the selection on top.

Cells live in numpy arrays (centroids, boxes, ragged polygons) sorted into a bucket grid once. A paint
draws only the cells meeting the exposed region (a pan exposes thin strips; Qt's device cache keeps the
rest), with one painter path per colour built from numpy. Zoomed out, one raster per change stands in
for the polygons: each bin coloured by the mean measurement, the majority class or the cell count.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from PySide6.QtCore import QByteArray, QDataStream, QPointF, QRectF, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from wsidesk.gui.results.colours import BY_CLASS, SINGLE, CellColours, ColourSpec
from wsidesk.gui.viewer.overlays import OverlayItem

SELECTED = QColor(255, 220, 0)
_WINDING_RULE = 1  # Qt.FillRule.WindingFill in QPainterPath's stream format
MAX_SELECTED_MARKERS = 200_000  # zoomed out, selected cells are drawn as points up to this many
MAX_EXPOSED_RECTS = 16  # a clip region with more parts is drawn as its bounding rect


def points_in_polygon(px: np.ndarray, py: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Even-odd test of many points against one (N, 2) ring, vectorised over the points."""
    inside = np.zeros(len(px), dtype=bool)
    x0, y0 = ring[-1]
    for x1, y1 in ring:
        crosses = (y1 > py) != (y0 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = x1 + (py - y1) * (x0 - x1) / (y0 - y1)
        inside ^= crosses & (px < xi)
        x0, y0 = x1, y1
    return inside


class ResultCellsOverlay(OverlayItem):
    """A finished result's cells; see the module docstring."""

    name = "results"
    cleared = Signal()  # the viewer or a new job cleared the layers: the result is no longer shown

    def __init__(
        self, *, bucket_size: int = 1024, min_cell_px: float = 5.0, parent: QGraphicsItem | None = None
    ) -> None:
        super().__init__(parent)
        self.bucket_size = bucket_size
        self.min_cell_px = min_cell_px
        self._n = 0
        self._x = self._y = np.zeros(0)
        self._bbox = np.zeros((0, 4))
        self._offsets = np.zeros(1, dtype=np.int64)
        self._xy = np.zeros((0, 2))
        self._order = np.zeros(0, dtype=np.int64)  # cell indices sorted by bucket
        self._buckets: dict[tuple[int, int], tuple[int, int]] = {}  # bucket -> slice of _order
        self._cell_size = 0.0
        self._max_extent = 0.0
        self._visible = np.zeros(0, dtype=bool)
        self._selected = np.zeros(0, dtype=bool)
        self._selected_idx = np.zeros(0, dtype=np.int64)
        self._colours = CellColours([QColor(0, 230, 255)], np.zeros(0, dtype=np.int32))
        self._values: np.ndarray | None = None
        self._spec = ColourSpec()
        self._bin = 32
        self._raster: QImage | None = None
        self.last_paint_mode = "none"
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    # -- data -----------------------------------------------------------------------------------------
    @property
    def cell_count(self) -> int:
        return self._n

    def set_cells(
        self,
        *,
        x: np.ndarray,
        y: np.ndarray,
        bbox: np.ndarray,
        poly_offsets: np.ndarray,
        poly_xy: np.ndarray,
        extent: tuple[float, float],
    ) -> None:
        """Show these cells (level-0 px); all visible, none selected, one colour until `set_colours`."""
        n = len(x)
        self._n = n
        self._x, self._y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self._bbox = np.asarray(bbox, dtype=np.float64).reshape(n, 4)
        # Vertices stay as given (float32 from the store): 1M cells' rings are ~200 MB as float64.
        self._offsets, self._xy = np.asarray(poly_offsets, dtype=np.int64), np.asarray(poly_xy)
        bs = self.bucket_size
        bx = np.floor(self._x / bs).astype(np.int64)
        by = np.floor(self._y / bs).astype(np.int64)
        key = by * (1 << 20) + bx
        self._order = np.argsort(key, kind="stable")
        sorted_key = key[self._order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) if n else np.zeros(0, dtype=np.int64)
        ends = np.r_[starts[1:], n].astype(np.int64)[: len(starts)]
        self._buckets = {
            (int(bx[self._order[s]]), int(by[self._order[s]])): (int(s), int(e))
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        }
        sizes = np.maximum(self._bbox[:, 2] - self._bbox[:, 0], self._bbox[:, 3] - self._bbox[:, 1])
        self._cell_size = float(np.median(sizes)) if n else 0.0
        self._max_extent = float(sizes.max()) if n else 0.0
        self._visible = np.ones(n, dtype=bool)
        self._selected = np.zeros(n, dtype=bool)
        self._selected_idx = np.zeros(0, dtype=np.int64)
        self._colours = CellColours([QColor(self._spec.contour)], np.zeros(n, dtype=np.int32))
        self._values = None
        w, h = extent
        if n:
            w, h = max(w, float(self._bbox[:, 2].max())), max(h, float(self._bbox[:, 3].max()))
        self._bin = int(max(16, 2 ** math.ceil(math.log2(max(max(w, h, 1.0) / 1024.0, 1.0)))))
        self._set_bounds(QRectF(0, 0, w, h) if n or w else QRectF())
        self._invalidate()

    def clear(self) -> None:
        self.set_cells(
            x=np.zeros(0),
            y=np.zeros(0),
            bbox=np.zeros((0, 4)),
            poly_offsets=np.zeros(1, dtype=np.int64),
            poly_xy=np.zeros((0, 2)),
            extent=(0.0, 0.0),
        )
        self.cleared.emit()

    def set_colours(self, spec: ColourSpec, colours: CellColours, values: np.ndarray | None) -> None:
        """New look: `colours` per cell, `values` the measurement coloured by (for the zoomed-out means)."""
        self._spec, self._colours, self._values = spec, colours, values
        self._invalidate()

    def set_visible_cells(self, mask: np.ndarray) -> None:
        """Which cells pass the filter and brushing (the others are not drawn)."""
        self._visible = np.asarray(mask, dtype=bool)
        self._invalidate()

    def set_selected(self, indices: np.ndarray) -> None:
        self._selected_idx = np.asarray(indices, dtype=np.int64)
        self._selected = np.zeros(self._n, dtype=bool)
        self._selected[self._selected_idx] = True
        self.update()

    def _invalidate(self) -> None:
        self._raster = None
        self.update()

    # -- queries --------------------------------------------------------------------------------------
    def cell_at(self, x: float, y: float) -> int:
        """Index of the visible cell whose polygon contains (x, y), or -1."""
        bs, reach = self.bucket_size, self._max_extent
        found: list[np.ndarray] = []
        for i in range(int((x - reach) // bs), int((x + reach) // bs) + 1):
            for j in range(int((y - reach) // bs), int((y + reach) // bs) + 1):
                if (i, j) in self._buckets:
                    s, e = self._buckets[(i, j)]
                    found.append(self._order[s:e])
        if not found:
            return -1
        idx = np.concatenate(found)
        b = self._bbox[idx]
        idx = idx[(b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3]) & self._visible[idx]]
        for i in idx.tolist():
            ring = self._xy[self._offsets[i] : self._offsets[i + 1]]
            if points_in_polygon(np.array([x]), np.array([y]), ring)[0]:
                return int(i)
        return -1

    def cells_in_rect(self, rect: QRectF) -> np.ndarray:
        """Visible cells whose centroid lies in a level-0 rect."""
        hit = (
            (self._x >= rect.left()) & (self._x <= rect.right()) & (self._y >= rect.top()) & (self._y <= rect.bottom())
        )
        return np.flatnonzero(hit & self._visible)

    def cells_in_polygon(self, ring: np.ndarray) -> np.ndarray:
        """Visible cells whose centroid lies inside a lasso (N, 2) in level-0 px."""
        if len(ring) < 3:
            return np.zeros(0, dtype=np.int64)
        x0, y0 = ring.min(axis=0)
        x1, y1 = ring.max(axis=0)
        box = self.cells_in_rect(QRectF(x0, y0, x1 - x0, y1 - y0))
        inside: np.ndarray = box[points_in_polygon(self._x[box], self._y[box], ring)]
        return inside

    def uses_density_at(self, scale: float) -> bool:
        return self._n > 0 and self._cell_size * scale < self.min_cell_px

    # -- painting -------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self._n:
            self.last_paint_mode = "none"
            return
        scale = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        exposed = option.exposedRect if not option.exposedRect.isEmpty() else self._bounds
        if self.uses_density_at(scale):
            self._paint_density(painter, scale)
        else:
            self._paint_polygons(painter, exposed)

    def _paint_density(self, painter: QPainter, scale: float) -> None:
        self.last_paint_mode = "density"
        if self._raster is None:
            self._raster = self.density_image()
        image = self._raster
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        px = float(self._bin)
        painter.drawImage(QRectF(0, 0, image.width() * px, image.height() * px), image, QRectF(image.rect()))
        sel = self._selected_idx
        if 0 < len(sel) <= MAX_SELECTED_MARKERS:
            pen = QPen(SELECTED, 3.0)
            pen.setCosmetic(True)
            painter.setPen(pen)
            points = QPolygonF([QPointF(float(a), float(b)) for a, b in zip(self._x[sel], self._y[sel], strict=True)])
            painter.drawPoints(points)

    def density_image(self) -> QImage:
        """One pixel per bin of visible cells: the mean measurement's colour, the majority class's
        colour, or the single colour; more transparent where cells are sparse."""
        w, h = self._bounds.width(), self._bounds.height()
        cols, rows = max(1, math.ceil(w / self._bin)), max(1, math.ceil(h / self._bin))
        vis = np.flatnonzero(self._visible)
        ix = np.clip((self._x[vis] // self._bin).astype(np.int64), 0, cols - 1)
        iy = np.clip((self._y[vis] // self._bin).astype(np.int64), 0, rows - 1)
        flat = iy * cols + ix
        counts = np.bincount(flat, minlength=rows * cols)
        palette = np.array([[c.red(), c.green(), c.blue()] for c in self._colours.palette], dtype=np.float64)
        keys = self._colours.keys[vis]
        if self._spec.by == BY_CLASS:
            k = len(palette)
            votes = np.bincount(flat * k + keys, minlength=rows * cols * k).reshape(rows * cols, k)
            rgb = palette[votes.argmax(axis=1)]
        elif self._spec.by != SINGLE and self._values is not None:
            # Mean of the value per bin, then through the same colormap range as the polygons.
            v = np.nan_to_num(self._values[vis], nan=0.0)
            sums = np.bincount(flat, weights=v, minlength=rows * cols)
            mean = sums / np.maximum(counts, 1)
            span = self._spec.hi - self._spec.lo if self._spec.hi > self._spec.lo else 1.0
            t = np.clip((mean - self._spec.lo) / span, 0.0, 1.0)
            rgb = palette[np.round(t * (len(palette) - 1)).astype(np.int64)]
        else:
            rgb = np.broadcast_to(palette[0], (rows * cols, 3))
        occupied = counts[counts > 0]
        norm = max(float(np.percentile(occupied, 99)) if occupied.size else 1.0, 1.0)
        alpha = np.where(counts > 0, np.clip(np.sqrt(counts / norm), 0.35, 1.0) * 235.0, 0.0)
        image = QImage(cols, rows, QImage.Format.Format_ARGB32_Premultiplied)
        buf = np.frombuffer(image.bits(), dtype=np.uint8).reshape(rows, image.bytesPerLine())
        px = buf[:, : cols * 4].reshape(rows * cols, 4)
        a = alpha / 255.0
        px[:, 0] = np.round(rgb[:, 2] * a)
        px[:, 1] = np.round(rgb[:, 1] * a)
        px[:, 2] = np.round(rgb[:, 0] * a)
        px[:, 3] = np.round(alpha)
        return image

    def _paint_polygons(self, painter: QPainter, exposed: QRectF) -> None:
        self.last_paint_mode = "polygons"
        # The item spans the slide and a full invalidation exposes all of it; Qt's device cache keeps
        # the viewport plus a quarter on each side, so draw at most the view plus half on each side.
        scene = self.scene()
        if scene is not None and scene.views():
            view = scene.views()[0]
            seen = view.mapToScene(view.viewport().rect()).boundingRect()
            dx, dy = seen.width() / 2, seen.height() / 2
            exposed = exposed.intersected(seen.adjusted(-dx, -dy, dx, dy))
        cells = self._cells_meeting(self._exposed_rects(painter, exposed))
        if not len(cells):
            return
        spec = self._spec
        keys = self._colours.keys[cells]
        by_key = np.argsort(keys, kind="stable")
        cells, keys = cells[by_key], keys[by_key]
        rings = RingPaths(self._offsets, self._xy, cells)
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        groups = [
            (self._colours.palette[int(keys[s])], rings.path(s, e))
            for s, e in zip(starts.tolist(), np.r_[starts[1:], len(keys)].tolist(), strict=True)
        ]
        if spec.fill_opacity > 0:
            # Fills without antialiasing (4x cheaper per colour; the antialiased contour drawn over
            # their edges looks the same), all before the contours so that no fill covers a contour.
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            for colour, path in groups:
                fill = QColor(colour)
                fill.setAlphaF(spec.fill_opacity)
                painter.fillPath(path, fill)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for colour, path in groups:
            pen = QPen(colour, spec.contour_width)
            pen.setCosmetic(True)
            painter.strokePath(path, pen)
        sel = cells[self._selected[cells]]
        if len(sel):
            pen = QPen(SELECTED, max(2.5, spec.contour_width + 1.5))
            pen.setCosmetic(True)
            painter.strokePath(RingPaths(self._offsets, self._xy, sel).path(0, len(sel)), pen)

    @staticmethod
    def _exposed_rects(painter: QPainter, exposed: QRectF) -> list[QRectF]:
        """The parts of `exposed` to draw: a diagonal pan exposes an L of two thin strips whose
        bounding rect is the whole view, so draw only the cells meeting the strips (Qt clips to them)."""
        if not painter.hasClipping():
            return [exposed]
        region = painter.clipRegion()  # in item coordinates
        if region.rectCount() > MAX_EXPOSED_RECTS:
            return [exposed]
        # A pixel of slack: the region is mapped back from whole device pixels.
        pad = 1.0 / max(QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform()), 1e-9)
        parts = iter(region)  # type: ignore[call-overload]  # QRegion iterates its rects; the stubs say not
        rects = [QRectF(r).adjusted(-pad, -pad, pad, pad).intersected(exposed) for r in parts]
        return [r for r in rects if not r.isEmpty()]

    def _cells_meeting(self, rects: list[QRectF]) -> np.ndarray:
        """Visible cells whose bounding box meets any of the level-0 rects, in index order."""
        bs, m = self.bucket_size, self._max_extent
        found: list[np.ndarray] = []
        for rect in rects:
            x0, y0, x1, y1 = rect.left(), rect.top(), rect.right(), rect.bottom()
            # A cell sits in its centroid's bucket and reaches at most its largest extent from it.
            for i in range(int((x0 - m) // bs), int((x1 + m) // bs) + 1):
                for j in range(int((y0 - m) // bs), int((y1 + m) // bs) + 1):
                    span = self._buckets.get((i, j))
                    if span is None:
                        continue
                    idx = self._order[span[0] : span[1]]
                    b = self._bbox[idx]
                    found.append(idx[(b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0)])
        if not found:
            return np.zeros(0, dtype=np.int64)
        idx = np.unique(np.concatenate(found)) if len(found) > 1 else found[0]
        shown: np.ndarray = idx[self._visible[idx]]
        return shown


class RingPaths:
    """Painter paths of cells' closed rings, built from numpy: the vertices of all the cells are
    packed once in QPainterPath's stream format, and a path of a run of them is read back in one call
    (per-cell QPolygonF and addPolygon cost ~15 us a cell in Python, which a pan cannot afford)."""

    _RECORD = np.dtype([("type", ">i4"), ("x", ">f8"), ("y", ">f8")])  # MoveTo 0 / LineTo 1, x, y

    def __init__(self, offsets: np.ndarray, xy: np.ndarray, cells: np.ndarray) -> None:
        first = offsets[cells]
        counts = offsets[cells + 1] - first
        ring = counts + 1  # each ring closed on its first vertex again
        n = int(ring.sum())
        ring_start = np.cumsum(ring) - ring
        at = np.arange(n) - np.repeat(ring_start, ring)  # vertex number inside its ring
        at[at == np.repeat(counts, ring)] = 0  # the closing vertex is the first one
        pts = xy[np.repeat(first, ring) + at]
        records = np.empty(n, dtype=self._RECORD)
        records["type"] = 1
        records["type"][ring_start] = 0
        records["x"], records["y"] = pts[:, 0], pts[:, 1]
        self._records = records
        self._vertex_start = np.r_[ring_start, n]  # per cell, and the end

    def path(self, start: int, end: int) -> QPainterPath:
        """The rings of cells[start:end] as one path (winding fill: overlapping cells stay filled)."""
        v0, v1 = int(self._vertex_start[start]), int(self._vertex_start[end])
        # Stream layout: element count, the elements, the current subpath start, the fill rule.
        data = QByteArray(
            struct.pack(">i", v1 - v0) + self._records[v0:v1].tobytes() + struct.pack(">ii", 0, _WINDING_RULE)
        )
        path = QPainterPath()
        QDataStream(data) >> path
        return path
