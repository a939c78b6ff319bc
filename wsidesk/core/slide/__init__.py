"""Slides: the SlideReader protocol, readers (OpenSlide, in-memory) and synthetic demo slides."""

from __future__ import annotations

from wsidesk.core.slide.demo import DemoGroundTruth, DemoTruth, load_truth, write_demo_slide
from wsidesk.core.slide.openslide_reader import OpenSlideReader
from wsidesk.core.slide.reader import (
    ArrayReader,
    SlideReader,
    best_level_for_downsample,
    is_slide,
    open_slide,
    require_mpp,
)

__all__ = [
    "is_slide",
    "ArrayReader",
    "DemoGroundTruth",
    "DemoTruth",
    "OpenSlideReader",
    "SlideReader",
    "best_level_for_downsample",
    "load_truth",
    "open_slide",
    "require_mpp",
    "write_demo_slide",
]
