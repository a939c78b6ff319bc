"""Canvas items: job nodes with ports, dependency and FIFO edges, branch lanes."""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsSceneHoverEvent,
    QGraphicsSceneMouseEvent,
    QStyle,
    QStyleOptionGraphicsItem,
    QWidget,
)

from wsidesk.gui.graph_editor.model import LANE_H, NODE_H, NODE_W

if TYPE_CHECKING:
    from wsidesk.gui.graph_editor.scene import WorkflowScene

TYPE_COLOURS = {"tissue": QColor("#2e9e74"), "segment": QColor("#3f6fd8"), "export": QColor("#8e5bc7")}
# Node body fill per run state; None means the normal white body.
STATE_COLOURS = {
    "pending": QColor("#e3e5e8"),
    "queued": QColor("#e3e5e8"),
    "running": QColor("#ffe27a"),
    "succeeded": QColor("#a8e6a3"),
    "failed": QColor("#f4a3a3"),
    "skipped": QColor("#eceef1"),
    "cancelled": QColor("#cfd2d6"),
    "waiting": QColor("#bfe1fb"),
}
STATE_OPACITY = {"skipped": 0.45, "cancelled": 0.6}
LANE_COLOURS = [QColor(c) for c in ("#e8f0fe", "#e6f4ea", "#fef7e0", "#fce8e6", "#f3e8fd", "#e0f7fa")]
INK = QColor("#263238")
MUTED = QColor("#3d4b57")  # captions: dark enough to read at the fitted (zoomed-out) scale
SELECTED = QColor("#1e88e5")
WARN = QColor("#c0392b")
PORT_R = 6.0
HEADER_W = 150.0  # lane header column, left of x = 0


def _font(size: float, *, bold: bool = False, italic: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(size)
    font.setBold(bold)
    font.setItalic(italic)
    return font


class PortItem(QGraphicsItem):
    """A node's input (left) or output (right) port; dragging from it draws a new edge."""

    def __init__(self, node: NodeItem, *, output: bool) -> None:
        super().__init__(node)
        self.node = node
        self.output = output
        self._hovered = False
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setPos(NODE_W if output else 0.0, NODE_H / 2)
        self.setZValue(2)
        self.setToolTip(
            "drag to a job that must wait for this one" if output else "drag to a job this one must wait for"
        )

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        r = PORT_R + 4  # a larger hit area than the drawn dot
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(INK, 1.4))
        painter.setBrush(SELECTED if self._hovered else QColor("white"))
        painter.drawEllipse(QPointF(0, 0), PORT_R, PORT_R)

    def hoverEnterEvent(self, event: QGraphicsSceneHoverEvent) -> None:  # noqa: N802
        self._hovered = True
        self.update()

    def hoverLeaveEvent(self, event: QGraphicsSceneHoverEvent) -> None:  # noqa: N802
        self._hovered = False
        self.update()

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._scene().begin_connection(self)
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        self._scene().update_connection(event.scenePos())

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        self._scene().finish_connection(event.scenePos())

    def _scene(self) -> WorkflowScene:
        return self.scene()  # type: ignore[return-value]


