"""How cells are coloured: one colour, by class, or by a measurement through a colormap with a range.

Colours are computed for all cells at once as a small palette plus one key per cell (the palette index),
so painting groups cells by key and draws each group with one pen and brush.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QLinearGradient, QPainter

# Anchor colours (position, r, g, b) of the colormaps offered; 256 entries are interpolated from them.
COLORMAPS: dict[str, tuple[tuple[float, int, int, int], ...]] = {
    "viridis": ((0.0, 68, 1, 84), (0.25, 59, 82, 139), (0.5, 33, 145, 140), (0.75, 94, 201, 98), (1.0, 253, 231, 37)),
    "inferno": ((0.0, 0, 0, 4), (0.25, 87, 16, 110), (0.5, 188, 55, 84), (0.75, 249, 142, 9), (1.0, 252, 255, 164)),
    "coolwarm": ((0.0, 59, 76, 192), (0.5, 221, 221, 221), (1.0, 180, 4, 38)),
    "greys": ((0.0, 250, 250, 250), (1.0, 20, 20, 20)),
}
LUT_SIZE = 64  # colours per colormap: cells are drawn in one batch per colour
SINGLE = "single colour"
BY_CLASS = "class"
UNCLASSIFIED = QColor(160, 160, 160)


def colormap_lut(name: str, n: int = LUT_SIZE) -> np.ndarray:
    """(n, 3) uint8 RGB ramp of a named colormap."""
    try:
        anchors = np.array(COLORMAPS[name], dtype=np.float64)
    except KeyError:
        msg = f"unknown colormap {name!r}; expected one of {sorted(COLORMAPS)}"
        raise ValueError(msg) from None
    t = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(t, anchors[:, 0], anchors[:, k]) for k in (1, 2, 3)], axis=1).round().astype(np.uint8)


def lut_index(values: np.ndarray, lo: float, hi: float, n: int = LUT_SIZE) -> np.ndarray:
    """Colormap index (0..n-1) of each value in [lo, hi] (clipped; NaN gets 0)."""
    span = hi - lo if hi > lo else 1.0
    t = np.nan_to_num((values - lo) / span, nan=0.0)
    return np.clip(t * (n - 1), 0, n - 1).round().astype(np.int32)


def auto_range(values: np.ndarray) -> tuple[float, float]:
    """The 1st-99th percentile of the finite values: one outlier must not wash out the rest."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [1, 99]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


@dataclass(frozen=True, slots=True)
class ColourSpec:
    """What the cells look like. `by` is SINGLE, BY_CLASS or a measurement name."""

    by: str = SINGLE
    colormap: str = "viridis"
    lo: float = 0.0
    hi: float = 1.0
    contour: QColor = field(default_factory=lambda: QColor(0, 230, 255))
    contour_width: float = 1.0
    fill_opacity: float = 0.0  # 0: contours only

    def __post_init__(self) -> None:
        if self.colormap not in COLORMAPS:
            msg = f"unknown colormap {self.colormap!r}; expected one of {sorted(COLORMAPS)}"
            raise ValueError(msg)
        if not 0.0 <= self.fill_opacity <= 1.0:
            msg = f"fill opacity must be in 0..1, got {self.fill_opacity}"
            raise ValueError(msg)
        if self.contour_width <= 0:
            msg = f"contour width must be positive, got {self.contour_width}"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, object]:
        return {
            "by": self.by,
            "colormap": self.colormap,
            "lo": self.lo,
            "hi": self.hi,
            "contour": self.contour.name(),
            "contour_width": self.contour_width,
            "fill_opacity": self.fill_opacity,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ColourSpec:
        return cls(
            by=str(data.get("by", SINGLE)),
            colormap=str(data.get("colormap", "viridis")),
            lo=float(data.get("lo", 0.0)),  # type: ignore[arg-type]
            hi=float(data.get("hi", 1.0)),  # type: ignore[arg-type]
            contour=QColor(str(data.get("contour", "#00e6ff"))),
            contour_width=float(data.get("contour_width", 1.0)),  # type: ignore[arg-type]
            fill_opacity=float(data.get("fill_opacity", 0.0)),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class CellColours:
    """`palette[keys[i]]` is cell i's colour."""

    palette: list[QColor]
    keys: np.ndarray  # int32 per cell


def cell_colours(
    spec: ColourSpec,
    *,
    values: np.ndarray | None,
    class_index: np.ndarray,
    class_colours: list[QColor],
) -> CellColours:
    """Palette and per-cell keys for `spec`. `values`: the measurement column when `spec.by` names one;
    `class_index`: each cell's class (-1 unclassified) with `class_colours` per class."""
    n = len(class_index)
    if spec.by == SINGLE:
        return CellColours([QColor(spec.contour)], np.zeros(n, dtype=np.int32))
    if spec.by == BY_CLASS:
        # key 0 is "unclassified", class k is key k + 1
        return CellColours([UNCLASSIFIED, *class_colours], (class_index + 1).astype(np.int32))
    if values is None:
        msg = f"colour by {spec.by!r} needs that measurement's values"
        raise ValueError(msg)
    lut = colormap_lut(spec.colormap)
    return CellColours([QColor(int(r), int(g), int(b)) for r, g, b in lut], lut_index(values, spec.lo, spec.hi))


def legend_image(spec: ColourSpec, class_names: list[str], class_colours: list[QColor], *, width: int = 220) -> QImage:
    """A legend for `spec`: a colour bar with its range, or one swatch per class."""
    font = QFont()
    font.setPointSize(9)
    if spec.by == BY_CLASS:
        rows = [("Unclassified", UNCLASSIFIED), *zip(class_names, class_colours, strict=True)]
        height = 22 + 18 * len(rows)
    else:
        rows = []
        height = 58 if spec.by != SINGLE else 40
    image = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(255, 255, 255, 225))
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.setFont(font)
    p.setPen(QColor(20, 20, 20))
    title = "Cells" if spec.by == SINGLE else ("Class" if spec.by == BY_CLASS else spec.by)
    p.drawText(QRectF(8, 2, width - 16, 18), Qt.AlignmentFlag.AlignVCenter, title)
    if spec.by == SINGLE:
        p.fillRect(QRectF(8, 22, 24, 12), spec.contour)
        p.drawText(QRectF(38, 20, width - 46, 16), Qt.AlignmentFlag.AlignVCenter, "all cells")
    elif spec.by == BY_CLASS:
        for i, (name, colour) in enumerate(rows):
            y = 22 + 18 * i
            p.fillRect(QRectF(8, y + 2, 24, 12), colour)
            p.drawText(QRectF(38, y, width - 46, 16), Qt.AlignmentFlag.AlignVCenter, name)
    else:
        gradient = QLinearGradient(8, 0, width - 8, 0)
        for i, (r, g, b) in enumerate(colormap_lut(spec.colormap, 16)):
            gradient.setColorAt(i / 15, QColor(int(r), int(g), int(b)))
        p.fillRect(QRectF(8, 22, width - 16, 14), gradient)
        p.drawText(QRectF(8, 38, width / 2, 16), Qt.AlignmentFlag.AlignLeft, f"{spec.lo:.4g}")
        p.drawText(QRectF(width / 2, 38, width / 2 - 8, 16), Qt.AlignmentFlag.AlignRight, f"{spec.hi:.4g}")
    p.end()
    return image
