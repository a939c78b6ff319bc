"""WorkflowScene draws a WorkflowDocument; GraphView is the zoomable, pannable canvas."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QShowEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsSceneMouseEvent,
    QGraphicsView,
    QWidget,
)

from wsidesk.gui.graph_editor.document import WorkflowDocument
from wsidesk.gui.graph_editor.items import (
    HEADER_W,
    SELECTED,
    BranchLaneItem,
    EdgeItem,
    NodeItem,
    PortItem,
    image_label,
)
from wsidesk.gui.graph_editor.model import JOB_STATES, NODE_GAP, NODE_W, lane_top

logger = logging.getLogger(__name__)


class WorkflowScene(QGraphicsScene):
    """Mirrors the document: one NodeItem per job (kept across edits), edges and lanes."""

    current_branch_changed = Signal(str)

    def __init__(self, document: WorkflowDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.nodes: dict[int, NodeItem] = {}
        self.edges: dict[tuple[int, int, bool], EdgeItem] = {}
        self.lanes: list[BranchLaneItem] = []
        self._current_branch: str | None = None
        self._states: dict[str, str] = {}
        self._drag_port: PortItem | None = None
        self._drag_line: QGraphicsPathItem | None = None
        document.changed.connect(self._on_document_changed)
        self.sync()

    # ---- model -> items ---------------------------------------------------------------------

    def _on_document_changed(self) -> None:
        self.sync()

    def sync(self) -> None:
        """Bring every item in line with the document's draft."""
        draft = self.document.draft
        shown = draft.display_positions()
        for uid in [u for u in self.nodes if u not in draft.jobs]:
            node = self.nodes.pop(uid)
            for key in [k for k, e in self.edges.items() if node in (e.source, e.target)]:
                self._remove_edge(key)
            self.removeItem(node)
        for uid, job in draft.jobs.items():
            if uid not in self.nodes:
                self.nodes[uid] = NodeItem(uid)
                self.addItem(self.nodes[uid])
            node = self.nodes[uid]
            node.set_job(
                job.job_id, job.type, image_label(job.image, job.type, len(job.depends_on)), draft.job_problems(uid)
            )
            node.set_state(self._states.get(job.job_id))
            node.setPos(*shown[uid])

        wanted = {(a, b, False) for a, b in draft.edges()}
        wanted |= {(a, b, True) for a, b in draft.fifo_edges()}
        for key in [k for k in self.edges if k not in wanted]:
            self._remove_edge(key)
        for key in wanted - self.edges.keys():
            a, b, fifo = key
            edge = self.edges[key] = EdgeItem(self.nodes[a], self.nodes[b], fifo=fifo)
            self.addItem(edge)
        for edge in self.edges.values():
            edge.update_path()
            if not edge.fifo:
                edge.setToolTip(
                    f"{edge.target.job_id} depends on {edge.source.job_id} (select and press Del to remove)"
                )

        names = [lane.name for lane in draft.branches]
        if self._current_branch not in names:
            self._current_branch = names[0] if names else None
        self._rebuild_lanes(shown)

    def _remove_edge(self, key: tuple[int, int, bool]) -> None:
        edge = self.edges.pop(key)
        edge.detach()
        self.removeItem(edge)

    def _rebuild_lanes(self, shown: Mapping[int, tuple[float, float]]) -> None:
        for lane in self.lanes:
            self.removeItem(lane)
        self.lanes = []
        right = max((x + NODE_W for x, _ in shown.values()), default=0.0) + NODE_GAP
        right = max(right, 760.0)
        for i, branch in enumerate(self.document.draft.branches):
            lane = BranchLaneItem(
                branch.name,
                i,
                len(branch.jobs),
                current=branch.name == self._current_branch,
                left=-HEADER_W - 20,
                right=right,
                top=lane_top(i),
            )
            self.addItem(lane)
            self.lanes.append(lane)
        bounds = QRectF(-HEADER_W - 20, 0, right + HEADER_W + 20, max(lane_top(len(self.lanes)), 140))
        self.setSceneRect(bounds.adjusted(-30, -30, 240, 120))

    # ---- current branch ---------------------------------------------------------------------

    @property
    def current_branch(self) -> str | None:
        return self._current_branch

    def set_current_branch(self, name: str | None) -> None:
        if name == self._current_branch:
            return
        self._current_branch = name
        for lane in self.lanes:
            lane.current = lane.name == name
            lane.update()
        if name is not None:
            self.current_branch_changed.emit(name)

    # ---- run states -------------------------------------------------------------------------

    def set_job_states(self, states: Mapping[str, str | None]) -> None:
        for job_id, state in states.items():
            if state is not None and state not in JOB_STATES:
                msg = f"unknown job state {state!r} for {job_id!r}; use one of {JOB_STATES}"
                raise ValueError(msg)
        for job_id, state in states.items():
            if state is None:
                self._states.pop(job_id, None)
            else:
                self._states[job_id] = state
        for node in self.nodes.values():
            node.set_state(self._states.get(node.job_id))

    def clear_job_states(self) -> None:
        self._states.clear()
        for node in self.nodes.values():
            node.set_state(None)

    def job_state(self, job_id: str) -> str | None:
        return self._states.get(job_id)

    # ---- selection and deletion -------------------------------------------------------------

    def selected_nodes(self) -> list[NodeItem]:
        return [i for i in self.selectedItems() if isinstance(i, NodeItem)]

    def delete_selected(self) -> bool:
        uids = [n.uid for n in self.selected_nodes()]
        edges = [e.key for e in self.selectedItems() if isinstance(e, EdgeItem) and not e.fifo]
        return self.document.remove_items(uids, edges)

    # ---- dragging: moves and new connections ------------------------------------------------

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            for item in self.items(event.scenePos()):
                if isinstance(item, NodeItem | PortItem):
                    node = item if isinstance(item, NodeItem) else item.node
                    draft = self.document.draft
                    self.set_current_branch(draft.branches[draft.lane_of(node.uid)].name)
                    break
                if isinstance(item, BranchLaneItem):
                    self.set_current_branch(item.name)
                    break
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self.commit_moves()

    def commit_moves(self) -> bool:
        """Turn nodes dragged away from where the document puts them into one move command."""
        shown = self.document.draft.display_positions()
        drops = {}
        for uid, node in self.nodes.items():
            x, y = shown[uid]
            if abs(node.pos().x() - x) > 0.5 or abs(node.pos().y() - y) > 0.5:
                drops[uid] = (node.pos().x(), node.pos().y())
        if not drops:
            return False
        if not self.document.move_jobs(drops):
            self.sync()  # refused: snap back
            return False
        return True

    def begin_connection(self, port: PortItem) -> None:
        self._drag_port = port
        self._drag_line = QGraphicsPathItem()
        pen = QPen(SELECTED, 2.0, Qt.PenStyle.DashLine)
        self._drag_line.setPen(pen)
        self._drag_line.setZValue(50)
        self.addItem(self._drag_line)
        self.update_connection(port.scenePos())

    def update_connection(self, pos: QPointF) -> None:
        if self._drag_port is None or self._drag_line is None:
            return
        start = self._drag_port.scenePos()
        sign = 1 if self._drag_port.output else -1
        dx = max(40.0, abs(pos.x() - start.x()) * 0.5) * sign
        path = QPainterPath(start)
        path.cubicTo(start + QPointF(dx, 0), pos - QPointF(dx, 0), pos)
        self._drag_line.setPath(path)

    def finish_connection(self, pos: QPointF) -> bool:
        """End a port drag at `pos`: connect to the job dropped on (its port or its body)."""
        port, line = self._drag_port, self._drag_line
        self._drag_port = self._drag_line = None
        if line is not None:
            self.removeItem(line)
        if port is None:
            return False
        target = None
        for item in self.items(pos):
            if isinstance(item, PortItem):
                target = item.node
                break
            if isinstance(item, NodeItem):
                target = item
                break
        if target is None:
            return False
        return self.connect_nodes(port.node, target, from_output=port.output)

    def connect_nodes(self, source: NodeItem, target: NodeItem, *, from_output: bool) -> bool:
        """What a port drag does: from an output port, `target` comes to wait for `source`."""
        dep, uid = (source.uid, target.uid) if from_output else (target.uid, source.uid)
        return self.document.connect_jobs(dep, uid)


