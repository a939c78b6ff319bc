"""The Annotations panel: drawing tools, the open slide's regions, QuPath import/export, "Segment these regions".

Regions are saved per slide in the current profile's folder (see `wsidesk.core.annotations.store`)
shortly after every change, and at once when the slide is closed. The write (JSON, fsync, rename) runs
on one writer thread, in order, so a large region never stalls the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QColorDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.annotations import AnnotationError, AnnotationStore, read_annotations, write_annotations
from wsidesk.core.errors import WsideskError
from wsidesk.gui.viewer import SlideView
from wsidesk.gui.viewer.annotations import TOOLS, AnnotationLayer, AnnotationModel, AnnotationTool

logger = logging.getLogger(__name__)

GEOJSON_FILTER = "QuPath GeoJSON (*.geojson *.json);;All files (*)"
SAVE_DELAY_MS = 300  # a burst of edits (an import, undo pressed ten times) is one write
TOOL_LABELS = {"select": "Select", "rectangle": "Rect", "ellipse": "Ellipse", "polygon": "Polygon", "freehand": "Free"}
TOOL_TIPS = {
    "select": "Select (M): click a region to select it, drag it to move it, drag a vertex handle to edit it; "
    "drag elsewhere to pan",
    "rectangle": "Rectangle (R): drag",
    "ellipse": "Ellipse (E): drag",
    "polygon": "Polygon (P): click vertices; double-click, Enter or a click on the first vertex closes it",
    "freehand": "Freehand (F): drag",
}


def roi_value(names: list[str]) -> str:
    """The `roi` job param naming these saved regions."""
    return ",".join(dict.fromkeys(names))


class AnnotationsPanel(QWidget):
    """Regions of the open slide; owns the model, the view's annotation layer and the drawing tool."""

    segment_requested = Signal(list)  # names of the regions to segment
    message = Signal(str)
    _save_failed = Signal(str)  # from the writer thread; queued to the GUI thread

    def __init__(self, view: SlideView, profile_dir: Callable[[], Path], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self._profile_dir = profile_dir
        self._loaded: tuple[AnnotationStore, str] | None = None  # where the shown regions are saved
        self.model = AnnotationModel(self)
        self.layer = AnnotationLayer(self.model)
        self.layer.setZValue(40)  # above tissue, tiles and cells
        view.scene().addItem(self.layer)
        self.tool = AnnotationTool(view, self.model, self.layer)
        view.interaction = self.tool
        self.tool.message.connect(self.message)

        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotations-save")
        self._pending: Future[Path] | None = None
        self._save_failed.connect(self.message)
        writer = self._writer  # not `self`: the wrapper may be half gone when `destroyed` fires
        self.destroyed.connect(lambda *_: writer.shutdown(wait=True))

        self._build_actions()
        self._build_ui()
        self.model.changed.connect(self._on_model_changed)
        self.model.selection_changed.connect(self._on_selection_changed)
        self.tool.tool_changed.connect(self._on_tool_changed)
        view.slide_opened.connect(self._on_slide_opened)
        view.slide_closed.connect(self._on_slide_closed)
        self._update_enabled()

    # -- construction -------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        def action(text: str, slot: Callable[[], object], tip: str) -> QAction:
            a = QAction(text, self)
            a.setStatusTip(tip)
            a.setToolTip(tip)
            a.triggered.connect(slot)
            return a

        self.import_action = action("Import QuPath GeoJSON…", self._on_import, "Add regions from a QuPath GeoJSON file")
        self.export_action = action("Export QuPath GeoJSON…", self._on_export, "Write this slide's regions for QuPath")
        self.segment_action = action(
            "Segment selected region…", self._on_segment, "Segment cells only inside the selected region"
        )
        self.delete_action = action("Delete region", self._on_delete, "Delete the selected region")
        self.undo_action = self.model.undo_stack.createUndoAction(self, "Undo")
        self.redo_action = self.model.undo_stack.createRedoAction(self, "Redo")
        self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)])
        for a in (self.undo_action, self.redo_action):
            # Only while the viewer or this panel has focus: the workflow editor has its own undo.
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.view.addAction(a)

    def _build_ui(self) -> None:
        tools = QHBoxLayout()
        tools.setSpacing(2)
        self.tool_buttons = QButtonGroup(self)
        self.tool_buttons.setExclusive(True)
        for tool in TOOLS:
            tool_button = QToolButton()
            tool_button.setText(TOOL_LABELS[tool])
            tool_button.setToolTip(TOOL_TIPS[tool])
            tool_button.setCheckable(True)
            tool_button.setChecked(tool == "select")
            tool_button.setObjectName(f"tool_{tool}")
            tool_button.clicked.connect(lambda _=False, t=tool: self.tool.set_tool(t))
            self.tool_buttons.addButton(tool_button)
            tools.addWidget(tool_button)
        tools.addStretch(1)

        self.list = QListWidget()
        self.list.setIconSize(QSize(14, 14))
        self.list.currentItemChanged.connect(self._on_current_item_changed)
        self.list.itemChanged.connect(self._on_item_renamed)
        self.list.itemDoubleClicked.connect(lambda item: self.list.editItem(item))

        def button(action: QAction, text: str | None = None) -> QToolButton:
            b = QToolButton()
            b.setDefaultAction(action)
            if text:
                b.setText(text)
            return b

        self.color_button = QPushButton("Colour…")
        self.color_button.clicked.connect(self._on_color)
        edit_row = QHBoxLayout()
        for w in (
            self.color_button,
            button(self.delete_action, "Delete"),
            button(self.undo_action, "Undo"),
            button(self.redo_action, "Redo"),
        ):
            edit_row.addWidget(w)
        edit_row.addStretch(1)
        file_row = QHBoxLayout()
        file_row.addWidget(button(self.import_action, "Import…"))
        file_row.addWidget(button(self.export_action, "Export…"))
        file_row.addStretch(1)
        self.segment_button = QPushButton("Segment this region…")
        self.segment_button.clicked.connect(self._on_segment)
        self.hint = QLabel("Open a slide to draw regions.")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: palette(mid)")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(tools)
        layout.addWidget(self.list, 1)
        layout.addLayout(edit_row)
        layout.addLayout(file_row)
        layout.addWidget(self.segment_button)
        layout.addWidget(self.hint)

    # -- loading and saving -------------------------------------------------------------------------
    @Slot(str)
    def _on_slide_opened(self, path: str) -> None:
        self._on_slide_closed()
        store = AnnotationStore(self._profile_dir())
        reader = self.view.reader
        if reader is not None:
            self.layer.set_extent(*reader.dimensions)
        try:
            annotations = store.load(path)
        except (WsideskError, OSError) as exc:
            annotations = []
            self.message.emit(f"cannot read this slide's saved regions ({exc}); they are left as they are")
            self._loaded = None
            self.model.reset(annotations)
            return
        self._loaded = (store, path)
        self.model.reset(annotations)

    @Slot()
    def _on_slide_closed(self, *_: object) -> None:
        if self._save_timer.isActive():
            self.save()
        self.flush()
        self.tool.cancel()
        self._loaded = None
        self.model.reset([])

    def save(self) -> None:
        """Start writing the regions now (normally done shortly after each change); `flush` waits for it."""
        self._save_timer.stop()
        if self._loaded is None:
            return
        store, slide = self._loaded
        annotations = self.model.annotations()  # immutable values: the writer thread may read them

        def write() -> Path:
            try:
                return store.save(slide, annotations)
            except OSError as exc:
                self._save_failed.emit(f"cannot save regions to {store.folder}: {exc}")
                raise

        self._pending = self._writer.submit(write)

    def flush(self) -> Path | None:
        """Wait for the last save; the file written, or None when there was none or it failed."""
        if self._save_timer.isActive():
            self.save()
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        try:
            return pending.result()
        except OSError:
            return None  # reported by the writer

    # -- import / export ------------------------------------------------------------------------------
    def import_geojson(self, path: str | Path) -> int:
        """Add the regions of a QuPath GeoJSON file (one undoable step); returns how many were added."""
        reader = self.view.reader
        if reader is None:
            msg = "open a slide before importing regions"
            raise AnnotationError(msg)
        result = read_annotations(path, slide_size=tuple(reader.dimensions))  # type: ignore[arg-type]
        self.model.add_many(result.annotations, f"Import {Path(path).name}")
        text = f"imported {len(result.annotations)} region(s) from {Path(path).name}"
        self.message.emit("; ".join([text, *result.notes]))
        return len(result.annotations)

    def export_geojson(self, path: str | Path) -> Path:
        return write_annotations(self.model.annotations(), Path(path))

    @Slot()
    def _on_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import QuPath GeoJSON", "", GEOJSON_FILTER)
        if not path:
            return
        try:
            self.import_geojson(path)
        except (WsideskError, OSError) as exc:
            QMessageBox.warning(self, "Cannot import regions", str(exc))

    @Slot()
    def _on_export(self) -> None:
        slide = self.view.slide_path
        suggestion = str(Path(slide).with_suffix(".geojson")) if slide else "regions.geojson"
        path, _ = QFileDialog.getSaveFileName(self, "Export QuPath GeoJSON", suggestion, GEOJSON_FILTER)
        if not path:
            return
        try:
            written = self.export_geojson(path)
        except OSError as exc:
            QMessageBox.warning(self, "Cannot export regions", f"{path}: {exc}")
            return
        self.message.emit(f"exported {len(self.model.annotations())} region(s) to {written}")

    # -- editing --------------------------------------------------------------------------------------
    @Slot()
    def _on_delete(self) -> None:
        if self.model.selected:
            self.model.remove(self.model.selected)

    @Slot()
    def _on_color(self) -> None:
        annotation = self.model.get(self.model.selected)
        if annotation is None:
            return
        color = QColorDialog.getColor(QColor(*annotation.color), self, f"Colour of {annotation.name}")
        if color.isValid():
            rgb = (color.red(), color.green(), color.blue())
            self.model.replace(annotation.recoloured(rgb), f"Recolour {annotation.name}")

    @Slot(QListWidgetItem)
    def _on_item_renamed(self, item: QListWidgetItem) -> None:
        annotation = self.model.get(item.data(Qt.ItemDataRole.UserRole))
        name = item.text().strip()
        if annotation is None or name == annotation.name:
            return
        if not name:
            item.setText(annotation.name)
            return
        self.model.replace(annotation.renamed(name), f"Rename {annotation.name} to {name}")

    @Slot()
    def _on_segment(self) -> None:
        annotation = self.model.get(self.model.selected)
        if annotation is None:
            self.message.emit("select a region first")
            return
        self.flush()  # the job reads the saved regions
        self.segment_requested.emit([annotation.name])

    # -- keeping the list in step -------------------------------------------------------------------------
    @Slot()
    def _on_model_changed(self) -> None:
        if self._loaded is not None:
            self._save_timer.start()
        self.list.blockSignals(True)
        self.list.clear()
        for a in self.model.annotations():
            item = QListWidgetItem(a.name)
            pixmap = QPixmap(14, 14)
            pixmap.fill(QColor(*a.color))
            item.setIcon(QIcon(pixmap))
            item.setData(Qt.ItemDataRole.UserRole, a.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            item.setToolTip(f"{a.name}: {a.area:,.0f} px² (level 0)")
            self.list.addItem(item)
            if a.id == self.model.selected:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._update_enabled()

    @Slot(str)
    def _on_selection_changed(self, annotation_id: str) -> None:
        self.list.blockSignals(True)
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == annotation_id:
                self.list.setCurrentItem(item)
                break
        else:
            self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self._update_enabled()

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_current_item_changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        self.model.select(current.data(Qt.ItemDataRole.UserRole) if current is not None else "")

    @Slot(str)
    def _on_tool_changed(self, tool: str) -> None:
        for b in self.tool_buttons.buttons():
            b.setChecked(b.objectName() == f"tool_{tool}")

    def _update_enabled(self) -> None:
        has_slide = self.view.reader is not None
        selected = bool(self.model.selected)
        for b in self.tool_buttons.buttons():
            b.setEnabled(has_slide)
        self.import_action.setEnabled(has_slide)
        self.export_action.setEnabled(bool(self.model.annotations()))
        for w in (self.delete_action, self.segment_action):
            w.setEnabled(selected)
        self.color_button.setEnabled(selected)
        self.segment_button.setEnabled(selected)
        if not has_slide:
            self.hint.setText("Open a slide to draw regions.")
        elif not self.model.annotations():
            self.hint.setText("Pick a tool and draw on the slide, or import regions from QuPath.")
        else:
            self.hint.setText("Double-click a name to rename it. Del deletes the selected region.")
