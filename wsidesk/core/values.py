"""Helpers for the frozen value objects of the core."""

from __future__ import annotations

import reprlib
from dataclasses import fields
from types import MappingProxyType
from typing import Any


def reduce_frozen(value: Any) -> tuple[Any, tuple[Any, ...]]:
    """`__reduce__` for a frozen dataclass that keeps read-only mapping views.

    The standard pickle cannot copy a `MappingProxyType`; rebuilding the value from its fields, with
    each view turned back into a dict, lets `__post_init__` freeze it again on the other side (a Dask
    worker, the GUI).
    """
    args = tuple(
        dict(v) if isinstance(v, MappingProxyType) else v
        for v in (getattr(value, f.name) for f in fields(value) if f.init)
    )
    return type(value), args


_SHOWN = reprlib.Repr()  # keyword arguments need Python 3.12
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxtuple, _SHOWN.maxdict, _SHOWN.maxset = 3, 6, 6, 4, 6
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 76, 76, 40


def shown(value: Any, limit: int = 80) -> str:
    """`repr(value)` for a message, about `limit` characters at most however large the value.

    Values come from user files: a 10 MB string or a deeply nested list must not become a 10 MB
    error line, and `reprlib` stops early instead of building the whole repr first.
    """
    text = _SHOWN.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
