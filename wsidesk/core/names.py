"""The one rule for names that become folder names: profile names and job ids."""

from __future__ import annotations

import re

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Windows refuses these as file names, with any extension and in any case ("nul.txt", "Com1").
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?", re.IGNORECASE)
SAFE_NAME_RULE = "1-64 of A-Z a-z 0-9 _ . -, not ending in '.', and not a name Windows reserves (CON, NUL, COM1, ...)"


def is_safe_name(name: object) -> bool:
    """Whether `name` is safe as one path component on every platform's file system."""
    return (
        isinstance(name, str)
        and _SAFE_NAME.fullmatch(name) is not None
        and not name.endswith(".")  # Windows drops it: "a." and "a" are one folder; also "." and ".."
        and _RESERVED.fullmatch(name) is None
    )
