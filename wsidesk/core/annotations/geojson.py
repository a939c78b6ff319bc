"""QuPath GeoJSON annotations: read what QuPath exports, write what QuPath imports.

QuPath (>= 0.4) writes one Feature per object with `id` (a UUID), `geometry` and `properties`
{objectType, name, color: [r, g, b], classification: {name, color}, isLocked, measurements, metadata}.
A Feature without objectType is an annotation to QuPath, and so it is here. Properties wsidesk does not
use are kept as read and written back, so a round trip through wsidesk loses nothing QuPath stored.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape

from wsidesk.core.annotations.model import DEFAULT_COLOR, Annotation, AnnotationError, Rgb, clean_region
from wsidesk.core.fileio import atomic_write

logger = logging.getLogger(__name__)

OWN_KEYS = ("objectType", "name", "color")  # properties that Annotation fields hold
AREA_TYPES = ("Polygon", "MultiPolygon")


@dataclass(frozen=True, slots=True)
class ImportResult:
    annotations: tuple[Annotation, ...]
    notes: tuple[str, ...] = field(default=())  # repairs and what was left out, for the user


def read_annotations(
    path: str | Path, *, slide_size: tuple[int, int] | None = None, allow_empty: bool = False
) -> ImportResult:
    """Annotations of a GeoJSON file (FeatureCollection, a Feature, or a list of Features).

    `allow_empty`: a collection with no features at all is no annotations rather than an error.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"cannot read annotations from {path}: {exc}"
        raise AnnotationError(msg) from exc
    return parse_annotations(doc, source=str(path), slide_size=slide_size, allow_empty=allow_empty)


def parse_annotations(
    doc: Any, *, source: str, slide_size: tuple[int, int] | None = None, allow_empty: bool = False
) -> ImportResult:
    """Annotations of a parsed GeoJSON document; AnnotationError saying what the file holds when none."""
    features = _features(doc, source)
    if not features and allow_empty:
        return ImportResult(())
    annotations: list[Annotation] = []
    notes: list[str] = []
    others: Counter[str] = Counter()
    not_areas: Counter[str] = Counter()
    for number, feat in enumerate(features, start=1):
        if not isinstance(feat, Mapping):
            others["non-Feature entries"] += 1
            continue
        props = feat.get("properties") or {}
        kind = str(props.get("objectType") or props.get("object_type") or "annotation")
        if kind != "annotation":
            others[kind] += 1
            continue
        geom_doc = feat.get("geometry") or {}
        geom_type = geom_doc.get("type") if isinstance(geom_doc, Mapping) else None
        if geom_type not in AREA_TYPES:
            not_areas[str(geom_type)] += 1
            continue
        name = _name(props, number)
        try:
            geometry = shape(geom_doc)
        except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException) as exc:
            notes.append(f"{source}: feature {number} ({name!r}) has unreadable coordinates ({exc}); left out")
            continue
        try:
            region, repairs = clean_region(name, geometry, slide_size)
        except AnnotationError as exc:
            notes.append(f"{exc}; left out")
            continue
        notes.extend(repairs)
        kept = {k: v for k, v in props.items() if k not in OWN_KEYS}
        feature_id = feat.get("id")
        extra = {"id": str(feature_id)} if isinstance(feature_id, str) and feature_id else {}
        annotations.append(Annotation(name, region, color=_color(props), properties=kept, **extra))
    if not_areas:
        notes.append(f"left out {_counted(not_areas, 'annotation')} without an area")
    if others:
        notes.append(f"left out {_counted(others)}")
    if not annotations:
        refused = [n for n in notes if not n.startswith("left out ")]  # area annotations that could not be used
        if refused:
            msg = f"{source}: none of its annotations can be used: " + "; ".join(refused)
        else:
            found = _counted(others + not_areas) if others or not_areas else "no features"
            msg = (
                f"{source} holds no area annotations (objectType 'annotation', Polygon or MultiPolygon): found {found}"
            )
        raise AnnotationError(msg)
    return ImportResult(tuple(annotations), tuple(notes))


def _features(doc: Any, source: str) -> Sequence[Any]:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, Mapping):
        if doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
            return list(doc["features"])
        if doc.get("type") == "Feature":
            return [doc]
        if doc.get("type") in AREA_TYPES:  # a bare geometry
            return [{"type": "Feature", "geometry": doc, "properties": {}}]
    msg = f"{source} is not GeoJSON annotations: expected a FeatureCollection, a Feature or a list of Features"
    raise AnnotationError(msg)


def _counted(counts: Counter[str], noun: str = "") -> str:
    """'1200 detections, 3 cells' (or '2 LineString annotations' with a noun)."""
    parts = []
    for kind, n in counts.most_common():
        label = f"{kind} {noun}".strip() if noun else kind
        parts.append(f"{n} {label}{'' if n == 1 or label.endswith('s') else 's'}")
    return ", ".join(parts)


def _name(props: Mapping[str, Any], number: int) -> str:
    name = props.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    classification = props.get("classification")
    if isinstance(classification, Mapping) and isinstance(classification.get("name"), str):
        return str(classification["name"])
    return f"Annotation {number}"


def _color(props: Mapping[str, Any]) -> Rgb:
    """The object's colour, else its class's, else the default; QuPath writes [r, g, b] or a packed int."""
    classification = props.get("classification")
    for value in (props.get("color"), classification.get("color") if isinstance(classification, Mapping) else None):
        if isinstance(value, list) and len(value) == 3 and all(isinstance(c, int) for c in value):
            r, g, b = value
            return (r & 255, g & 255, b & 255)
        if isinstance(value, int) and not isinstance(value, bool):
            return ((value >> 16) & 255, (value >> 8) & 255, value & 255)
    return DEFAULT_COLOR


def to_feature(annotation: Annotation) -> dict[str, Any]:
    """The QuPath Feature of one annotation."""
    props: dict[str, Any] = {"objectType": "annotation", "name": annotation.name, "color": list(annotation.color)}
    props.update({k: v for k, v in annotation.properties.items() if k not in OWN_KEYS})
    return {
        "type": "Feature",
        "id": annotation.id,
        "geometry": json.loads(shapely.to_geojson(annotation.geometry)),
        "properties": props,
    }


def to_document(annotations: Iterable[Annotation], **members: Any) -> dict[str, Any]:
    """A FeatureCollection; `members` are extra top-level members (QuPath ignores them)."""
    return {"type": "FeatureCollection", **members, "features": [to_feature(a) for a in annotations]}


def write_annotations(annotations: Iterable[Annotation], path: str | Path, **members: Any) -> Path:
    """Write a QuPath-importable FeatureCollection atomically and durably (fsynced before the rename)."""
    path = Path(path)
    doc = to_document(annotations, **members)
    with atomic_write(path, newline="\n", fsync=True) as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    return path


__all__ = ["ImportResult", "parse_annotations", "read_annotations", "to_document", "to_feature", "write_annotations"]