class NodeItem(QGraphicsItem):
    """One job: rounded box with its id, a type badge, its image and its state or problem."""

    def __init__(self, uid: int) -> None:
        super().__init__()
        self.uid = uid
        self.job_id = ""
        self.job_type = "segment"
        self.subtitle = ""
        self.problems: list[str] = []
        self.state: str | None = None
        self.edges: list[EdgeItem] = []
        self.setFlags(
            QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self.setAcceptHoverEvents(True)
        self.setZValue(10)
        self.input_port = PortItem(self, output=False)
        self.output_port = PortItem(self, output=True)

    def set_job(self, job_id: str, job_type: str, subtitle: str, problems: list[str]) -> None:
        self.job_id, self.job_type, self.subtitle, self.problems = (job_id, job_type, subtitle, problems)
        tip = [f"{job_id} ({job_type})", subtitle, *[f"⚠ {p}" for p in problems]]
        self.setToolTip("\n".join(t for t in tip if t))
        self.update()

    def set_state(self, state: str | None) -> None:
        self.state = state
        self.setOpacity(STATE_OPACITY.get(state or "", 1.0))
        self.update()

    def fill_colour(self) -> QColor:
        return STATE_COLOURS.get(self.state or "", QColor("white"))

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-3, -3, NODE_W + 6, NODE_H + 6)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(QRectF(0, 0, NODE_W, NODE_H), 9, 9)
        return path

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        rect = QRectF(0, 0, NODE_W, NODE_H)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        accent = TYPE_COLOURS.get(self.job_type, MUTED)
        # Soft shadow, body, then a type-coloured stripe on the left.
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 28))
        painter.drawRoundedRect(rect.translated(0, 2), 9, 9)
        painter.setBrush(self.fill_colour())
        painter.setPen(QPen(SELECTED, 2.6) if selected else QPen(QColor("#8a96a3"), 1.1))
        painter.drawRoundedRect(rect, 9, 9)
        stripe = QPainterPath()
        stripe.addRoundedRect(QRectF(0, 0, 14, NODE_H), 9, 9)
        clip = QPainterPath()
        clip.addRect(QRectF(0, 0, 6, NODE_H))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(accent)
        painter.drawPath(stripe.intersected(clip))

        # Type badge, top right.
        badge_font = _font(8.5, bold=True)
        fm = QFontMetricsF(badge_font)
        text = self.job_type.upper()
        bw = fm.horizontalAdvance(text) + 12
        badge = QRectF(NODE_W - bw - 8, 8, bw, 19)
        painter.setBrush(accent)
        painter.drawRoundedRect(badge, 9.5, 9.5)
        painter.setFont(badge_font)
        painter.setPen(QColor("white"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)

        left = 16.0
        title_font = _font(10.5, bold=True)
        painter.setFont(title_font)
        painter.setPen(INK)
        title_w = badge.left() - left - 6
        title = QFontMetricsF(title_font).elidedText(self.job_id, Qt.TextElideMode.ElideRight, title_w)
        painter.drawText(
            QRectF(left, 6, title_w, 22), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title
        )

        sub_font = _font(10)
        painter.setFont(sub_font)
        painter.setPen(MUTED)
        sub = QFontMetricsF(sub_font).elidedText(self.subtitle, Qt.TextElideMode.ElideMiddle, NODE_W - left - 12)
        painter.drawText(
            QRectF(left, 29, NODE_W - left - 12, 20), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, sub
        )

        if self.state:
            painter.setFont(_font(10, bold=True))
            painter.setPen(INK)
            painter.drawText(
                QRectF(left, 51, NODE_W - left - 12, 20),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                f"● {self.state}",
            )
        elif self.problems:
            painter.setFont(_font(9.5, italic=True))
            painter.setPen(WARN)
            painter.drawText(
                QRectF(left, 51, NODE_W - left - 12, 20),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                f"⚠ {self.problems[0]}",
            )

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            for edge in self.edges:
                edge.update_path()
        return super().itemChange(change, value)


class EdgeItem(QGraphicsPathItem):
    """A dependency (`depends_on`, selectable, curved) or a FIFO step (dashed, straight)."""

    def __init__(self, source: NodeItem, target: NodeItem, *, fifo: bool) -> None:
        super().__init__()
        self.source = source
        self.target = target
        self.fifo = fifo
        self._hovered = False
        source.edges.append(self)
        target.edges.append(self)
        if fifo:
            self.setZValue(4)
            self.setToolTip("branch order: runs after the previous job of its branch")
        else:
            self.setZValue(6)
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
            self.setAcceptHoverEvents(True)
            self.setToolTip(f"{target.job_id} depends on {source.job_id} (Del removes)")
        self.update_path()

    def detach(self) -> None:
        for node in (self.source, self.target):
            if self in node.edges:
                node.edges.remove(self)

    @property
    def key(self) -> tuple[int, int]:
        return self.source.uid, self.target.uid

    def update_path(self) -> None:
        p1 = self.source.output_port.scenePos()
        p2 = self.target.input_port.scenePos() - QPointF(PORT_R + 1, 0)
        path = QPainterPath(p1)
        if self.fifo:
            path.lineTo(p2)
        elif abs(p1.y() - p2.y()) < 1 and p2.x() > p1.x():
            # Same lane: arc above the FIFO arrow and the nodes in between.
            lift = min(NODE_H / 2 + 24, LANE_H / 2 - 4)
            dx = max(30.0, (p2.x() - p1.x()) * 0.25)
            path.cubicTo(p1 + QPointF(dx, -lift * 1.33), p2 + QPointF(-dx, -lift * 1.33), p2)
        else:
            span = p2.x() - p1.x()
            # Forward edges bend gently; backward ones loop out far enough to stay readable.
            dx = min(max(span * 0.5, 40.0), 160.0) if span > 0 else max(90.0, -span * 0.35)
            path.cubicTo(p1 + QPointF(dx, 0), p2 - QPointF(dx, 0), p2)
        self.prepareGeometryChange()
        self.setPath(path)

    def _pen(self) -> QPen:
        if self.fifo:
            pen = QPen(QColor("#9aa5b1"), 1.6, Qt.PenStyle.DashLine)
        elif self.isSelected():
            pen = QPen(SELECTED, 3.0)
        else:
            pen = QPen(QColor("#455a64"), 2.6 if self._hovered else 1.9)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        return pen

    def boundingRect(self) -> QRectF:  # noqa: N802
        return super().boundingRect().adjusted(-12, -12, 12, 12)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(12)
        return stroker.createStroke(self.path())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = self._pen()
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())
        # Arrowhead along the curve's direction at its end.
        path = self.path()
        tip = path.pointAtPercent(1.0)
        back = path.pointAtPercent(0.97 if not self.fifo else 0.9)
        direction = tip - back
        length = (direction.x() ** 2 + direction.y() ** 2) ** 0.5 or 1.0
        ux, uy = direction.x() / length, direction.y() / length
        size = 9.0 if not self.fifo else 7.0
        base = tip - QPointF(ux * size, uy * size)
        normal = QPointF(-uy * size * 0.55, ux * size * 0.55)
        painter.setPen(QPen(pen.color(), 1.0))
        painter.setBrush(QBrush(pen.color()))
        painter.drawPolygon(QPolygonF([tip, base + normal, base - normal]))

    def hoverEnterEvent(self, event: QGraphicsSceneHoverEvent) -> None:  # noqa: N802
        self._hovered = True
        self.update()

    def hoverLeaveEvent(self, event: QGraphicsSceneHoverEvent) -> None:  # noqa: N802
        self._hovered = False
        self.update()


