"""QuPath-importable GeoJSON: one Feature per cell, Polygon in level-0 px, measurements as a dict.

QuPath (>= 0.4) reads `id` as the object's UUID, `properties.objectType`, `properties.measurements`
(a name -> number dict) and `properties.metadata` (string values); other members are ignored, which is
where the collection-level `"partial": true` of an unfinished run lives.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wsidesk.core.fileio import atomic_write
from wsidesk.core.segment.cells import Cell

logger = logging.getLogger(__name__)

_ID_NAMESPACE = uuid.UUID("6f1c1f0e-4d55-5b43-9a53-77736964657a")  # fixed: ids are stable per file
COORD_DECIMALS = 2


def write_geojson(
    cells: Iterable[Cell],
    path: str | Path,
    *,
    partial: bool = False,
    object_type: str = "detection",
    classes: Iterable[str] | None = None,
    colors: Mapping[str, tuple[int, int, int]] | None = None,
) -> Path:
    """Stream the cells to a FeatureCollection at `path`, atomically (tmp file + os.replace).

    Feature ids are UUIDs made of the file's absolute path and the cell id: stable across rewrites,
    distinct between files. `partial` marks the results of an unfinished run. `classes` (one name per
    cell, '' = none) become QuPath's `classification: {"name", "color": [r, g, b]}` with `colors`.
    """
    path = Path(path)
    prefix = feature_id_prefix(path)
    count = 0
    with atomic_write(path, newline="\n") as f:
        head: dict[str, Any] = {"type": "FeatureCollection"}
        if partial:
            head["partial"] = True
        f.write(json.dumps(head)[:-1] + ', "features": [\n')
        names = iter(classes) if classes is not None else None
        for cell in cells:
            key = cell.id if cell.id > 0 else count + 1
            f.write(",\n" if count else "")
            klass = _classification(next(names), colors) if names is not None else ""
            f.write(_feature_json(cell, feature_id=f"{prefix}-{key:012x}", object_type=object_type, klass=klass))
            count += 1
        f.write("\n]}\n")
    logger.debug("wrote %d cells to %s%s", count, path, " (partial)" if partial else "")
    return path


def feature_id_prefix(path: Path) -> str:
    """Feature ids are this plus '-' and the cell id as 12 hex digits: a uuid5 of the file's absolute
    path, so stable across rewrites and distinct between runs and jobs (QuPath keeps ids unique)."""
    return str(uuid.uuid5(_ID_NAMESPACE, str(path.resolve())))[:23]


def feature(
    polygon: np.ndarray,
    *,
    feature_id: str,
    object_type: str,
    measurements: Mapping[str, float] | None = None,
    metadata: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A GeoJSON Feature dict for one polygon (ring not closed, (N, 2) level-0 px)."""
    props: dict[str, Any] = {"objectType": object_type}
    if measurements:
        props["measurements"] = _finite(measurements)
    if metadata:
        props["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    if extra:
        props.update(extra)
    return {
        "type": "Feature",
        "id": feature_id,
        "geometry": {"type": "Polygon", "coordinates": [_ring(polygon)]},
        "properties": props,
    }


def _classification(name: str, colors: Mapping[str, tuple[int, int, int]] | None) -> str:
    """`"classification":{...},` as QuPath writes it (color an [r, g, b] list), or '' for no class."""
    if not name:
        return ""
    rgb = (colors or {}).get(name)
    color = f',"color":[{int(rgb[0])},{int(rgb[1])},{int(rgb[2])}]' if rgb is not None else ""
    return f'"classification":{{"name":{_key(name)}{color}}},'


def _feature_json(cell: Cell, *, feature_id: str, object_type: str, klass: str = "") -> str:
    """One feature as compact JSON, formatted directly: json.dumps of nested float lists is ~5x slower."""
    poly = cell.polygon
    n = len(poly)
    closed = np.array_equal(poly[0], poly[-1])
    fmt = _ring_format(n if closed else n + 1)
    flat = poly.ravel().tolist()
    coords = fmt % (tuple(flat) if closed else (*flat, flat[0], flat[1]))
    measurements = ",".join(f"{_key(k)}:{float(v)!r}" for k, v in cell.measurements.items() if math.isfinite(float(v)))
    # The centroid at full precision: exports made from this file must carry the source's numbers (a
    # 3-decimal centroid rounded again to the CSV's 2 decimals moved y = 942.455 to 942.45, not .46).
    metadata = (
        f'"cell_id":"{cell.id}","tile":"{cell.tile}",'
        f'"centroid_x":"{float(cell.centroid[0])!r}","centroid_y":"{float(cell.centroid[1])!r}"'
    )
    if cell.region:  # the annotation (roi) holding the centroid
        metadata += f',"region":{_key(cell.region)}'
    return (
        f'{{"type":"Feature","id":"{feature_id}","geometry":{{"type":"Polygon","coordinates":{coords}}},'
        f'"properties":{{"objectType":{_key(object_type)},{klass}"measurements":{{{measurements}}},'
        f'"metadata":{{{metadata}}}}}}}'
    )


_XY = f"%.{COORD_DECIMALS}f,%.{COORD_DECIMALS}f"


@functools.lru_cache(maxsize=4096)
def _ring_format(points: int) -> str:
    return "[[[" + "],[".join([_XY] * points) + "]]]"


@functools.lru_cache(maxsize=1024)
def _key(name: str) -> str:
    return json.dumps(str(name))


def _ring(polygon: np.ndarray) -> list[list[float]]:
    ring = np.round(np.asarray(polygon, dtype=np.float64), COORD_DECIMALS)
    if len(ring) and not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack((ring, ring[:1]))
    rows: list[list[float]] = ring.tolist()
    return rows


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    """QuPath cannot read NaN or null measurements; a missing value is left out."""
    out = {}
    for k, v in values.items():
        v = float(v)
        if math.isfinite(v):
            out[str(k)] = v
    return out


def read_geojson(path: str | Path) -> list[Cell]:
    """Cells of a GeoJSON FeatureCollection written by `write_geojson` (or QuPath: Polygon features).

    Ids, tiles and centroids come from `properties.metadata` when present; otherwise ids count from 1
    and the centroid is the polygon's.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"cannot read cells from {path}: {exc}"
        raise ValueError(msg) from exc
    features = doc.get("features") if isinstance(doc, dict) else doc
    if not isinstance(features, list):
        msg = f"{path} is not a GeoJSON FeatureCollection (no 'features' list)"
        raise ValueError(msg)
    cells: list[Cell] = []
    for n, feat in enumerate(features, start=1):
        geom = feat.get("geometry") or {}
        if geom.get("type") != "Polygon" or not geom.get("coordinates"):
            continue  # points, lines and multipolygons are not cells
        ring = np.asarray(geom["coordinates"][0], dtype=np.float64)[:, :2]
        if len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
            ring = ring[:-1]
        if len(ring) < 3:
            continue
        props = feat.get("properties") or {}
        meta = props.get("metadata") or {}
        measurements = props.get("measurements") or {}
        if isinstance(measurements, list):  # QuPath < 0.4: [{"name": ..., "value": ...}]
            measurements = {m["name"]: m["value"] for m in measurements}
        try:
            centroid = (float(meta["centroid_x"]), float(meta["centroid_y"]))
        except (KeyError, TypeError, ValueError):
            centroid = _polygon_centroid(ring)
        lo, hi = ring.min(axis=0).tolist(), ring.max(axis=0).tolist()
        cells.append(
            Cell(
                polygon=ring,
                centroid=centroid,
                bbox=(lo[0], lo[1], hi[0], hi[1]),
                tile=int(meta.get("tile", -1)),
                measurements={k: float(v) for k, v in measurements.items() if v is not None},
                id=int(meta.get("cell_id", n)),
                region=str(meta.get("region", "")),
            )
        )
    return cells


def _polygon_centroid(ring: np.ndarray) -> tuple[float, float]:
    x, y = ring[:, 0], ring[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    a = cross.sum() / 2
    if abs(a) < 1e-12:
        return float(x.mean()), float(y.mean())
    return float(((x + xn) * cross).sum() / (6 * a)), float(((y + yn) * cross).sum() / (6 * a))


__all__ = ["COORD_DECIMALS", "feature", "read_geojson", "write_geojson"]
