"""Profile names: the unit of isolation for slides, workflows, runs and results."""

from __future__ import annotations

import re

from wsidesk.core.errors import ProfileError

DEFAULT_PROFILE = "default"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_profile_name(name: str) -> str:
    """Return `name` if it is a valid profile name, else raise ProfileError saying why."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in {".", ".."}:
        msg = f"invalid profile name {name!r}: use 1-64 of A-Z a-z 0-9 _ . - (and not '.' or '..')"
        raise ProfileError(msg)
    return name
