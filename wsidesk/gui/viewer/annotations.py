"""Annotations on the slide view: the undoable model, the layer that draws them and the drawing tools.

The model holds core `Annotation` values; every change is a QUndoCommand that swaps one value for
another, so undo and redo are exact. The layer is one scene item that paints every region with a
cosmetic pen (cheap at any zoom); the tool turns mouse events on the view into new or edited regions.
Drawing appends to one QPainterPath and repaints only the stroke's neighbourhood, so a 2,000-vertex
freehand region costs the same per mouse move as a 20-vertex one.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPainterPath, QPen, QUndoCommand, QUndoStack
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject, QStyleOptionGraphicsItem, QWidget
from shapely.geometry import MultiPolygon, Polygon

from wsidesk.core.annotations import Annotation, AnnotationError, clean_region
from wsidesk.gui.viewer.overlays import polygons_to_qpolygonf

logger = logging.getLogger(__name__)

TOOLS = ("select", "rectangle", "ellipse", "polygon", "freehand")
# QuPath's keys for the same tools (M is its Move tool); pressed over the slide view.
TOOL_KEYS = {
    Qt.Key.Key_M: "select",
    Qt.Key.Key_R: "rectangle",
    Qt.Key.Key_E: "ellipse",
    Qt.Key.Key_P: "polygon",
    Qt.Key.Key_F: "freehand",
}
PALETTE = ((255, 200, 0), (230, 60, 60), (60, 160, 255), (80, 200, 120), (200, 90, 220), (255, 140, 40))
ELLIPSE_VERTICES = 72
HANDLE_PX = 6  # vertex handles and the distance that picks one, in screen px
MIN_STEP_PX = 1.5  # a freehand point closer than this to the last one (screen px) adds nothing
CLOSE_PX = 8  # a polygon click this close to its first vertex closes it


# -- the model ---------------------------------------------------------------------------------------------
class AnnotationModel(QObject):
    """The open slide's annotations, in drawing order, with an undo stack and one selected region."""

    changed = Signal()  # any region added, removed or changed
    selection_changed = Signal(str)  # id of the selected region, "" for none

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[Annotation] = []
        self._selected = ""
        self.undo_stack = QUndoStack(self)

    # -- reading --
    def annotations(self) -> list[Annotation]:
        return list(self._items)

    def get(self, annotation_id: str) -> Annotation | None:
        return next((a for a in self._items if a.id == annotation_id), None)

    def names(self) -> list[str]:
        return [a.name for a in self._items]

    @property
    def selected(self) -> str:
        return self._selected

    def select(self, annotation_id: str) -> None:
        if annotation_id != self._selected:
            self._selected = annotation_id
            self.selection_changed.emit(annotation_id)

    def next_name(self, stem: str = "Region") -> str:
        taken = set(self.names())
        return next(f"{stem} {n}" for n in itertools.count(len(self._items) + 1) if f"{stem} {n}" not in taken)

    def next_color(self) -> tuple[int, int, int]:
        return PALETTE[len(self._items) % len(PALETTE)]

    # -- whole-list changes (not undoable: a slide was opened or closed) --
    def reset(self, annotations: Iterable[Annotation]) -> None:
        self._items = list(annotations)
        self.undo_stack.clear()
        self.select("")
        self.changed.emit()

    # -- undoable edits --
    def add(self, annotation: Annotation) -> None:
        self.undo_stack.push(_AddCommand(self, annotation, len(self._items)))

    def add_many(self, annotations: Sequence[Annotation], text: str) -> None:
        self.undo_stack.beginMacro(text)
        for a in annotations:
            self.add(a)
        self.undo_stack.endMacro()

    def remove(self, annotation_id: str) -> None:
        index = next((i for i, a in enumerate(self._items) if a.id == annotation_id), None)
        if index is not None:
            self.undo_stack.push(_RemoveCommand(self, self._items[index], index))

    def replace(self, new: Annotation, text: str) -> None:
        old = self.get(new.id)
        if old is not None:
            self.undo_stack.push(_ReplaceCommand(self, old, new, text))

    # -- what the undo commands call (not undoable themselves) --
    def insert_at(self, annotation: Annotation, index: int) -> None:
        self._items.insert(index, annotation)
        self.changed.emit()
        self.select(annotation.id)

    def take(self, annotation_id: str) -> None:
        self._items = [a for a in self._items if a.id != annotation_id]
        if self._selected == annotation_id:
            self.select("")
        self.changed.emit()

    def put(self, annotation: Annotation) -> None:
        self._items = [annotation if a.id == annotation.id else a for a in self._items]
        self.changed.emit()


