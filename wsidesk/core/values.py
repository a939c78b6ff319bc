"""Helpers for the frozen value objects of the core."""

from __future__ import annotations

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
