"""Annotations (regions of interest): a named, coloured polygonal area of a slide in level-0 px."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from wsidesk.core.errors import WsideskError

DEFAULT_COLOR = (255, 200, 0)  # QuPath's yellow for unclassified annotations
Rgb = tuple[int, int, int]


class AnnotationError(WsideskError):
    """A region cannot be used (outside the slide, no area) or a file holds no annotations."""


@dataclass(frozen=True, slots=True, eq=False)
class Annotation:
    """One region: name, colour, Polygon/MultiPolygon in level-0 px, and QuPath properties kept as read.

    `properties` holds what wsidesk does not interpret (classification, measurements, metadata, isLocked,
    ...), so a file imported from QuPath goes back to QuPath with them.
    """

    name: str
    geometry: Polygon | MultiPolygon
    color: Rgb = DEFAULT_COLOR
    properties: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, Polygon | MultiPolygon):
            msg = f"annotation {self.name!r}: a region is a Polygon or MultiPolygon, not a {self.geometry.geom_type}"
            raise AnnotationError(msg)
        if len(self.color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in self.color):
            msg = f"annotation {self.name!r}: colour must be three integers 0-255, got {self.color!r}"
            raise AnnotationError(msg)
        object.__setattr__(self, "properties", MappingProxyType(dict(self.properties)))

    @property
    def area(self) -> float:
        """Area in level-0 px²."""
        return float(self.geometry.area)

    def with_geometry(self, geometry: Polygon | MultiPolygon) -> Annotation:
        return replace(self, geometry=geometry)

    def renamed(self, name: str) -> Annotation:
        return replace(self, name=name)

    def recoloured(self, color: Rgb) -> Annotation:
        return replace(self, color=color)


def polygonal(geometry: BaseGeometry) -> Polygon | MultiPolygon:
    """The area parts of a geometry (lines and points of a repaired polygon dropped), as one geometry."""
    parts = [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon) and not g.is_empty]
    parts += [p for g in shapely.get_parts(geometry) if isinstance(g, MultiPolygon) for p in g.geoms]
    if len(parts) == 1:
        return parts[0]
    return MultiPolygon(parts)


def clean_region(
    name: str, geometry: BaseGeometry, slide_size: tuple[int, int] | None
) -> tuple[Polygon | MultiPolygon, list[str]]:
    """A usable region and notes on what was repaired; AnnotationError when it cannot be used.

    Self-intersecting rings are repaired with shapely's make_valid; a region reaching past the slide is
    cut to it. A region of zero area, or one wholly outside the slide, is refused.
    """
    notes: list[str] = []
    if not geometry.is_empty and not geometry.is_valid:  # a bow tie's signed areas cancel: repair first
        why = shapely.is_valid_reason(geometry)
        geometry = shapely.make_valid(geometry)
        notes.append(f"region {name!r} was invalid ({why}); repaired with make_valid")
    region = polygonal(geometry)
    if region.is_empty or region.area <= 0:
        msg = f"region {name!r} has zero area; draw or import a region that encloses an area"
        raise AnnotationError(msg)
    if slide_size is not None:
        width, height = slide_size
        slide = shapely.box(0, 0, width, height)
        if not region.intersects(slide) or region.intersection(slide).area <= 0:
            x0, y0, x1, y1 = (round(v) for v in region.bounds)
            msg = (
                f"region {name!r} ({x0},{y0})-({x1},{y1}) lies outside the slide ({width}x{height} px); "
                "was it drawn on another slide?"
            )
            raise AnnotationError(msg)
        if not slide.contains(region):
            region = polygonal(region.intersection(slide))
            notes.append(f"region {name!r} reached past the slide's edge; cut to the slide")
    return region, notes