class GraphView(QGraphicsView):
    """Canvas: rubber-band select, wheel zoom, pan with the middle button or Space+drag."""

    MIN_SCALE = 0.2
    MAX_SCALE = 3.0
    READABLE_SCALE = 0.85  # fitting stops here: below it the 10 pt captions shrink to ~6 px

    def __init__(self, scene: WorkflowScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self._fit_pending = False  # a fit asked for while hidden happens when first shown
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setBackgroundBrush(QColor("#f6f7f9"))
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._space_held = False
        self._pan_from: QPointF | None = None

    def workflow_scene(self) -> WorkflowScene:
        return self.scene()  # type: ignore[return-value]

    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        target = min(max(self.zoom() * factor, self.MIN_SCALE), self.MAX_SCALE)
        factor = target / self.zoom()
        self.scale(factor, factor)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._fit_pending:
            self.fit()

    def fit(self) -> None:
        """Show the whole workflow, never magnified past 100 % nor shrunk below `READABLE_SCALE` (captions
        stay legible; a wide workflow then scrolls, from its top-left)."""
        self._fit_pending = not self.isVisible()  # a hidden view has no size to fit into
        if self._fit_pending:
            return
        lanes = self.workflow_scene().lanes
        if not lanes:
            return
        rect = QRectF()
        for item in self.scene().items():
            if isinstance(item, BranchLaneItem | NodeItem | EdgeItem):
                rect = rect.united(item.sceneBoundingRect())
        self.fitInView(rect.adjusted(-16, -16, 16, 16), Qt.AspectRatioMode.KeepAspectRatio)
        zoom = min(max(self.zoom(), self.READABLE_SCALE), 1.0)
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self.ensureVisible(rect.adjusted(-16, -16, 16, 16), 0, 0)
        self.ensureVisible(QRectF(rect.topLeft() - QPointF(16, 16), QSizeF(1, 1)), 0, 0)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        self.zoom_by(1.0015 ** event.angleDelta().y())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        panning = event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._space_held
        )
        if panning:
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space_held else Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.workflow_scene().delete_selected()
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)
