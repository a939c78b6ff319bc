"""Rule-based cell classes: a YAML list of `{name, color: "#rrggbb", when: <filter expression>}`.

The first rule whose `when` holds names the cell; a cell no rule matches stays unclassified (''). A result
keeps the rules it was classified with in `classes.yaml` beside its cells.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from wsidesk.core.cells.expression import ExpressionError, compile_filter
from wsidesk.core.errors import WsideskError
from wsidesk.core.fileio import atomic_write

if TYPE_CHECKING:
    from wsidesk.core.cells.store import CellTable

CLASSES_NAME = "classes.yaml"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_KEYS = ("name", "color", "when")


class RulesError(WsideskError, ValueError):
    """A class rules file or rule is invalid; the message names the file, the rule and what to fix."""


@dataclass(frozen=True, slots=True)
class ClassRule:
    """One class: its name, display colour (#rrggbb) and the condition on measurements that selects it."""

    name: str
    color: str
    when: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            msg = f"a class needs a non-empty name, got {self.name!r}"
            raise RulesError(msg)
        if not isinstance(self.color, str) or not _COLOR.match(self.color):
            msg = f"class {self.name!r}: color must be '#rrggbb' (e.g. '#c83232'), got {self.color!r}"
            raise RulesError(msg)
        if not isinstance(self.when, str) or not self.when.strip():
            msg = f"class {self.name!r}: 'when' must be an expression, e.g. 'area_um2 > 40'"
            raise RulesError(msg)

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as QuPath's GeoJSON writes it: [r, g, b] 0-255."""
        return int(self.color[1:3], 16), int(self.color[3:5], 16), int(self.color[5:7], 16)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "color": self.color, "when": self.when}


def parse_rules(data: Any, *, where: str = "class rules") -> list[ClassRule]:
    """Rules from parsed YAML (a list of mappings); RulesError names the rule and the problem."""
    if not isinstance(data, list) or not data:
        example = "- {name: Tumor, color: '#c83232', when: 'area_um2 > 40'}"
        msg = f"{where}: expected a non-empty list of classes, e.g.\n{example}"
        raise RulesError(msg)
    rules: list[ClassRule] = []
    seen: set[str] = set()
    for n, entry in enumerate(data, start=1):
        if not isinstance(entry, Mapping):
            msg = f"{where}: class {n} must be a mapping with {', '.join(_KEYS)}, got {entry!r}"
            raise RulesError(msg)
        unknown = sorted(set(map(str, entry)) - set(_KEYS))
        missing = [k for k in _KEYS if k not in entry]
        if unknown or missing:
            parts = [f"unknown keys {unknown}" if unknown else "", f"missing {missing}" if missing else ""]
            msg = f"{where}: class {n}: {'; '.join(p for p in parts if p)} (keys: {', '.join(_KEYS)})"
            raise RulesError(msg)
        try:
            rule = ClassRule(name=entry["name"], color=entry["color"], when=entry["when"])
        except RulesError as exc:
            msg = f"{where}: class {n}: {exc}"
            raise RulesError(msg) from None
        if rule.name in seen:
            msg = f"{where}: class {n}: the name {rule.name!r} is used twice"
            raise RulesError(msg)
        seen.add(rule.name)
        rules.append(rule)
    return rules


def load_rules(path: str | Path, *, columns: Iterable[str] | None = None) -> list[ClassRule]:
    """Rules from a YAML file; with `columns` each `when` is also checked against them."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read class rules {path}: {exc.strerror or exc}"
        raise RulesError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"class rules {path} is not valid YAML: {exc}"
        raise RulesError(msg) from exc
    rules = parse_rules(data, where=str(path))
    if columns is not None:
        check_rules(rules, columns, where=str(path))
    return rules


def save_rules(rules: Sequence[ClassRule], path: str | Path) -> Path:
    """Write rules as YAML atomically (the format load_rules reads)."""
    path = Path(path)
    with atomic_write(path) as f:
        yaml.safe_dump([r.to_dict() for r in rules], f, sort_keys=False, allow_unicode=True)
    return path


def check_rules(rules: Sequence[ClassRule], columns: Iterable[str], *, where: str = "class rules") -> None:
    """Compile every rule's expression; RulesError names the rule, the position and the columns."""
    names = tuple(columns)
    for rule in rules:
        try:
            compile_filter(rule.when, names)
        except ExpressionError as exc:
            msg = f"{where}: class {rule.name!r}: 'when: {rule.when}': {exc}"
            raise RulesError(msg) from None


def classify(table: CellTable, rules: Sequence[ClassRule], *, where: str = "class rules") -> np.ndarray:
    """The class of each cell (str array, '' = no rule matched); the first matching rule wins."""
    filters = []
    for rule in rules:
        try:
            filters.append(compile_filter(rule.when, table.column_names))
        except ExpressionError as exc:
            msg = f"{where}: class {rule.name!r}: 'when: {rule.when}': {exc}"
            raise RulesError(msg) from None
    width = max((len(r.name) for r in rules), default=1)
    out = np.full(len(table), "", dtype=f"<U{width}")
    open_ = np.ones(len(table), dtype=bool)
    for rule, flt in zip(rules, filters, strict=True):
        hit = flt(table) & open_
        out[hit] = rule.name
        open_ &= ~hit
    return out


def classify_result(result: str | Path, rules: Sequence[ClassRule]) -> CellTable:
    """Classify a segment result in place: the classes into its cell store, the rules into classes.yaml."""
    from wsidesk.core.cells.store import STORE_NAME, open_cells, result_dir, save_table

    folder = result_dir(result)
    table = open_cells(folder)
    table.set_classes(classify(table, rules), {r.name: r.color for r in rules})
    save_rules(rules, folder / CLASSES_NAME)
    save_table(table, folder / STORE_NAME)
    return table


def class_counts(classes: np.ndarray, rules: Sequence[ClassRule] = ()) -> dict[str, int]:
    """Cells per class: the rules' classes first (zero included), then others; '' = unclassified."""
    names, counts = np.unique(np.asarray(classes, dtype=str), return_counts=True)
    found = dict(zip(names.tolist(), counts.tolist(), strict=True))
    out = {r.name: int(found.pop(r.name, 0)) for r in rules}
    unclassified = found.pop("", 0)
    out.update({k: int(v) for k, v in sorted(found.items())})
    if unclassified:
        out[""] = int(unclassified)
    return out


def class_colors(rules: Sequence[ClassRule]) -> dict[str, tuple[int, int, int]]:
    """Class name -> [r, g, b] for the GeoJSON `classification`."""
    return {r.name: r.rgb for r in rules}


__all__ = [
    "CLASSES_NAME",
    "ClassRule",
    "RulesError",
    "check_rules",
    "class_colors",
    "class_counts",
    "classify",
    "classify_result",
    "load_rules",
    "parse_rules",
    "save_rules",
]
