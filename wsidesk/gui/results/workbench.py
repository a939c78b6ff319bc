"""The results workbench: opens a finished segmentation from its cell store and wires the measurement
table, colours, plots, classes and exports to the slide view (click, Shift-drag rectangle and Ctrl-drag
lasso select cells)."""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QImage, QMouseEvent, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QGraphicsPathItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabBar,
    QToolButton,
    QWidget,
)

from wsidesk.core.cells.classes import CLASSES_NAME, ClassRule, RulesError, load_rules, save_rules
from wsidesk.core.cells.export import export_cells, export_summary_csv
from wsidesk.core.cells.store import CellTable
from wsidesk.core.cells.summary import tissue_area_mm2
from wsidesk.core.errors import WsideskError
from wsidesk.gui.results.colours import ColourSpec, legend_image
from wsidesk.gui.results.model import ResultsModel
from wsidesk.gui.results.overlay import ResultCellsOverlay
from wsidesk.gui.results.panels import ClassesPanel, ColourPanel, MeasurementTable, PlotsPanel
from wsidesk.gui.viewer import SlideView

logger = logging.getLogger(__name__)

CLICK_SLOP = 4  # screen px a press may move and still be a click
EXPORT_KINDS = ("geojson_all", "geojson_selected", "geojson_shown", "csv_all", "csv_shown", "summary", "png")


