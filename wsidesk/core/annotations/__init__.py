"""Annotations (regions of interest): the value, QuPath GeoJSON, per-slide storage, and job regions."""

from __future__ import annotations

from wsidesk.core.annotations.geojson import ImportResult, parse_annotations, read_annotations, write_annotations
from wsidesk.core.annotations.model import DEFAULT_COLOR, Annotation, AnnotationError, clean_region
from wsidesk.core.annotations.store import AnnotationStore, slide_key

__all__ = [
    "DEFAULT_COLOR",
    "Annotation",
    "AnnotationError",
    "AnnotationStore",
    "ImportResult",
    "clean_region",
    "parse_annotations",
    "read_annotations",
    "slide_key",
    "write_annotations",
]
