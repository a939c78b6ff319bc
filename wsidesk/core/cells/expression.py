"""Filter expressions over cell columns, e.g. `area_um2 > 40 and hematoxylin_od_mean > 0.3`.

Parsed with Python's `ast` and checked against a whitelist of node types (no calls, attributes or
subscripts), then evaluated with numpy over whole columns: nothing is ever passed to eval. Operators:
and / or / not, parentheses, comparisons (chained too), + - * / // % **, numbers, strings for the class
and region (`class == "Tumor"`, `region in ("A", "B")`), and the cell's `x`, `y`, `id`.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from wsidesk.core.errors import WsideskError

if TYPE_CHECKING:
    from wsidesk.core.cells.store import CellTable

# `class` is a Python keyword: the tokenizer renames it to a same-length identifier so positions hold.
_CLASS_ALIAS = "_cls_"
STRING_NAMES = ("class", "region")
CELL_NAMES = ("x", "y", "id")

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_SYMBOLS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


class ExpressionError(WsideskError, ValueError):
    """An expression that does not parse or names an unknown column; says where and what is available."""

    def __init__(self, message: str, *, text: str, position: int, columns: Iterable[str]) -> None:
        self.text = text
        self.position = position  # 0-based character offset into `text`
        self.columns = tuple(columns)
        available = ", ".join(self.columns) or "none"
        pointer = f"\n  {text}\n  {' ' * position}^" if text and "\n" not in text else ""
        super().__init__(f"{message} at position {position + 1}{pointer}\navailable columns: {available}")


@dataclass(frozen=True, slots=True)
class CellFilter:
    """A checked expression; call it on a CellTable (or a name -> array mapping) for a bool mask."""

    text: str
    names: tuple[str, ...]  # the columns it reads
    tree: ast.expr | None
    columns: tuple[str, ...]  # every name it could have used (for messages)

    def __call__(self, table: CellTable | Mapping[str, np.ndarray]) -> np.ndarray:
        n = len(table) if not isinstance(table, Mapping) else len(next(iter(table.values()), ()))
        if self.tree is None:
            return np.ones(n, dtype=bool)
        values = {name: _lookup(table, name, self) for name in self.names}
        out = np.asarray(_evaluate(self.tree, values))
        return np.broadcast_to(out, (n,)).copy() if out.shape != (n,) else out


def _lookup(table: CellTable | Mapping[str, np.ndarray], name: str, flt: CellFilter) -> np.ndarray:
    if isinstance(table, Mapping):
        if name in table:
            return np.asarray(table[name])
    elif name in table.columns:
        return table.columns[name]
    elif name == "class":
        return table.classes
    elif name == "region" and table.regions is not None:
        return table.regions
    elif name in CELL_NAMES:
        return {"x": table.x, "y": table.y, "id": table.ids}[name]
    where = flt.text.find(name)
    raise ExpressionError(f"these cells have no {name!r}", text=flt.text, position=max(where, 0), columns=flt.columns)


def compile_filter(text: str, columns: Iterable[str]) -> CellFilter:
    """Parse and check `text` against the numeric `columns` (plus class, region, x, y, id).

    An empty text selects every cell. Raises ExpressionError naming the position and the columns.
    """
    numeric = tuple(columns)
    shown = (*numeric, *CELL_NAMES, *STRING_NAMES)
    if not text.strip():
        return CellFilter(text, (), None, shown)
    # One line without leading blanks (ast's eval mode rejects an indent); positions shift by `lead`.
    source = _rename_class(text.replace("\n", " ").replace("\r", " ").replace("\t", " "))
    lead = len(source) - len(source.lstrip())
    where = _Where(text, shown, lead)
    try:
        tree = ast.parse(source[lead:], mode="eval")
    except SyntaxError as exc:
        if not exc.offset:  # Python's offset 0: the text ended while more was expected
            position, why = len(text.rstrip()), "it ends too early (a value or ')' is missing)"
        else:
            position, why = min(exc.offset - 1 + lead, len(text)), exc.msg
        raise ExpressionError(
            f"cannot parse the expression: {why}", text=text, position=position, columns=shown
        ) from None
    kinds = dict.fromkeys((*numeric, *CELL_NAMES), "num") | dict.fromkeys(STRING_NAMES, "str")
    names: list[str] = []
    if _check(tree.body, kinds, names, where) != "bool":
        raise _fail("the expression must be a condition (e.g. area_um2 > 40), not a value", tree.body, where)
    return CellFilter(text, tuple(dict.fromkeys(names)), tree.body, shown)


def _rename_class(text: str) -> str:
    """`class` -> `_cls_` as a token (not inside strings), same length so positions hold."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and tok.string == "class":
                out.append((tok.start[1], tok.end[1]))
    except (tokenize.TokenError, SyntaxError):
        pass  # ast.parse reports it, with its position
    for start, end in reversed(out):
        text = text[:start] + _CLASS_ALIAS + text[end:]
    return text


