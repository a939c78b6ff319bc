"""Workbench panels: measurement table, cell values, colours, histogram and scatter, classes."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QItemSelectionModel, QSignalBlocker, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFontDatabase, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.cells.classes import ClassRule, RulesError, classify
from wsidesk.core.cells.expression import ExpressionError
from wsidesk.gui.results.colours import BY_CLASS, COLORMAPS, SINGLE, ColourSpec, legend_image
from wsidesk.gui.results.model import ResultsModel
from wsidesk.gui.results.table_model import CellTableModel

ERROR_STYLE = "color: #b00020"
HIST_BINS = 80
SCATTER_POINTS = 5_000  # a random sample: pyqtgraph costs ~20 µs per scatter spot to set up


def _colour_button(colour: QColor) -> QPushButton:
    button = QPushButton()
    button.setFixedWidth(48)
    button.setStyleSheet(f"background: {colour.name()}")
    return button


class MeasurementTable(QWidget):
    """Filter line, the table of shown cells, and the clicked cell's values."""

    rows_selected = Signal()  # the user selected rows (not the slide): the slide centres on them

    def __init__(self, results: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.results = results
        self.model = CellTableModel(results, self)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("filter, e.g. area_um2 > 40 and hematoxylin_od_mean > 0.3  (Enter)")
        self.filter_edit.returnPressed.connect(self._on_filter)
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))  # the ^ lines up
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        self.count = QLabel()
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSortingEnabled(True)
        self.view.horizontalHeader().setSortIndicatorShown(True)
        self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setAlternatingRowColors(True)
        # Fixed row heights: Qt never measures a row, so a million rows scroll like a hundred.
        vh = self.view.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(20)
        vh.hide()
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setDefaultSectionSize(90)
        self.view.selectionModel().selectionChanged.connect(self._on_rows_selected)
        self.values = QTableWidget(0, 2)
        self.values.setHorizontalHeaderLabels(["measurement", "value"])
        self.values.verticalHeader().hide()
        self.values.horizontalHeader().setStretchLastSection(True)
        self.values.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.view)
        box = QWidget()
        side = QVBoxLayout(box)
        side.setContentsMargins(0, 0, 0, 0)
        self.current_label = QLabel("<b>Clicked cell</b>: none")
        side.addWidget(self.current_label)
        side.addWidget(self.values)
        split.addWidget(box)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.error)
        layout.addWidget(split, 1)
        self.setMinimumHeight(170)  # a table shows rows, not just its header, however docks are packed
        self._syncing = False
        results.opened.connect(self._on_opened)
        results.visible_changed.connect(self._on_visible_changed)
        results.selection_changed.connect(self._on_selection_changed)
        results.current_changed.connect(self._on_current_changed)

    @Slot()
    def _on_filter(self) -> None:
        text = self.filter_edit.text()
        try:
            self.results.set_filter(text)
        except ExpressionError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.error.hide()

    def _on_opened(self) -> None:
        self.filter_edit.clear()
        self.error.hide()
        self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self._on_visible_changed()
        self._on_current_changed(-1)

    def _on_visible_changed(self) -> None:
        shown, total = int(self.results.visible.sum()), self.results.cell_count
        self.count.setText(f"{shown:,} of {total:,} cells")
        self._on_selection_changed()  # the rows moved: reselect the selected cells' rows

    @Slot()
    def _on_rows_selected(self) -> None:
        if self._syncing:
            return
        cells = CellTableModel.cells_of(self.model, self.view.selectionModel())
        self._syncing = True
        try:
            self.results.select(cells)
        finally:
            self._syncing = False
        self.rows_selected.emit()

    def _on_selection_changed(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            sm = self.view.selectionModel()
            sm.select(
                self.model.selection_for(self.results.selection),
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
            if len(self.results.selection):
                row = int(self.model.row_of(self.results.selection[:1])[0])
                if row >= 0:
                    self.view.scrollTo(self.model.index(row, 0))
        finally:
            self._syncing = False

    @Slot(int)
    def _on_current_changed(self, cell: int) -> None:
        if cell < 0 or self.results.table is None:
            self.current_label.setText("<b>Clicked cell</b>: none")
            self.values.setRowCount(0)
            return
        rows = self.results.cell_values(cell)
        self.current_label.setText(f"<b>Clicked cell</b>: id {rows[0][1]}")
        self.values.setRowCount(len(rows))
        for r, (name, value) in enumerate(rows):
            self.values.setItem(r, 0, QTableWidgetItem(name))
            item = QTableWidgetItem(value)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.values.setItem(r, 1, item)


class ColourPanel(QWidget):
    """Colour by, colormap and range, contour colour and width, fill opacity, and the legend."""

    def __init__(self, results: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.results = results
        self.by = QComboBox()
        self.colormap = QComboBox()
        self.colormap.addItems(sorted(COLORMAPS))
        self.lo, self.hi = QDoubleSpinBox(), QDoubleSpinBox()
        for spin in (self.lo, self.hi):
            spin.setRange(-1e12, 1e12)
            spin.setDecimals(4)
            spin.setKeyboardTracking(False)
        self.auto = QPushButton("Fit range")
        self.contour = _colour_button(results.spec.contour)
        self.line_width = QDoubleSpinBox()
        self.line_width.setRange(0.5, 8.0)
        self.line_width.setSingleStep(0.5)
        self.line_width.setValue(results.spec.contour_width)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.legend = QLabel()
        form = QFormLayout(self)
        form.setContentsMargins(6, 6, 6, 6)
        form.addRow("Colour by", self.by)
        form.addRow("Colormap", self.colormap)
        rng = QHBoxLayout()
        rng.addWidget(self.lo)
        rng.addWidget(self.hi)
        rng.addWidget(self.auto)
        form.addRow("Range", rng)
        form.addRow("Contour colour", self.contour)
        form.addRow("Contour width", self.line_width)
        form.addRow("Fill opacity", self.opacity)
        form.addRow(self.legend)
        self.by.currentTextChanged.connect(self._on_by_changed)
        self.colormap.currentTextChanged.connect(lambda _: self._apply())
        self.lo.valueChanged.connect(lambda _: self._apply())
        self.hi.valueChanged.connect(lambda _: self._apply())
        self.auto.clicked.connect(lambda: self._on_by_changed(self.by.currentText()))
        self.contour.clicked.connect(self._on_pick_contour)
        self.line_width.valueChanged.connect(lambda _: self._apply())
        self.opacity.valueChanged.connect(lambda _: self._apply())
        results.opened.connect(self._on_opened)
        results.colours_changed.connect(self._show_spec)

    def _on_opened(self) -> None:
        with QSignalBlocker(self.by):
            self.by.clear()
            self.by.addItems([SINGLE, BY_CLASS, *self.results.measurements()])
        self._show_spec()

    def _show_spec(self) -> None:
        s = self.results.spec
        for w in (self.by, self.colormap, self.lo, self.hi, self.line_width, self.opacity):
            w.blockSignals(True)
        self.by.setCurrentText(s.by)
        self.colormap.setCurrentText(s.colormap)
        self.lo.setValue(s.lo)
        self.hi.setValue(s.hi)
        self.line_width.setValue(s.contour_width)
        self.opacity.setValue(round(s.fill_opacity * 100))
        for w in (self.by, self.colormap, self.lo, self.hi, self.line_width, self.opacity):
            w.blockSignals(False)
        by_value = s.by not in (SINGLE, BY_CLASS)
        for widget in (self.colormap, self.lo, self.hi, self.auto):
            widget.setEnabled(by_value)
        self.contour.setStyleSheet(f"background: {s.contour.name()}")
        self.legend.setPixmap(
            QPixmap.fromImage(legend_image(s, self.results.class_names, self.results.class_colours, width=240))
        )

    @Slot(str)
    def _on_by_changed(self, by: str) -> None:
        if by and self.results.table is not None:
            self.results.set_spec(self.results.spec_for(by))

    def _on_pick_contour(self) -> None:
        colour = QColorDialog.getColor(self.results.spec.contour, self, "Contour colour")
        if colour.isValid():
            s = self.results.spec
            self.results.set_spec(ColourSpec(s.by, s.colormap, s.lo, s.hi, colour, s.contour_width, s.fill_opacity))

    def _apply(self) -> None:
        if self.results.table is None:
            return
        s = self.results.spec
        self.results.set_spec(
            ColourSpec(
                s.by,
                self.colormap.currentText(),
                self.lo.value(),
                self.hi.value(),
                s.contour,
                self.line_width.value(),
                self.opacity.value() / 100,
            )
        )


class PlotsPanel(QWidget):
    """Histogram with a draggable range (brushing the table and slide), scatter, summary per class."""

    def __init__(self, results: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.results = results
        self.column = QComboBox()
        self.clear_range = QPushButton("Clear range")
        self.hist = pg.PlotWidget()
        self.hist.setBackground("w")
        self.hist.setMouseEnabled(x=False, y=False)
        self.hist.setLabel("left", "cells")
        self.bars = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(70, 130, 200, 150), pen=(40, 90, 160))
        self.hist.addItem(self.bars)
        # Spans the whole histogram until dragged: then only cells inside it are shown.
        self.region = pg.LinearRegionItem(brush=(255, 200, 0, 60))
        self.hist.addItem(self.region)
        self.scatter_x, self.scatter_y = QComboBox(), QComboBox()
        self.scatter = pg.PlotWidget()
        self.scatter.setBackground("w")
        self.points = pg.ScatterPlotItem(size=3, pen=None, brush=(70, 130, 200, 90))
        self.chosen = pg.ScatterPlotItem(size=5, pen=None, brush=(230, 170, 0, 220))
        self.scatter.addItem(self.points)
        self.scatter.addItem(self.chosen)
        self.summary = QTableWidget(0, 5)
        self.summary.setHorizontalHeaderLabels(["class", "count", "per mm²", "mean", "median"])
        self.summary.verticalHeader().hide()
        self.summary.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.tissue_mm2: float | None = None  # set by the workbench when the result has a tissue mask
        top = QHBoxLayout()
        top.addWidget(QLabel("Measurement"))
        top.addWidget(self.column, 1)
        top.addWidget(self.clear_range)
        sc = QHBoxLayout()
        sc.addWidget(QLabel("Scatter"))
        sc.addWidget(self.scatter_x, 1)
        sc.addWidget(QLabel("vs"))
        sc.addWidget(self.scatter_y, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.hist, 2)
        layout.addLayout(sc)
        layout.addWidget(self.scatter, 2)
        layout.addWidget(self.summary, 1)
        for widget in (self.hist, self.scatter, self.summary):
            widget.setMinimumHeight(70)  # the plots dock shares the right side with three others
        self.column.currentTextChanged.connect(lambda _: self._on_column_changed())
        self.scatter_x.currentTextChanged.connect(lambda _: self._draw_scatter())
        self.scatter_y.currentTextChanged.connect(lambda _: self._draw_scatter())
        self.clear_range.clicked.connect(self._on_clear_range)
        # Filtering 1M cells on every mouse move would be wasteful: brush once the drag rests.
        self._brush_timer = QTimer(self)
        self._brush_timer.setSingleShot(True)
        self._brush_timer.setInterval(60)
        self._brush_timer.timeout.connect(self._brush)
        self.region.sigRegionChanged.connect(lambda: self._brush_timer.start())
        results.opened.connect(self._on_opened)
        results.visible_changed.connect(self._on_visible_changed)
        results.classes_changed.connect(self.update_summary)
        results.selection_changed.connect(self._draw_chosen)

    def _on_opened(self) -> None:
        names = self.results.measurements()
        for combo, pick in ((self.column, 0), (self.scatter_x, 0), (self.scatter_y, 1)):
            with QSignalBlocker(combo):
                combo.clear()
                combo.addItems(names)
                combo.setCurrentIndex(min(pick, len(names) - 1))
        self._on_column_changed()
        self._draw_scatter()

    def _on_column_changed(self) -> None:
        self.results.clear_brush()
        self._draw_histogram()
        self.update_summary()

    def _on_visible_changed(self) -> None:
        self._draw_scatter()
        self.update_summary()

    def _draw_histogram(self) -> None:
        name = self.column.currentText()
        if not name or self.results.table is None:
            self.bars.setData([], [])
            return
        # The histogram shows the filtered cells, not the brushed ones: the range is dragged over it.
        v = self.results.values(name)[self.results.filter_mask]
        v = v[np.isfinite(v)]
        if not v.size:
            self.bars.setData([], [])
            return
        counts, edges = np.histogram(v, bins=HIST_BINS)
        self.bars.setData(edges, counts)
        self.hist.setLabel("bottom", name)
        with QSignalBlocker(self.region):
            self.region.setBounds((float(edges[0]), float(edges[-1])))
            self.region.setRegion((float(edges[0]), float(edges[-1])))

    def show_range(self, lo: float, hi: float) -> None:
        """Show and apply a brushing range (also what dragging the region does)."""
        with QSignalBlocker(self.region):
            self.region.setRegion((lo, hi))
        self._brush()

    def _brush(self) -> None:
        name = self.column.currentText()
        if not name or self.results.table is None:
            return
        lo, hi = self.region.getRegion()
        self.results.set_brush(name, float(lo), float(hi))

    def _on_clear_range(self) -> None:
        self._brush_timer.stop()
        self._draw_histogram()  # the range spans everything again
        self.results.clear_brush()

    def _draw_scatter(self) -> None:
        xname, yname = self.scatter_x.currentText(), self.scatter_y.currentText()
        if not xname or not yname or self.results.table is None:
            self.points.setData([], [])
            return
        shown = np.flatnonzero(self.results.visible)
        if len(shown) > SCATTER_POINTS:
            shown = np.sort(np.random.default_rng(0).choice(shown, SCATTER_POINTS, replace=False))
        self.points.setData(self.results.values(xname)[shown], self.results.values(yname)[shown])
        self.scatter.setLabel("bottom", xname)
        self.scatter.setLabel("left", yname)
        self._draw_chosen()

    def _draw_chosen(self) -> None:
        xname, yname = self.scatter_x.currentText(), self.scatter_y.currentText()
        sel = self.results.selection[:SCATTER_POINTS]
        if not xname or not yname or self.results.table is None or not len(sel):
            self.chosen.setData([], [])
            return
        self.chosen.setData(self.results.values(xname)[sel], self.results.values(yname)[sel])

    def update_summary(self) -> None:
        """Count, density per mm² of tissue, mean and median of the histogram's measurement, per class,
        over the shown cells."""
        name = self.column.currentText()
        if not name or self.results.table is None:
            self.summary.setRowCount(0)
            return
        self.summary.setHorizontalHeaderLabels(["class", "count", "per mm²", f"mean {name}", f"median {name}"])
        values = self.results.values(name)
        shown = self.results.visible
        groups = [("all shown", shown)]
        for k, cls in enumerate(self.results.class_names):
            groups.append((cls, shown & (self.results.class_index == k)))
        if (self.results.class_index < 0).any() and self.results.class_names:
            groups.append(("unclassified", shown & (self.results.class_index < 0)))
        self.summary.setRowCount(len(groups))
        for r, (label, mask) in enumerate(groups):
            v = values[mask]
            v = v[np.isfinite(v)]
            count = int(mask.sum())
            density = f"{count / self.tissue_mm2:,.0f}" if self.tissue_mm2 else "–"
            cells = [
                label,
                f"{count:,}",
                density,
                f"{v.mean():.4g}" if v.size else "",
                f"{np.median(v):.4g}" if v.size else "",
            ]
            for c, text in enumerate(cells):
                self.summary.setItem(r, c, QTableWidgetItem(text))


class ClassesPanel(QWidget):
    """Rule-based classes (name, colour, expression), applied live, with counts per class."""

    rules_applied = Signal(list)  # the ClassRules now in force (saved by the workbench)

    def __init__(self, results: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.results = results
        self.rules_table = QTableWidget(0, 4)
        self.rules_table.setHorizontalHeaderLabels(["name", "colour", "when", "cells"])
        self.rules_table.verticalHeader().hide()
        header = self.rules_table.horizontalHeader()
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.rules_table.cellDoubleClicked.connect(self._on_double_clicked)
        self.rules_table.itemChanged.connect(lambda _: self._schedule())
        self.add = QPushButton("Add class")
        self.remove = QPushButton("Remove")
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        self.unclassified = QLabel()
        buttons = QHBoxLayout()
        buttons.addWidget(self.add)
        buttons.addWidget(self.remove)
        buttons.addStretch(1)
        buttons.addWidget(self.unclassified)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.rules_table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.error)
        self.add.clicked.connect(self._on_add)
        self.remove.clicked.connect(self._on_remove)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.apply)
        self._filling = False

    def set_rules(self, rules: list[ClassRule], *, apply: bool = True) -> None:
        self._filling = True
        try:
            self.rules_table.setRowCount(0)
            for rule in rules:
                self._append(rule.name, rule.color, rule.when)
        finally:
            self._filling = False
        if apply:
            self.apply()

    def rules(self) -> list[ClassRule]:
        """The rules as typed (RulesError for an empty name, a bad colour or an empty condition)."""
        out = []
        for r in range(self.rules_table.rowCount()):
            name, colour, when = (self._text(r, c) for c in range(3))
            out.append(ClassRule(name=name, color=colour, when=when))
        return out

    def apply(self) -> bool:
        """Classify the cells with the rules now typed; shows the error and keeps the old classes when
        a rule is invalid."""
        t = self.results.table
        if t is None:
            return False
        try:
            rules = self.rules()
            classes = classify(t, rules) if rules else np.full(len(t), "", dtype="<U1")
        except RulesError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return False
        self.error.hide()
        self.results.set_classes(classes, [r.name for r in rules], [QColor(r.color) for r in rules])
        self._show_counts()
        self.rules_applied.emit(rules)
        return True

    def _show_counts(self) -> None:
        counts = self.results.class_counts()
        self._filling = True
        try:
            for r in range(self.rules_table.rowCount()):
                item = QTableWidgetItem(f"{counts.get(self._text(r, 0), 0):,}")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                self.rules_table.setItem(r, 3, item)
        finally:
            self._filling = False
        self.unclassified.setText(f"unclassified: {counts.get('', 0):,}")

    def _text(self, row: int, col: int) -> str:
        item = self.rules_table.item(row, col)
        return item.text().strip() if item is not None else ""

    def _append(self, name: str, colour: str, when: str) -> None:
        r = self.rules_table.rowCount()
        self.rules_table.insertRow(r)
        self.rules_table.setItem(r, 0, QTableWidgetItem(name))
        swatch = QTableWidgetItem(colour)
        swatch.setBackground(QColor(colour))
        swatch.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        swatch.setToolTip("double-click to choose")
        self.rules_table.setItem(r, 1, swatch)
        self.rules_table.setItem(r, 2, QTableWidgetItem(when))
        self.rules_table.setItem(r, 3, QTableWidgetItem(""))

    def _schedule(self) -> None:
        if not self._filling:
            self._timer.start()

    def _on_add(self) -> None:
        names = self.results.measurements()
        first = names[0] if names else "area_um2"
        colour = ("#e6194b", "#3cb44b", "#4363d8", "#f58231")[self.rules_table.rowCount() % 4]
        self._filling = True
        try:
            self._append(f"Class {self.rules_table.rowCount() + 1}", colour, f"{first} > 0")
        finally:
            self._filling = False
        self.apply()

    def _on_remove(self) -> None:
        rows = sorted({i.row() for i in self.rules_table.selectedIndexes()}, reverse=True)
        for r in rows:
            self.rules_table.removeRow(r)
        if rows:
            self.apply()

    def _on_double_clicked(self, row: int, col: int) -> None:
        if col != 1:
            return
        colour = QColorDialog.getColor(QColor(self._text(row, 1)), self, "Class colour")
        if colour.isValid():
            item = self.rules_table.item(row, 1)
            if item is None:
                return
            item.setText(colour.name())
            item.setBackground(colour)
