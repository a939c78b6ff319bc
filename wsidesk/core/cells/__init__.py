"""Cells of a segment result as columns: the store, filter expressions, class rules, summaries and exports."""

from wsidesk.core.cells.classes import ClassRule, RulesError, class_counts, classify, load_rules, save_rules
from wsidesk.core.cells.expression import CellFilter, ExpressionError, compile_filter
from wsidesk.core.cells.store import CellStoreError, CellTable, open_cells, write_cell_store

__all__ = [
    "CellFilter",
    "CellStoreError",
    "CellTable",
    "ClassRule",
    "ExpressionError",
    "RulesError",
    "class_counts",
    "classify",
    "compile_filter",
    "load_rules",
    "open_cells",
    "save_rules",
    "write_cell_store",
]