@dataclass(frozen=True, slots=True)
class _Where:
    text: str
    shown: tuple[str, ...]
    lead: int  # blanks stripped before parsing


def _fail(message: str, node: ast.AST, where: _Where) -> ExpressionError:
    position = min(getattr(node, "col_offset", 0) + where.lead, len(where.text))
    return ExpressionError(message, text=where.text, position=position, columns=where.shown)


def _check(node: ast.expr, kinds: Mapping[str, str], names: list[str], where: _Where) -> str:  # noqa: PLR0911, PLR0912
    """The kind of value `node` gives ('num', 'str', 'bool'); raises on anything not whitelisted."""

    def sub(child: ast.expr) -> str:
        return _check(child, kinds, names, where)

    if isinstance(node, ast.BoolOp):
        for value in node.values:
            if sub(value) != "bool":
                word = "and" if isinstance(node.op, ast.And) else "or"
                raise _fail(f"'{word}' joins conditions; this part is a value", value, where)
        return "bool"
    if isinstance(node, ast.UnaryOp):
        kind = sub(node.operand)
        if isinstance(node.op, ast.Not):
            if kind != "bool":
                raise _fail("'not' needs a condition", node, where)
            return "bool"
        if isinstance(node.op, ast.USub | ast.UAdd) and kind == "num":
            return "num"
        raise _fail("this operator needs a number", node, where)
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise _fail(f"operator {type(node.op).__name__} is not allowed", node, where)
        if sub(node.left) != "num" or sub(node.right) != "num":
            raise _fail("arithmetic needs numbers on both sides", node, where)
        return "num"
    if isinstance(node, ast.Compare):
        left = sub(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right_node, ast.Tuple | ast.List | ast.Set) or not right_node.elts:
                    raise _fail('\'in\' needs a list of values, e.g. class in ("A", "B")', right_node, where)
                for elt in right_node.elts:
                    if not isinstance(elt, ast.Constant) or _constant_kind(elt, where) != left:
                        raise _fail(f"the values after 'in' must be {_kind_text(left)}", elt, where)
                right = left
            elif type(op) in _COMPARE:
                right = sub(right_node)
                if left != right:
                    raise _fail(f"cannot compare {_kind_text(left)} with {_kind_text(right)}", right_node, where)
                if left != "num" and not isinstance(op, ast.Eq | ast.NotEq):
                    raise _fail(f"'{_SYMBOLS[type(op)]}' needs numbers; use == or != for text", node, where)
            else:
                raise _fail(f"comparison {type(op).__name__} is not allowed", node, where)
            left = right
        return "bool"
    if isinstance(node, ast.Name):
        name = "class" if node.id == _CLASS_ALIAS else node.id
        if name not in kinds:
            raise _fail(f"unknown column {name!r}", node, where)
        names.append(name)
        return kinds[name]
    if isinstance(node, ast.Constant):
        return _constant_kind(node, where)
    what = {ast.Call: "function calls", ast.Attribute: "attributes", ast.Subscript: "indexing"}.get(type(node))
    raise _fail(f"{what or type(node).__name__} not allowed in a filter", node, where)


def _constant_kind(node: ast.Constant, where: _Where) -> str:
    if isinstance(node.value, bool):
        return "bool"
    if isinstance(node.value, int | float):
        return "num"
    if isinstance(node.value, str):
        return "str"
    raise _fail(f"constant {node.value!r} is not allowed", node, where)


def _kind_text(kind: str) -> str:
    return {"num": "a number", "str": "text", "bool": "a condition"}[kind]


def _evaluate(node: ast.expr, values: Mapping[str, np.ndarray]) -> Any:  # noqa: PLR0911
    """Evaluate a checked tree over whole columns (numpy; NaN compares False)."""
    if isinstance(node, ast.BoolOp):
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = _evaluate(node.values[0], values)
        for value in node.values[1:]:
            result = combine(result, _evaluate(value, values))
        return result
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        if isinstance(node.op, ast.Not):
            return np.logical_not(operand)
        return np.negative(operand) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _BINOPS[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, values)
        mask: Any = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                options = [elt.value for elt in right_node.elts]  # type: ignore[attr-defined]
                hit = np.isin(left, options)
                mask = np.logical_and(mask, hit if isinstance(op, ast.In) else ~hit)
                continue
            right = _evaluate(right_node, values)
            with np.errstate(invalid="ignore"):
                mask = np.logical_and(mask, _COMPARE[type(op)](left, right))
            left = right
        return mask
    if isinstance(node, ast.Name):
        return values["class" if node.id == _CLASS_ALIAS else node.id]
    if isinstance(node, ast.Constant):
        return node.value
    msg = f"unchecked node {type(node).__name__}"  # unreachable: _check whitelists
    raise TypeError(msg)


__all__ = ["CellFilter", "ExpressionError", "compile_filter"]
