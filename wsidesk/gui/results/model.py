"""What the results workbench shows: one result's cells, which pass the filter and brushing, which are
selected, their classes and colours. Views listen to its signals; nothing here draws."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor

from wsidesk.core.cells.expression import compile_filter
from wsidesk.core.cells.store import CellTable, open_cells
from wsidesk.gui.results.colours import BY_CLASS, SINGLE, CellColours, ColourSpec, auto_range, cell_colours

logger = logging.getLogger(__name__)

CLASS_COLUMN = "class"
DEFAULT_FILL = 0.45  # fill opacity when colouring by a measurement or class from no fill
ID_COLUMNS = ("id", "x", "y")
# Colours for classes found in a result without a rule that names their colour.
FALLBACK_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c")


class ResultsModel(QObject):
    """One open result; see the module docstring. Cell indices are rows of the CellTable."""

    opened = Signal()  # a new table: everything resets
    visible_changed = Signal()  # the filter or brushing changed
    selection_changed = Signal()
    current_changed = Signal(int)  # the clicked cell (-1: none)
    classes_changed = Signal()
    colours_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.table: CellTable | None = None
        self.folder: Path | None = None
        self.filter_text = ""
        self._filter = np.zeros(0, dtype=bool)
        self.brush: tuple[str, float, float] | None = None  # column, lo, hi
        self._brush = np.zeros(0, dtype=bool)
        self.visible = np.zeros(0, dtype=bool)
        self.selection = np.zeros(0, dtype=np.int64)
        self.current = -1
        self.class_names: list[str] = []
        self.class_colours: list[QColor] = []
        self.class_index = np.zeros(0, dtype=np.int32)  # per cell, -1: unclassified
        self.spec = ColourSpec()
        self.colours = CellColours([QColor(self.spec.contour)], np.zeros(0, dtype=np.int32))

    # -- opening ---------------------------------------------------------------------------------------
    @property
    def cell_count(self) -> int:
        return 0 if self.table is None else len(self.table)

    def open(self, folder: str | Path) -> CellTable:
        """Open a segment result folder (raises CellStoreError); `table.note` says when the store was
        missing or damaged and the GeoJSON was read instead."""
        table = open_cells(folder)
        self.set_table(table, Path(folder))
        return table

    def close(self) -> None:
        """Show no result (the slide closed, or a new job took over the layers)."""
        if self.table is None:
            return
        self.table, self.folder = None, None
        self.filter_text, self._filter = "", np.zeros(0, dtype=bool)
        self.brush, self._brush = None, np.zeros(0, dtype=bool)
        self.visible = np.zeros(0, dtype=bool)
        self.selection, self.current = np.zeros(0, dtype=np.int64), -1
        self.class_names, self.class_colours, self.class_index = [], [], np.zeros(0, dtype=np.int32)
        self.colours = CellColours([QColor(self.spec.contour)], np.zeros(0, dtype=np.int32))
        self.opened.emit()
        self.current_changed.emit(-1)

    def set_table(self, table: CellTable, folder: Path | None) -> None:
        self.table, self.folder = table, folder
        n = len(table)
        self.filter_text, self._filter = "", np.ones(n, dtype=bool)
        self.brush, self._brush = None, np.ones(n, dtype=bool)
        self.visible = np.ones(n, dtype=bool)
        self.selection, self.current = np.zeros(0, dtype=np.int64), -1
        self._index_classes([], [])
        if self.spec.by not in (SINGLE, BY_CLASS) and self.spec.by not in table.columns:
            self.spec = ColourSpec(contour=self.spec.contour, fill_opacity=self.spec.fill_opacity)
        self._recolour()
        self.opened.emit()
        self.colours_changed.emit()

    def table_columns(self) -> list[str]:
        names = [*ID_COLUMNS, *self.measurements()]
        return [*names, CLASS_COLUMN] if self.table is not None else names

    def measurements(self) -> list[str]:
        return [] if self.table is None else self.table.column_names

    # -- values ----------------------------------------------------------------------------------------
    def values(self, name: str) -> np.ndarray:
        """A numeric column by name (measurements, id, x, y)."""
        t = self._need_table()
        if name in t.columns:
            return t.columns[name]
        if name in ID_COLUMNS:
            return {"id": t.ids, "x": t.x, "y": t.y}[name]
        msg = f"no measurement {name!r}; have {', '.join(self.table_columns())}"
        raise KeyError(msg)

    def sort_key(self, name: str) -> np.ndarray:
        if name == CLASS_COLUMN:
            return self._need_table().classes
        return self.values(name)

    def display_value(self, name: str, cell: int) -> str:
        t = self._need_table()
        if name == CLASS_COLUMN:
            return str(t.classes[cell])
        if name == "id":
            return str(int(t.ids[cell]))
        value = float(self.values(name)[cell])
        if value != value:
            return ""
        return f"{value:.1f}" if name in ("x", "y") else f"{value:.4g}"

    def cell_values(self, cell: int) -> list[tuple[str, str]]:
        """(name, value) of every column of one cell, for the clicked-cell panel."""
        return [(name, self.display_value(name, cell)) for name in self.table_columns()]

    # -- filter and brushing ---------------------------------------------------------------------------
    def set_filter(self, text: str) -> int:
        """Show only cells where `text` holds; raises ExpressionError (with the position and columns)
        and keeps the old filter when it does not parse. Returns how many cells pass."""
        t = self._need_table()
        mask = compile_filter(text, t.column_names)(t)
        self.filter_text, self._filter = text, np.asarray(mask, dtype=bool)
        self._update_visible()
        return int(self._filter.sum())

    def set_brush(self, column: str, lo: float, hi: float) -> None:
        """Show only cells with `lo <= column <= hi` (a histogram's dragged range)."""
        v = self.values(column)
        self.brush = (column, float(min(lo, hi)), float(max(lo, hi)))
        self._brush = (v >= self.brush[1]) & (v <= self.brush[2])
        self._update_visible()

    def clear_brush(self) -> None:
        if self.brush is None:
            return
        self.brush, self._brush = None, np.ones(self.cell_count, dtype=bool)
        self._update_visible()

    @property
    def filter_mask(self) -> np.ndarray:
        return self._filter

    def _update_visible(self) -> None:
        self.visible = self._filter & self._brush
        self.visible_changed.emit()

    # -- selection -------------------------------------------------------------------------------------
    def select(self, cells: np.ndarray, *, current: int | None = None) -> None:
        cells = np.unique(np.asarray(cells, dtype=np.int64))
        changed = not np.array_equal(cells, self.selection)
        self.selection = cells
        if changed:
            self.selection_changed.emit()
        new_current = current if current is not None else (int(cells[0]) if len(cells) == 1 else self.current)
        if new_current != self.current or current is not None:
            self.current = new_current
            self.current_changed.emit(new_current)

    # -- classes ---------------------------------------------------------------------------------------
    def set_classes(self, classes: np.ndarray, names: list[str], colours: list[QColor]) -> None:
        """Each cell's class name ('' none), with the class names in order and their colours."""
        t = self._need_table()
        t.set_classes(classes, {name: c.name() for name, c in zip(names, colours, strict=True)})
        self._index_classes(names, colours)
        self._recolour()
        self.classes_changed.emit()
        self.colours_changed.emit()

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.class_index + 1, minlength=len(self.class_names) + 1)
        return {"": int(counts[0]), **{name: int(c) for name, c in zip(self.class_names, counts[1:], strict=True)}}

    def _index_classes(self, names: list[str], colours: list[QColor]) -> None:
        t = self._need_table()
        names, colours = list(names), list(colours)
        # Classes the table has but no rule names (a store classified by `wsidesk cells classify`).
        for extra in sorted(set(np.unique(t.classes).tolist()) - {""} - set(names)):
            names.append(extra)
            colours.append(QColor(t.class_colors.get(extra, FALLBACK_COLOURS[len(names) % len(FALLBACK_COLOURS)])))
        index = np.full(len(t), -1, dtype=np.int32)
        for k, name in enumerate(names):
            index[t.classes == name] = k
        self.class_names, self.class_colours, self.class_index = names, colours, index

    # -- colours ---------------------------------------------------------------------------------------
    def set_spec(self, spec: ColourSpec) -> None:
        self.spec = spec
        self._recolour()
        self.colours_changed.emit()

    def spec_for(self, by: str) -> ColourSpec:
        """The current look coloured by `by`, with the range fitted to that measurement."""
        s = self.spec
        lo, hi = auto_range(self.values(by)) if by not in (SINGLE, BY_CLASS) else (s.lo, s.hi)
        # Colours read from fills: a thin outline on a dark nucleus shows little of its colour.
        fill = s.fill_opacity if s.fill_opacity > 0 or by == SINGLE else DEFAULT_FILL
        return ColourSpec(by, s.colormap, lo, hi, s.contour, s.contour_width, fill)

    def coloured_values(self) -> np.ndarray | None:
        by = self.spec.by
        return None if by in (SINGLE, BY_CLASS) or self.table is None else self.values(by)

    def _recolour(self) -> None:
        self.colours = cell_colours(
            self.spec, values=self.coloured_values(), class_index=self.class_index, class_colours=self.class_colours
        )

    def _need_table(self) -> CellTable:
        if self.table is None:
            msg = "no result is open"
            raise RuntimeError(msg)
        return self.table