class ResultsWorkbench(QObject):
    """Owns the open result (ResultsModel), its slide layer and its panels; see the module docstring."""

    message = Signal(str)  # a sentence for the status bar
    export_finished = Signal(str, str)  # path, error ('' when written)

    def __init__(
        self, viewer: SlideView, settings: QSettings, profile: Callable[[], str], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.settings = settings
        self._profile = profile
        self.results = ResultsModel(self)
        self.overlay = ResultCellsOverlay()
        self.overlay.setZValue(35)  # above the live cell layer (30)
        viewer.scene().addItem(self.overlay)
        viewer.overlays["results"] = self.overlay  # cleared with the others when a new job starts
        self.table = MeasurementTable(self.results)
        self.colours = ColourPanel(self.results)
        self.plots = PlotsPanel(self.results)
        self.classes = ClassesPanel(self.results)
        self.export_button = self._export_button()
        self._docks: list[QDockWidget] = []
        self._press: QPointF | None = None
        self._drag_mode = ""  # "rect" / "lasso" while Shift / Ctrl dragging
        self._drag_points: list[QPointF] = []
        self._rubber = QGraphicsPathItem()
        pen = QPen(QColor(255, 220, 0), 1.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._rubber.setPen(pen)
        self._rubber.setZValue(100)
        self._rubber.hide()
        viewer.scene().addItem(self._rubber)
        viewer.viewport().installEventFilter(self)

        r = self.results
        r.visible_changed.connect(lambda: self.overlay.set_visible_cells(r.visible))
        r.selection_changed.connect(lambda: self.overlay.set_selected(r.selection))
        r.colours_changed.connect(self._on_colours_changed)
        self.table.rows_selected.connect(self.centre_on_selection)
        self.classes.rules_applied.connect(self._on_rules_applied)
        self.overlay.cleared.connect(self._on_cleared)
        self.export_finished.connect(self._on_export_finished)
        r.opened.connect(self.update_docks)

    def _on_cleared(self) -> None:
        self.results.close()
        self.classes.set_rules([], apply=False)

    # -- docks ------------------------------------------------------------------------------------------
    def add_docks(self, window: QMainWindow) -> list[QDockWidget]:
        """The panels as docks: the table at the bottom, colours, plots and classes on the right."""
        docks = []
        for title, widget, area in (
            ("Measurements", self.table, Qt.DockWidgetArea.BottomDockWidgetArea),
            ("Cell colours", self.colours, Qt.DockWidgetArea.RightDockWidgetArea),
            ("Classes", self.classes, Qt.DockWidgetArea.RightDockWidgetArea),
            ("Plots", self.plots, Qt.DockWidgetArea.RightDockWidgetArea),
        ):
            dock = QDockWidget(title, window)
            dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
            dock.setWidget(widget)
            window.addDockWidget(area, dock)
            docks.append(dock)
        window.tabifyDockWidget(docks[1], docks[2])
        window.tabifyDockWidget(docks[1], docks[3])
        docks[1].raise_()
        self._docks = docks
        self.update_docks()
        return docks

    def update_docks(self) -> None:
        """The panels show only while a result is open (empty ones only puzzle); call it again after
        restoring a window state. A hidden dock keeps its place, so it comes back where the user put it."""
        shown = self.results.table is not None
        for dock in self._docks:
            dock.setVisible(shown)
        window = self._docks[0].parentWidget() if self._docks else None
        if not shown and window is not None:
            # Qt (6.10) leaves the tab bar of a tab group whose docks are all hidden on screen, over
            # the next dock; it shows it again itself when one of them comes back.
            titles = {dock.windowTitle() for dock in self._docks}
            for bar in window.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly):
                if bar.count() and all(bar.tabText(i) in titles for i in range(bar.count())):
                    bar.hide()

    # -- opening ----------------------------------------------------------------------------------------
    def open_result(self, folder: str | Path) -> CellTable:
        """Show a segment result folder's cells (raises CellStoreError when it has none); says when the
        store was missing or damaged and the GeoJSON was read instead."""
        saved = self._saved_spec()
        if saved is not None:
            self.results.spec = saved  # before opening: the table's first colours are the saved ones
        table = self.results.open(folder)
        w, h = self.viewer.reader.dimensions if self.viewer.reader is not None else (0, 0)
        self.overlay.set_cells(
            x=table.x, y=table.y, bbox=table.bbox, poly_offsets=table.poly_offsets, poly_xy=table.poly_xy, extent=(w, h)
        )
        self.plots.tissue_mm2 = tissue_area_mm2(self.results.folder) if self.results.folder else None
        self._load_rules()
        self.plots.update_summary()
        self._on_colours_changed()
        source = "cell store" if not table.note else "GeoJSON (the cell store could not be used)"
        text = f"{len(table):,} cells from the {source}: {Path(folder)}"
        if table.note:
            text += f" — {table.note}"
        self.message.emit(text)
        return table

    def _load_rules(self) -> None:
        path = self._rules_path()
        rules: list[ClassRule] = []
        if path is not None and path.is_file():
            try:
                rules = load_rules(path)
            except RulesError as exc:
                self.message.emit(f"saved classes not applied: {exc}")
        self.classes.set_rules(rules, apply=bool(rules))

    def _rules_path(self) -> Path | None:
        return self.results.folder / CLASSES_NAME if self.results.folder is not None else None

    def _on_rules_applied(self, rules: list[ClassRule]) -> None:
        """Classes are saved with the result, in the file `wsidesk cells classify --rules` reads."""
        path = self._rules_path()
        if path is None:
            return
        try:
            if rules:
                save_rules(rules, path)
            elif path.exists():
                path.unlink()
        except OSError as exc:
            self.message.emit(f"cannot save the classes to {path}: {exc}")

    # -- view state per profile -------------------------------------------------------------------------
    def _state_key(self) -> str:
        return f"results/{self._profile()}/view"

    def _on_colours_changed(self) -> None:
        r = self.results
        self.overlay.set_colours(r.spec, r.colours, r.coloured_values())
        if r.table is not None:
            self.settings.setValue(self._state_key(), json.dumps(r.spec.to_dict()))

    def _saved_spec(self) -> ColourSpec | None:
        """The profile's last look (a measurement this result lacks falls back to one colour on open)."""
        raw = self.settings.value(self._state_key())
        if not raw:
            return None
        try:
            return ColourSpec.from_dict(json.loads(str(raw)))
        except (ValueError, TypeError, AttributeError) as exc:
            logger.warning("ignoring a damaged results view state: %s", exc)
            return None

    # -- selection on the slide -------------------------------------------------------------------------
    def centre_on_selection(self) -> None:
        """Centre the slide on the selected cells (zooming in when they are too small to see)."""
        sel, t = self.results.selection, self.results.table
        if t is None or not len(sel):
            return
        x0, y0 = float(t.bbox[sel, 0].min()), float(t.bbox[sel, 1].min())
        x1, y1 = float(t.bbox[sel, 2].max()), float(t.bbox[sel, 3].max())
        if self.overlay.uses_density_at(self.viewer.scale_factor()) and len(sel) == 1:
            self.viewer.set_scale_factor(min(1.0, 40.0 / max(x1 - x0, y1 - y0, 1.0)))
        self.viewer.center_on((x0 + x1) / 2, (y0 + y1) / 2)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if self.results.table is None or not isinstance(event, QMouseEvent):
            return False
        kind = event.type()
        pos = event.position()
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self._press = QPointF(pos)
            mods = event.modifiers()
            if mods & Qt.KeyboardModifier.ShiftModifier or mods & Qt.KeyboardModifier.ControlModifier:
                self._drag_mode = "rect" if mods & Qt.KeyboardModifier.ShiftModifier else "lasso"
                self._drag_points = [self.viewer.map_to_level0(pos)]
                return True  # not a pan
            return False
        if kind == QEvent.Type.MouseMove and self._drag_mode:
            self._drag_points.append(self.viewer.map_to_level0(pos))
            self._show_rubber()
            return True
        if kind == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
            press, self._press = self._press, None
            if self._drag_mode:
                self._finish_drag()
                return True
            if press is not None and (pos - press).manhattanLength() <= CLICK_SLOP:
                p = self.viewer.map_to_level0(pos)
                self.pick(p.x(), p.y())
        return False

    def pick(self, x: float, y: float) -> int:
        """Select the cell under a level-0 point (or clear the selection); returns its index or -1."""
        cell = self.overlay.cell_at(x, y)
        if cell >= 0:
            self.results.select(np.array([cell]), current=cell)
        else:
            self.results.select(np.zeros(0, dtype=np.int64), current=-1)
        return cell

    def select_in_rect(self, rect: QRectF) -> np.ndarray:
        cells = self.overlay.cells_in_rect(rect.normalized())
        self.results.select(cells)
        return cells

    def select_in_lasso(self, ring: np.ndarray) -> np.ndarray:
        cells = self.overlay.cells_in_polygon(ring)
        self.results.select(cells)
        return cells

    def _show_rubber(self) -> None:
        path = QPainterPath()
        pts = self._drag_points
        if self._drag_mode == "rect":
            path.addRect(QRectF(pts[0], pts[-1]).normalized())
        else:
            path.moveTo(pts[0])
            for p in pts[1:]:
                path.lineTo(p)
            path.closeSubpath()
        self._rubber.setPath(path)
        self._rubber.show()

    def _finish_drag(self) -> None:
        mode, pts = self._drag_mode, self._drag_points
        self._drag_mode, self._drag_points = "", []
        self._rubber.hide()
        if len(pts) < 2:
            return
        if mode == "rect":
            cells = self.select_in_rect(QRectF(pts[0], pts[-1]))
        else:
            cells = self.select_in_lasso(np.array([(p.x(), p.y()) for p in pts], dtype=np.float64))
        self.message.emit(f"{len(cells):,} cells selected")

    # -- exports ----------------------------------------------------------------------------------------
    def _export_button(self) -> QToolButton:
        button = QToolButton()
        button.setText("Export")
        button.setToolTip("Export the open result's cells, summary or a picture of the view")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)
        labels = {
            "geojson_all": "GeoJSON: all cells…",
            "geojson_selected": "GeoJSON: selected cells…",
            "geojson_shown": "GeoJSON: filtered cells…",
            "csv_all": "CSV: all cells…",
            "csv_shown": "CSV: filtered cells…",
            "summary": "Summary CSV (per slide and class)…",
            "png": "PNG of the view, with legend and scale bar…",
        }
        for kind in EXPORT_KINDS:
            menu.addAction(labels[kind], lambda k=kind: self._on_export(k))
        menu.addSeparator()
        menu.addAction("Show in folder", self.show_in_folder)
        button.setMenu(menu)
        return button

    def _on_export(self, kind: str) -> None:
        if self.results.table is None or self.results.folder is None:
            self.message.emit("open a result first (Library → Results)")
            return
        suffix = {"png": ".png", "summary": "_summary.csv"}.get(
            kind, ".geojson" if kind.startswith("geojson") else ".csv"
        )
        default = str(self.results.folder / f"cells_{kind.split('_')[-1]}{suffix}")
        widget = self.export_button.window()
        path, _ = QFileDialog.getSaveFileName(widget, "Export", default)
        if path:
            self.export_in_background(kind, Path(path))

    def _on_export_finished(self, path: str, error: str) -> None:
        self.export_button.setEnabled(True)
        if error:
            QMessageBox.warning(self.export_button.window(), "Cannot export", f"{path}: {error}")
        else:
            self.message.emit(f"wrote {path}")

    def export_in_background(self, kind: str, path: Path) -> None:
        """Start one export; `export_finished` says when it is written. Cell files (a million cells
        take ~30 s) are written on a worker thread from a snapshot, so the window stays live."""
        try:
            job = self._export_job(kind, path)
        except (WsideskError, OSError, ValueError) as exc:
            self.export_finished.emit(str(path), str(exc))
            return
        self.export_button.setEnabled(False)  # one at a time
        self.message.emit(f"exporting to {path}…")

        def run() -> None:
            error = ""
            try:
                job()
            except (WsideskError, OSError, ValueError) as exc:
                error = str(exc)
            try:
                self.export_finished.emit(str(path), error)  # queued to the GUI thread
            except RuntimeError:  # the window closed meanwhile; the file is written (or not) all the same
                logger.info("export to %s finished after the workbench closed: %s", path, error or "written")

        threading.Thread(target=run, name="wsidesk-export", daemon=True).start()

    def export(self, kind: str, path: Path) -> Path:
        """Write one export (kind in EXPORT_KINDS) to `path`, here and now."""
        return self._export_job(kind, path)()

    def _export_job(self, kind: str, path: Path) -> Callable[[], Path]:
        """The export as a call that needs nothing from the GUI: pictures and summaries are made now;
        cell files capture the cells as they are (classes replace arrays, so a shallow copy holds)."""
        r = self.results
        t = r.table
        if t is None:
            msg = "no result is open"
            raise ValueError(msg)
        if kind == "png":
            written = self.save_view_png(path)
            return lambda: written
        if kind == "summary":
            written = export_summary_csv(t, path, tissue_mm2=self.plots.tissue_mm2)
            return lambda: written
        fmt, which = kind.split("_")
        if which == "selected" and not len(r.selection):
            msg = "no cells are selected (click, Shift-drag or Ctrl-drag on the slide, or select table rows)"
            raise ValueError(msg)
        cells = {"all": copy.copy(t), "selected": t.take(r.selection), "shown": t.take(r.visible)}[which]
        return lambda: export_cells(cells, path, fmt=fmt)

    def save_view_png(self, path: Path) -> Path:
        """The slide view as shown (scale bar included) with the colour legend in its bottom-right corner."""
        image = self.viewer.viewport().grab().toImage().convertToFormat(QImage.Format.Format_ARGB32)
        r = self.results
        legend = legend_image(r.spec, r.class_names, r.class_colours)
        p = QPainter(image)
        margin = 12
        p.drawImage(QPointF(image.width() - legend.width() - margin, image.height() - legend.height() - margin), legend)
        p.end()
        if not image.save(str(path), "PNG"):  # type: ignore[call-overload]  # PySide stubs want bytes; it takes str
            msg = f"cannot write {path}"
            raise OSError(msg)
        return path

    def show_in_folder(self) -> None:
        if self.results.folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.results.folder)))

    def panels(self) -> list[QWidget]:
        return [self.table, self.colours, self.plots, self.classes]
