"""The one rule for names that become folder names: profile names and job ids."""

from __future__ import annotations

import re

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SAFE_NAME_RULE = "1-64 of A-Z a-z 0-9 _ . - (and not '.' or '..')"


def is_safe_name(name: object) -> bool:
    """Whether `name` is safe as one path component on every platform's file system."""
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None and name not in {".", ".."}