class _AddCommand(QUndoCommand):
    def __init__(self, model: AnnotationModel, annotation: Annotation, index: int) -> None:
        super().__init__(f"Add {annotation.name}")
        self._model, self._annotation, self._index = model, annotation, index

    def redo(self) -> None:
        self._model.insert_at(self._annotation, self._index)

    def undo(self) -> None:
        self._model.take(self._annotation.id)


class _RemoveCommand(QUndoCommand):
    def __init__(self, model: AnnotationModel, annotation: Annotation, index: int) -> None:
        super().__init__(f"Delete {annotation.name}")
        self._model, self._annotation, self._index = model, annotation, index

    def redo(self) -> None:
        self._model.take(self._annotation.id)

    def undo(self) -> None:
        self._model.insert_at(self._annotation, self._index)


class _ReplaceCommand(QUndoCommand):
    def __init__(self, model: AnnotationModel, old: Annotation, new: Annotation, text: str) -> None:
        super().__init__(text)
        self._model, self._old, self._new = model, old, new

    def redo(self) -> None:
        self._model.put(self._new)

    def undo(self) -> None:
        self._model.put(self._old)


# -- geometry helpers ----------------------------------------------------------------------------------------
def rings_of(geometry: Polygon | MultiPolygon) -> list[np.ndarray]:
    """Every ring (exteriors and holes) as an open (N, 2) array: what vertex editing moves."""
    out = []
    for polygon in shapely.get_parts(geometry):
        for ring in (polygon.exterior, *polygon.interiors):
            out.append(np.asarray(ring.coords)[:-1, :2].copy())
    return out


