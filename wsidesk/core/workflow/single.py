"""One-job workflows that the app builds for the user (no YAML file involved)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wsidesk.core.workflow.model import Branch, Job, Workflow

SEGMENT_JOB_ID = "segment"


def segment_workflow(slide: Path, params: Mapping[str, Any]) -> Workflow:
    """One `segment` job on one slide: what `wsidesk segment` and the GUI's "Segment this slide" run."""
    job = Job(SEGMENT_JOB_ID, "segment", str(slide), params=params)
    return Workflow(name=f"Segment {slide.name}", branches=(Branch("segment", (job,)),))
