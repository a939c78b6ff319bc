"""The measurement table: a Qt model over a CellTable's columns, one row per shown cell.

No per-row Python objects: row r is cell `rows[r]`, values are read from the column arrays when Qt asks
for a visible cell, sorting is one numpy argsort over the shown rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from wsidesk.gui.results.model import CLASS_COLUMN, ResultsModel

# Plain ints: data() runs for every visible cell on every scroll step, and PySide's enum lookups and
# flag arithmetic cost microseconds each.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)


class CellTableModel(QAbstractTableModel):
    """Rows: the cells that pass the filter and brushing, in sort order. Columns: id, x, y, measurements,
    class."""

    def __init__(self, results: ResultsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._results = results
        self._names: list[str] = []
        self._rows = np.zeros(0, dtype=np.int64)
        self._pos = np.zeros(0, dtype=np.int64)  # cell index -> row (-1 when not shown)
        self._sort: tuple[int, Qt.SortOrder] | None = None
        results.opened.connect(self._on_opened)
        results.visible_changed.connect(self._on_rows_changed)
        results.classes_changed.connect(self._on_classes_changed)

    # -- Qt model -------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:  # noqa: N802 - Qt override
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:  # noqa: N802 - Qt override
        return 0 if parent is not None and parent.isValid() else len(self._names)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole:
            if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self._names):
                return self._names[section]
            if orientation == Qt.Orientation.Vertical:
                return str(section + 1)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        if role == _DISPLAY:
            return self._results.display_value(self._names[index.column()], int(self._rows[index.row()]))
        if role == _ALIGN:
            return _LEFT if self._names[index.column()] == CLASS_COLUMN else _RIGHT
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self._names):
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()  # the selection: each index follows its cell to its new row
        cells = [int(self._rows[i.row()]) for i in old]
        self._sort = (column, order)
        self._rows = self._sorted(self._rows)
        self._reindex()
        new = [self.index(int(self._pos[c]), i.column()) for c, i in zip(cells, old, strict=True)]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    # -- rows and cells -------------------------------------------------------------------------------
    @property
    def column_names(self) -> list[str]:
        return list(self._names)

    @property
    def rows(self) -> np.ndarray:
        """Cell index of each row."""
        return self._rows

    def row_of(self, cells: np.ndarray) -> np.ndarray:
        """Row of each cell (-1 for cells not shown)."""
        return self._pos[np.asarray(cells, dtype=np.int64)]

    def selection_for(self, cells: np.ndarray) -> QItemSelection:
        """A QItemSelection of whole rows for these cells, as few ranges as their rows allow."""
        rows = np.sort(self.row_of(cells))
        rows = rows[rows >= 0]
        selection = QItemSelection()
        if not len(rows):
            return selection
        breaks = np.flatnonzero(np.diff(rows) != 1)
        starts = np.r_[rows[0], rows[breaks + 1]]
        ends = np.r_[rows[breaks], rows[-1]]
        last = len(self._names) - 1
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            selection.select(self.index(a, 0), self.index(b, last))
        return selection

    @staticmethod
    def cells_of(model: CellTableModel, selection: QItemSelectionModel) -> np.ndarray:
        """Cell indices of the rows selected in `selection` (one range at a time, not per index)."""
        sel = selection.selection()
        parts = [np.arange(sel.at(i).top(), sel.at(i).bottom() + 1) for i in range(sel.count())]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(model.rows[np.concatenate(parts)])

    def _sorted(self, rows: np.ndarray) -> np.ndarray:
        if self._sort is None:
            return rows
        column, order = self._sort
        key = self._results.sort_key(self._names[column])[rows]
        # Stable, NaN last either way: a descending sort reverses the ranks, not the array.
        ranks = np.argsort(key, kind="stable")
        if order == Qt.SortOrder.DescendingOrder:
            finite = ~np.isnan(key[ranks]) if key.dtype.kind == "f" else np.ones(len(ranks), dtype=bool)
            ranks = np.r_[ranks[finite][::-1], ranks[~finite]]
        return rows[ranks]

    def _reindex(self) -> None:
        n = self._results.cell_count
        self._pos = np.full(n, -1, dtype=np.int64)
        self._pos[self._rows] = np.arange(len(self._rows))

    def _on_opened(self) -> None:
        self.beginResetModel()
        self._names = self._results.table_columns()
        self._sort = None
        self._rows = np.flatnonzero(self._results.visible)
        self._reindex()
        self.endResetModel()

    def _on_rows_changed(self) -> None:
        self.beginResetModel()
        self._rows = self._sorted(np.flatnonzero(self._results.visible))
        self._reindex()
        self.endResetModel()

    def _on_classes_changed(self) -> None:
        if CLASS_COLUMN in self._names and len(self._rows):
            col = self._names.index(CLASS_COLUMN)
            self.dataChanged.emit(self.index(0, col), self.index(len(self._rows) - 1, col))
