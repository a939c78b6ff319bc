"""Viewport-fixed furniture of the slide view: the minimap and the scale bar (painted, not widgets)."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen


class MinimapPainter:
    """A thumbnail of the whole slide with the visible area outlined, in the viewport's top-right."""

    def __init__(self, *, max_size: int = 180, margin: int = 10) -> None:
        self.max_size = max_size
        self.margin = margin
        self.visible = True
        self._image: QImage | None = None
        self._slide = QSize()

    def set_thumbnail(self, thumbnail: QImage | None, slide_size: QSize) -> None:
        self._slide = QSize(slide_size)
        if thumbnail is None or thumbnail.isNull() or slide_size.isEmpty():
            self._image = None
            return
        self._image = thumbnail.scaled(
            self.max_size,
            self.max_size,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )

    def rect(self, viewport: QSize) -> QRectF:
        """Where the minimap sits in viewport px (empty when hidden or the viewport is too small)."""
        if not self.visible or self._image is None:
            return QRectF()
        w, h = self._image.width(), self._image.height()
        if viewport.width() < 3 * w or viewport.height() < 2 * h:
            return QRectF()
        return QRectF(viewport.width() - w - self.margin, self.margin, w, h)

    def contains(self, pos: QPointF, viewport: QSize) -> bool:
        return self.rect(viewport).contains(pos)

    def to_scene(self, pos: QPointF, viewport: QSize) -> QPointF:
        """The level-0 point under a viewport position inside the minimap."""
        r = self.rect(viewport)
        if r.isEmpty():
            return QPointF()
        fx = min(max((pos.x() - r.left()) / r.width(), 0.0), 1.0)
        fy = min(max((pos.y() - r.top()) / r.height(), 0.0), 1.0)
        return QPointF(fx * self._slide.width(), fy * self._slide.height())

    def paint(self, painter: QPainter, viewport: QSize, visible_scene: QRectF) -> None:
        r = self.rect(viewport)
        if r.isEmpty() or self._image is None:
            return
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 20, 20, 170))
        painter.drawRect(r.adjusted(-3, -3, 3, 3))
        painter.drawImage(r, self._image)
        if visible_scene.contains(QRectF(0, 0, self._slide.width(), self._slide.height())):
            return  # the whole slide is on screen: a box around everything says nothing
        sx = r.width() / self._slide.width()
        sy = r.height() / self._slide.height()
        box = QRectF(
            r.left() + visible_scene.left() * sx,
            r.top() + visible_scene.top() * sy,
            visible_scene.width() * sx,
            visible_scene.height() * sy,
        ).intersected(r.adjusted(-1, -1, 1, 1))
        if box.isEmpty():
            return
        pen = QPen(QColor(255, 60, 60), 1.5)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(QColor(255, 60, 60, 35))
        painter.drawRect(box)


def nice_scale_length(units_per_px: float, max_px: float = 160.0) -> float:
    """The longest 1-2-5 x 10^k length (in the units of `units_per_px`) that fits in `max_px` px."""
    if not (units_per_px > 0 and math.isfinite(units_per_px)):
        msg = f"scale must be a positive number of units per px, got {units_per_px}"
        raise ValueError(msg)
    limit = units_per_px * max_px
    exp = math.floor(math.log10(limit))
    best = 10.0**exp
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**exp <= limit * (1 + 1e-9):
            best = m * 10.0**exp
    return best


def format_length(length: float, unit: str) -> str:
    if unit == "µm":
        if length >= 1000:
            return f"{length / 1000:g} mm"
        if length < 1:
            return f"{length * 1000:g} nm"
        return f"{length:g} µm"
    return f"{length:g} {unit}"


class ScaleBarPainter:
    """A 1-2-5 scale bar in µm (level-0 px when the slide has no pixel size), bottom-left."""

    def __init__(self, *, max_px: float = 160.0, margin: int = 12) -> None:
        self.max_px = max_px
        self.margin = margin
        self.visible = True
        self.last_label = ""
        self.last_length_px = 0.0

    def layout(self, scale: float, mpp: float | None) -> tuple[float, str]:
        """(bar length in screen px, label) at `scale` screen px per level-0 px."""
        unit, per_level0 = ("µm", mpp) if mpp else ("px", 1.0)
        units_per_px = per_level0 / scale
        length = nice_scale_length(units_per_px, self.max_px)
        return length / units_per_px, format_length(length, unit)

    def paint(self, painter: QPainter, viewport: QSize, scale: float, mpp: float | None) -> None:
        if not self.visible or scale <= 0:
            return
        bar_px, label = self.layout(scale, mpp)
        self.last_label, self.last_length_px = label, bar_px
        font = QFont(painter.font())
        font.setPointSizeF(max(font.pointSizeF(), 9.0))
        font.setBold(True)
        painter.setFont(font)
        fm = QFontMetricsF(font)
        text_w = fm.horizontalAdvance(label)
        pad = 6.0
        box_w = max(bar_px, text_w) + 2 * pad
        box_h = fm.height() + 6 + 2 * pad
        box = QRectF(self.margin, viewport.height() - self.margin - box_h, box_w, box_h)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 20, 20, 170))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor(255, 255, 255))
        text_rect = QRectF(box.left(), box.top() + pad - 1, box_w, fm.height())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, label)
        y = box.bottom() - pad - 3
        x0 = box.left() + (box_w - bar_px) / 2
        painter.fillRect(QRectF(x0, y, bar_px, 4), QColor(255, 255, 255))
        painter.fillRect(QRectF(x0, y - 3, 1.5, 7), QColor(255, 255, 255))
        painter.fillRect(QRectF(x0 + bar_px - 1.5, y - 3, 1.5, 7), QColor(255, 255, 255))
