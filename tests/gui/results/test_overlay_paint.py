"""The result overlay draws only the cells a paint exposes, with paths built from numpy."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QRegion
from PySide6.QtWidgets import QStyleOptionGraphicsItem

from wsidesk.gui.results.colours import CellColours, ColourSpec
from wsidesk.gui.results.overlay import ResultCellsOverlay, RingPaths


def grid_cells(n_side: int = 20, spacing: float = 20.0) -> dict[str, np.ndarray]:
    k = np.arange(n_side * n_side)
    cx, cy = 15 + spacing * (k % n_side), 15 + spacing * (k // n_side)
    r = 5.0 + (k % 4)
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    xy = np.stack([cx[:, None] + r[:, None] * np.cos(angles), cy[:, None] + r[:, None] * np.sin(angles)], axis=2)
    return {
        "x": cx,
        "y": cy,
        "bbox": np.column_stack([cx - r, cy - r, cx + r, cy + r]),
        "poly_offsets": np.arange(len(k) + 1, dtype=np.int64) * 10,
        "poly_xy": xy.reshape(-1, 2).astype(np.float32),
    }


def test_ring_paths_close_each_ring_and_fill_by_winding(qapp) -> None:
    xy = np.array([[0, 0], [4, 0], [4, 3], [10, 10], [12, 10], [12, 12], [10, 12]], dtype=np.float32)
    rings = RingPaths(np.array([0, 3, 7]), xy, np.array([1, 0]))
    path = rings.path(0, 2)
    assert path.fillRule() == Qt.FillRule.WindingFill
    elements = [path.elementAt(i) for i in range(path.elementCount())]
    got = [(e.type, e.x, e.y) for e in elements]
    move, line = QPainterPath.ElementType.MoveToElement, QPainterPath.ElementType.LineToElement
    expected = [(move, 10, 10), (line, 12, 10), (line, 12, 12), (line, 10, 12), (line, 10, 10)]
    expected += [(move, 0, 0), (line, 4, 0), (line, 4, 3), (line, 0, 0)]
    assert got == expected
    assert [(e.x, e.y) for e in (rings.path(1, 2).elementAt(i) for i in range(4))] == [(0, 0), (4, 0), (4, 3), (0, 0)]


def render(overlay: ResultCellsOverlay, exposed: QRectF, clip: QRegion | None) -> QImage:
    image = QImage(420, 420, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    if clip is not None:
        painter.setClipRegion(clip)
    option = QStyleOptionGraphicsItem()
    option.exposedRect = exposed
    overlay.paint(painter, option, None)
    painter.end()
    return image


def pixels(image: QImage) -> np.ndarray:
    h, w = image.height(), image.width()
    return np.frombuffer(image.constBits(), dtype=np.uint8).reshape(h, image.bytesPerLine())[:, : w * 4].copy()


def test_a_pans_thin_strips_get_the_same_pixels_as_a_full_paint(qapp) -> None:
    overlay = ResultCellsOverlay(bucket_size=64)  # several buckets under each strip
    cells = grid_cells()
    n = len(cells["x"])
    overlay.set_cells(**cells, extent=(420.0, 420.0))
    keys = (np.arange(n) * 7) % 5
    palette = [QColor(200, 40, 40), QColor(40, 200, 40), QColor(40, 40, 200), QColor(200, 200, 0), QColor(0, 0, 0)]
    overlay.set_colours(ColourSpec(fill_opacity=0.45, contour_width=1.5), CellColours(palette, keys), None)
    overlay.set_visible_cells(np.arange(n) % 9 != 0)
    overlay.set_selected(np.array([21, 22, 150]))
    full = pixels(render(overlay, QRectF(0, 0, 420, 420), None))
    # A diagonal pan exposes an L: a column strip and a row strip whose bounding rect is everything.
    strips = QRegion(QRect(300, 0, 23, 420)) + QRegion(QRect(0, 97, 420, 11))
    partial = pixels(render(overlay, QRectF(0, 0, 420, 420), strips))
    inside = np.zeros((420, 420), dtype=bool)
    inside[:, 300:323] = True
    inside[97:108, :] = True
    inside4 = np.repeat(inside, 4, axis=1)
    assert np.count_nonzero(full[inside4]) > 1000  # the strips cross many cells
    assert np.array_equal(partial[inside4], full[inside4])
    assert not partial[~inside4].any()  # nothing drawn outside the exposed strips


def test_hidden_and_selected_cells_in_a_strip(qapp) -> None:
    overlay = ResultCellsOverlay(bucket_size=64)
    cells = grid_cells()
    n = len(cells["x"])
    overlay.set_cells(**cells, extent=(420.0, 420.0))
    overlay.set_colours(ColourSpec(fill_opacity=0.0), CellColours([QColor(0, 0, 255)], np.zeros(n, np.int32)), None)
    row = QRegion(QRect(0, 10, 420, 10))  # the first row of cells, centred at y = 15
    first_row = np.arange(20)
    visible = np.ones(n, dtype=bool)
    visible[first_row[:10]] = False  # the left half of the row is filtered out
    overlay.set_visible_cells(visible)
    overlay.set_selected(np.array([15]))
    image = render(overlay, QRectF(0, 0, 420, 420), row)
    left = image.pixelColor(15 + 20 * 3 + 5, 15)  # a hidden cell's right edge
    shown = image.pixelColor(15 + 20 * 12 + 5, 15)  # a shown cell's right edge (r = 5 for cell 12)
    selected = image.pixelColor(15 + 20 * 15 + 8, 15)  # cell 15: r = 8, its contour is yellow
    assert left.alpha() == 0
    assert shown.blue() > 100 and shown.red() < 80
    assert selected.red() > 150 and selected.green() > 150 and selected.blue() < 100
