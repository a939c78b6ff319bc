"""Paths as users write them in workflows: one canonical spelling for every comparison."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_path(path: str, base_dir: Path | None) -> Path:
    """A path as written in a workflow, made canonical: `~` expanded, relative ones taken from the
    workflow's folder, `..` and symbolic links resolved. Canonical, so that every place that compares
    slide paths (resume checkpoints, tile plans, the results index) agrees on one spelling."""
    resolved = Path(path).expanduser()
    if not resolved.is_absolute() and base_dir is not None:
        resolved = base_dir / resolved
    return Path(os.path.realpath(resolved))