class BranchLaneItem(QGraphicsItem):
    """A branch as a coloured horizontal band with its name; its jobs sit on it in order."""

    def __init__(
        self, name: str, index: int, job_count: int, *, current: bool, left: float, right: float, top: float
    ) -> None:
        super().__init__()
        self.name = name
        self.index = index
        self.job_count = job_count
        self.current = current
        self._rect = QRectF(left, top, right - left, LANE_H)
        self.setZValue(-10)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)  # clicks reach the rubber band
        self.setToolTip(f"branch {name}: its jobs run one at a time, left to right")

    @property
    def colour(self) -> QColor:
        return LANE_COLOURS[self.index % len(LANE_COLOURS)]

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._rect.adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self._rect
        colour = self.colour
        edge = colour.darker(125 if not self.current else 165)
        painter.setPen(QPen(edge, 2.0 if self.current else 1.0))
        painter.setBrush(colour)
        painter.drawRoundedRect(rect, 10, 10)
        header = QRectF(rect.left(), rect.top(), HEADER_W, rect.height())
        path = QPainterPath()
        path.addRoundedRect(header.adjusted(1, 1, 0, -1), 9, 9)
        clip = QPainterPath()
        clip.addRect(header)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour.darker(106))
        painter.drawPath(path.intersected(clip))
        painter.setPen(QPen(edge, 1.0))
        painter.drawLine(header.topRight() + QPointF(0, 8), header.bottomRight() - QPointF(0, 8))

        name_font = _font(10.5, bold=True)
        painter.setFont(name_font)
        painter.setPen(INK)
        text_rect = header.adjusted(14, 0, -10, 0)
        name = QFontMetricsF(name_font).elidedText(self.name, Qt.TextElideMode.ElideRight, text_rect.width())
        painter.drawText(
            text_rect.adjusted(0, 0, 0, -16), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name
        )
        painter.setFont(_font(10))
        painter.setPen(MUTED)
        count = f"{self.job_count} job" + ("s" if self.job_count != 1 else "")
        painter.drawText(
            text_rect.adjusted(0, 20, 0, 0),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            count + (" · current" if self.current else ""),
        )
        if self.job_count == 0:
            painter.setFont(_font(10.5, italic=True))
            painter.drawText(
                QRectF(rect.left() + HEADER_W + 20, rect.top(), 400, rect.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                "empty branch: add a job from the toolbar or drag one here",
            )


def image_label(image: str | None, job_type: str, deps: int) -> str:
    if job_type == "export":
        return f"exports {deps} job" + ("s" if deps != 1 else "")
    return PurePath(image).name if image else "no image"
