"""Profile names: the unit of isolation for slides, workflows, runs and results."""

from __future__ import annotations

from wsidesk.core.errors import ProfileError
from wsidesk.core.names import SAFE_NAME_RULE, is_safe_name

DEFAULT_PROFILE = "default"


def check_profile_name(name: str) -> str:
    """Return `name` if it is a valid profile name, else raise ProfileError saying why."""
    if not is_safe_name(name):
        msg = f"invalid profile name {name!r}: use {SAFE_NAME_RULE}"
        raise ProfileError(msg)
    return name