def from_rings(template: Polygon | MultiPolygon, rings: list[np.ndarray]) -> Polygon | MultiPolygon:
    """The geometry `template` had, with its rings (in `rings_of` order) replaced."""
    it = iter(rings)
    polygons = [Polygon(next(it), [next(it) for _ in p.interiors]) for p in shapely.get_parts(template)]
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def painter_path(geometry: Polygon | MultiPolygon) -> QPainterPath:
    """A QPainterPath of a region (odd-even fill, so holes stay empty); rings copied in with numpy."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.OddEvenFill)
    for polygon in polygons_to_qpolygonf([r for r in rings_of(geometry) if len(r)]):
        path.addPolygon(polygon)
        path.closeSubpath()
    return path


def ellipse_polygon(x0: float, y0: float, x1: float, y1: float, vertices: int = ELLIPSE_VERTICES) -> Polygon:
    t = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
    return Polygon(np.column_stack((cx + rx * np.cos(t), cy + ry * np.sin(t))))


# -- the layer -------------------------------------------------------------------------------------------------
class AnnotationLayer(QGraphicsObject):
    """Draws the model's regions, the selected one's vertex handles, and the shape being drawn."""

    def __init__(self, model: AnnotationModel, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._paths: dict[str, tuple[Annotation, QPainterPath, np.ndarray]] = {}  # value, path, its vertices
        self._bounds = QRectF()
        self.preview = QPainterPath()  # the stroke or outline being drawn, level-0 px
        self.hidden = ""  # id of the region being moved: its preview stands in for it
        self.preview_color = QColor(255, 255, 255)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        model.changed.connect(self._on_changed)
        model.selection_changed.connect(lambda _: self.update())

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return QRectF(self._bounds)

    def set_extent(self, width: float, height: float) -> None:
        """Regions are clipped to the slide, so the slide (plus a margin for handles) bounds the layer."""
        self.prepareGeometryChange()
        self._bounds = QRectF(-64, -64, width + 128, height + 128)

    def path(self, annotation_id: str) -> QPainterPath | None:
        entry = self._paths.get(annotation_id)
        return None if entry is None else entry[1]

    def _on_changed(self) -> None:
        # Paths are rebuilt only for regions whose value changed (values are immutable: identity says it).
        fresh: dict[str, tuple[Annotation, QPainterPath, np.ndarray]] = {}
        for a in self.model.annotations():
            old = self._paths.get(a.id)
            if old is not None and old[0] is a:
                fresh[a.id] = old
            else:
                fresh[a.id] = (a, painter_path(a.geometry), np.concatenate(rings_of(a.geometry)))
        self._paths = fresh
        self.update()

    def set_preview(self, path: QPainterPath, dirty: QRectF | None = None) -> None:
        self.preview = path
        self.update(dirty if dirty is not None else self._bounds)

    def _screen_px(self) -> float:
        """Level-0 px per screen px in the view showing the layer."""
        scene = self.scene()
        views = scene.views() if scene is not None else []
        scale = views[0].transform().m11() if views else 1.0
        return 1.0 / scale if scale > 0 else 1.0

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        exposed = option.exposedRect if not option.exposedRect.isEmpty() else self._bounds
        selected = self.model.selected
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for annotation_id, (a, path, _) in self._paths.items():
            if annotation_id == self.hidden or not path.controlPointRect().intersects(exposed):
                continue
            color = QColor(*a.color)
            is_selected = annotation_id == selected
            # Outlines only, aliased, 2 px (the selected one 3 px): 1 px is too faint on tissue, and measured
            # on a 2,000-vertex region across a 1400x900 view a 2 px antialiased pen strokes it in 73 ms,
            # a 2 or 3 px aliased one in 10-11 ms (filling it costs more than any of these).
            pen = QPen(color, 3.0 if is_selected else 2.0)
            pen.setCosmetic(True)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            painter.setPen(pen)
            painter.drawPath(path)
        if selected and (entry := self._paths.get(selected)) is not None:
            self._paint_handles(painter, entry[2], exposed)
        if not self.preview.isEmpty():
            # Solid, 1 px, aliased: the raster engine's fast path, since the preview repaints on every mouse
            # move (a dash pattern or antialiasing is laid along the whole 2,000-vertex path each time).
            pen = QPen(self.preview_color, 0)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)  # the handles left a white brush
            painter.drawPath(self.preview)

    def _paint_handles(self, painter: QPainter, vertices: np.ndarray, exposed: QRectF) -> None:
        px = self._screen_px()
        inside = (
            (vertices[:, 0] >= exposed.left())
            & (vertices[:, 0] <= exposed.right())
            & (vertices[:, 1] >= exposed.top())
            & (vertices[:, 1] <= exposed.bottom())
        )
        shown = vertices[inside]
        if len(shown) < 2:
            return
        # Handles only where they are far enough apart to grab one: a zoomed-out freehand is a line.
        spacing = np.median(np.hypot(*np.diff(shown, axis=0).T)) / px
        if spacing < 2 * HANDLE_PX or len(shown) > 4000:
            return
        half = HANDLE_PX / 2 * px
        pen = QPen(QColor(30, 30, 30), 1.0)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(QColor(255, 255, 255))
        painter.drawRects([QRectF(x - half, y - half, 2 * half, 2 * half) for x, y in shown.tolist()])


# -- the tools -------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Drag:
    """A move or a vertex edit in progress on one region."""

    annotation: Annotation
    start: QPointF
    ring: int = -1  # -1: move the whole region
    vertex: int = -1
    rings: list[np.ndarray] | None = None  # the region's rings, for a vertex edit


class AnnotationTool(QObject):
    """Turns mouse and key events on a SlideView into regions (see `SlideView.interaction`).

    Tools: select (click picks a region, drag moves it or one of its vertices, empty drags pan),
    rectangle, ellipse, freehand (press, drag, release) and polygon (click vertices; double-click,
    Enter or a click on the first vertex closes it; Esc cancels, Backspace drops the last vertex).
    After a shape is finished the tool returns to select, with the new region selected.
    """

    tool_changed = Signal(str)
    message = Signal(str)  # repairs, refusals: for the status bar

    def __init__(self, view: QObject, model: AnnotationModel, layer: AnnotationLayer) -> None:
        super().__init__(view)
        self.view = view  # a SlideView; typed loosely to keep this module free of an import cycle
        self.model = model
        self.layer = layer
        self._tool = "select"
        self._points: list[tuple[float, float]] = []
        self._anchor: QPointF | None = None
        self._drag: _Drag | None = None

    # -- state --
    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            msg = f"unknown annotation tool {tool!r}; choose one of {', '.join(TOOLS)}"
            raise ValueError(msg)
        self.cancel()
        self._tool = tool
        self.view.setDragMode(  # type: ignore[attr-defined]
            self.view.DragMode.ScrollHandDrag if tool == "select" else self.view.DragMode.NoDrag  # type: ignore[attr-defined]
        )
        self.view.viewport().setCursor(  # type: ignore[attr-defined]
            Qt.CursorShape.ArrowCursor if tool == "select" else Qt.CursorShape.CrossCursor
        )
        self.tool_changed.emit(tool)

    @property
    def drawing(self) -> bool:
        return bool(self._points) or self._anchor is not None

    def cancel(self) -> None:
        self._points.clear()
        self._anchor = None
        self._drag = None
        self.layer.hidden = ""
        self.layer.set_preview(QPainterPath())

    def _slide_size(self) -> tuple[int, int] | None:
        reader = self.view.reader  # type: ignore[attr-defined]
        return None if reader is None else tuple(reader.dimensions)

    def _px(self) -> float:
        scale = self.view.scale_factor()  # type: ignore[attr-defined]
        return 1.0 / scale if scale > 0 else 1.0

    def _level0(self, event: QMouseEvent) -> QPointF:
        return self.view.map_to_level0(event.position())  # type: ignore[attr-defined, no-any-return]

    # -- events from the view: True when handled --
    def mouse_press(self, event: QMouseEvent) -> bool:
        if self._slide_size() is None or event.button() != Qt.MouseButton.LeftButton:
            return False
        p = self._level0(event)
        if self._tool == "select":
            return self._press_select(p)
        self.layer.preview_color = QColor(*self.model.next_color())  # the colour the region will have
        if self._tool == "polygon":
            self._polygon_click(p)
        elif self._tool == "freehand":
            self._points = [(p.x(), p.y())]
            path = QPainterPath(p)
            self.layer.set_preview(path)
        else:  # rectangle, ellipse
            self._anchor = p
        return True

    def mouse_move(self, event: QMouseEvent) -> bool:
        p = self._level0(event)
        if self._drag is not None:
            self._drag_to(p)
            return True
        if self._tool == "freehand" and self._points:
            last = self._points[-1]
            if math.hypot(p.x() - last[0], p.y() - last[1]) >= MIN_STEP_PX * self._px():
                self._points.append((p.x(), p.y()))
                path = self.layer.preview
                path.lineTo(p)
                pad = 4 * self._px()
                dirty = QRectF(QPointF(*last), p).normalized().adjusted(-pad, -pad, pad, pad)
                self.layer.set_preview(path, dirty)
            return True
        if self._anchor is not None:
            self.layer.set_preview(self._shape_path(self._anchor, p))
            return True
        if self._tool == "polygon" and self._points:
            path = QPainterPath(QPointF(*self._points[0]))
            for x, y in self._points[1:]:
                path.lineTo(x, y)
            path.lineTo(p)
            self.layer.set_preview(path)
            return True
        return self._tool != "select"

    def mouse_release(self, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        p = self._level0(event)
        if self._drag is not None:
            self._finish_drag(p)
            return True
        if self._tool == "freehand" and self._points:
            self._points.append((p.x(), p.y()))
            points, self._points = self._points, []
            self._finish(Polygon(points) if len(points) >= 3 else Polygon())
            return True
        if self._anchor is not None:
            a, self._anchor = self._anchor, None
            x0, y0, x1, y1 = a.x(), a.y(), p.x(), p.y()
            if self._tool == "ellipse":
                shape = ellipse_polygon(x0, y0, x1, y1)
            else:
                shape = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            self._finish(shape)
            return True
        return self._tool != "select"

    def mouse_double_click(self, event: QMouseEvent) -> bool:
        if self._tool == "polygon" and len(self._points) >= 3:
            self._close_polygon()
            return True
        return False

    def key_press(self, event: QKeyEvent) -> bool:
        key = event.key()
        plain = event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
        if plain and not self.drawing and (tool := TOOL_KEYS.get(Qt.Key(key))) is not None:
            self.set_tool(tool)
            return True
        if key == Qt.Key.Key_Escape and (self.drawing or self._tool != "select"):
            self.cancel()
            self.set_tool("select")
            return True
        if self._tool == "polygon" and self._points:
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._close_polygon()
                return True
            if key == Qt.Key.Key_Backspace:
                self._points.pop()
                self.layer.set_preview(QPainterPath())
                return True
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.model.selected:
            self.model.remove(self.model.selected)
            return True
        return False

    # -- drawing --
    def _shape_path(self, a: QPointF, b: QPointF) -> QPainterPath:
        path = QPainterPath()
        rect = QRectF(a, b).normalized()
        if self._tool == "ellipse":
            path.addEllipse(rect)
        else:
            path.addRect(rect)
        return path

    def _polygon_click(self, p: QPointF) -> None:
        if len(self._points) >= 3:
            first = self._points[0]
            if math.hypot(p.x() - first[0], p.y() - first[1]) <= CLOSE_PX * self._px():
                self._close_polygon()
                return
        self._points.append((p.x(), p.y()))

    def _close_polygon(self) -> None:
        points = list(dict.fromkeys(self._points))  # a double-click also clicked: drop repeated vertices
        self._points = []
        self._finish(Polygon(points) if len(points) >= 3 else Polygon())

    def _finish(self, shape: Polygon) -> None:
        """A drawn shape becomes a region (repaired or refused with a message); back to select."""
        self.layer.set_preview(QPainterPath())
        name = self.model.next_name()
        try:
            region, notes = clean_region(name, shape, self._slide_size())
        except AnnotationError as exc:
            self.message.emit(str(exc))
            self.set_tool("select")
            return
        self.model.add(Annotation(name, region, color=self.model.next_color()))
        for note in notes:
            self.message.emit(note)
        self.set_tool("select")

    # -- selecting, moving, editing vertices --
    def _press_select(self, p: QPointF) -> bool:
        hit = self._vertex_at(p)
        if hit is not None:
            ring, vertex = hit
            annotation = self.model.get(self.model.selected)
            assert annotation is not None
            self._drag = _Drag(annotation, p, ring, vertex, rings_of(annotation.geometry))
            self.layer.preview_color = QColor(*annotation.color)
            return True
        for a in reversed(self.model.annotations()):  # the one drawn last is on top
            path = self.layer.path(a.id)
            if path is not None and path.contains(p):
                self.model.select(a.id)
                self._drag = _Drag(a, p)
                self.layer.preview_color = QColor(*a.color)
                return True
        self.model.select("")
        return False  # the view pans

    def _vertex_at(self, p: QPointF) -> tuple[int, int] | None:
        annotation = self.model.get(self.model.selected)
        if annotation is None:
            return None
        best: tuple[float, int, int] | None = None
        for r, ring in enumerate(rings_of(annotation.geometry)):
            d = np.hypot(ring[:, 0] - p.x(), ring[:, 1] - p.y())
            i = int(np.argmin(d))
            if best is None or d[i] < best[0]:
                best = (float(d[i]), r, i)
        if best is None or best[0] > HANDLE_PX * self._px():
            return None
        return best[1], best[2]

    def _dragged_geometry(self, drag: _Drag, p: QPointF) -> Polygon | MultiPolygon:
        dx, dy = p.x() - drag.start.x(), p.y() - drag.start.y()
        geometry = drag.annotation.geometry
        if drag.ring < 0:
            moved = shapely.transform(geometry, lambda xy: xy + np.array([dx, dy]))
            assert isinstance(moved, Polygon | MultiPolygon)
            return moved
        rings = [r.copy() for r in drag.rings or rings_of(geometry)]
        rings[drag.ring][drag.vertex] = (p.x(), p.y())
        return from_rings(geometry, rings)

    def _drag_to(self, p: QPointF) -> None:
        """Preview without building geometry: the moved outline, or the two edges at the dragged vertex."""
        drag = self._drag
        assert drag is not None
        old = self.layer.preview.controlPointRect()
        if drag.ring < 0:
            path = self.layer.path(drag.annotation.id)
            if path is None:
                return
            preview = path.translated(p.x() - drag.start.x(), p.y() - drag.start.y())
            if self.layer.hidden != drag.annotation.id:  # the first move: the preview takes its place
                self.layer.hidden = drag.annotation.id
                old = old.united(path.controlPointRect())
        else:
            assert drag.rings is not None
            ring = drag.rings[drag.ring]
            before, after = ring[drag.vertex - 1], ring[(drag.vertex + 1) % len(ring)]
            preview = QPainterPath(QPointF(*before))
            preview.lineTo(p)
            preview.lineTo(QPointF(*after))
        pad = 4 * self._px()
        self.layer.set_preview(preview, old.united(preview.controlPointRect()).adjusted(-pad, -pad, pad, pad))

    def _finish_drag(self, p: QPointF) -> None:
        drag, self._drag = self._drag, None
        assert drag is not None
        self.layer.hidden = ""
        self.layer.set_preview(QPainterPath())
        if p == drag.start:
            return  # a click: selected, nothing moved
        geometry = self._dragged_geometry(drag, p)
        try:
            region, notes = clean_region(drag.annotation.name, geometry, self._slide_size())
        except AnnotationError as exc:
            self.message.emit(f"{exc}; the change was not kept")
            return
        what = "Move" if drag.ring < 0 else "Edit vertex of"
        self.model.replace(drag.annotation.with_geometry(region), f"{what} {drag.annotation.name}")
        for note in notes:
            self.message.emit(note)


__all__ = [
    "PALETTE",
    "TOOLS",
    "TOOL_KEYS",
    "AnnotationLayer",
    "AnnotationModel",
    "AnnotationTool",
    "ellipse_polygon",
    "from_rings",
    "painter_path",
    "rings_of",
]
