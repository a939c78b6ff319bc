"""Columnar cell store: one `cells.arrow` (Arrow IPC / Feather v2) beside `cells.geojson`.

Chosen by measurement (benchmarks/bench_cells.py --formats, 1,000,000 cells, 16M vertices, 2 shared
cores): Arrow IPC wrote in 0.5-1.1 s and opened in 0.2-1.0 s; numpy .npz took 2.6-4.0 s and 1.3-1.7 s
(zip CRC and copies); GeoParquet with shapely WKB took 35 s to write and seconds to decode. Arrow is also an open
format pandas, polars and R read. Polygons are ragged: one list per cell sharing `poly_offsets` (n + 1)
into one vertex array, stored as int32 hundredths of a level-0 px: exactly the 2 decimals cells.geojson
writes, so exports made from the store carry the same coordinates for any slide size (float32 cannot
hold 2 decimals beyond 131,072 px).

`open_cells` reads the store; when it is missing, damaged or was written for another cells.geojson it
reads the GeoJSON instead and says so (a logged warning and `CellTable.note`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsidesk.core.errors import WsideskError
from wsidesk.core.segment.measure import MEASUREMENTS

if TYPE_CHECKING:
    from wsidesk.core.segment.cells import Cell

logger = logging.getLogger(__name__)

STORE_NAME = "cells.arrow"
_META_KEY = "wsidesk"
GEOJSON_NAME = "cells.geojson"
FORMAT = "wsidesk-cells"
VERSION = 1
_STAMP_BYTES = 64 * 1024
_COORD_SCALE = 100  # int32 hundredths of a px: cells.geojson's 2 decimals, exact


class CellStoreError(WsideskError, ValueError):
    """A cell store or result folder cannot be read."""


class CellTable:
    """Cells as columns: no per-row Python objects.

    `ids` int64; `x`, `y` float64 level-0 px centroids; `tile` int32 (the tile each cell came from);
    `columns` name -> float64 measurement (NaN = missing); `classes` str per cell ('' = unclassified);
    `regions` str per cell or None; `class_colors` name -> '#rrggbb'; polygons ragged as `poly_offsets`
    (n + 1, int64) into `poly_xy` (m x 2 float32, level-0 px); `bbox` (n x 4 float64: x0, y0, x1, y1).
    `source` is the file read, `note` says why it is not the store (empty when it is), `partial` whether
    the run was unfinished.
    """

    def __init__(
        self,
        *,
        ids: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        columns: Mapping[str, np.ndarray],
        poly_offsets: np.ndarray,
        poly_cpx: np.ndarray,
        bbox: np.ndarray | None = None,
        tile: np.ndarray | None = None,
        classes: np.ndarray | None = None,
        regions: np.ndarray | None = None,
        class_colors: Mapping[str, str] | None = None,
        partial: bool = False,
        source: Path | None = None,
        note: str = "",
    ) -> None:
        n = len(ids)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.columns = {str(k): np.asarray(v, dtype=np.float64) for k, v in columns.items()}
        self.poly_offsets = np.asarray(poly_offsets, dtype=np.int64)
        self.poly_cpx = np.asarray(poly_cpx, dtype=np.int32).reshape(-1, 2)
        self.tile = np.full(n, -1, dtype=np.int32) if tile is None else np.asarray(tile, dtype=np.int32)
        self.classes = np.full(n, "", dtype="<U1") if classes is None else np.asarray(classes, dtype=str)
        self.regions = None if regions is None else np.asarray(regions, dtype=str)
        self.class_colors: dict[str, str] = dict(class_colors or {})  # class name -> '#rrggbb'
        self.bbox = _bboxes(self.poly_offsets, self.poly_cpx) if bbox is None else np.asarray(bbox, dtype=np.float64)
        self.partial = partial
        self.source = source
        self.note = note
        self._poly_xy: np.ndarray | None = None
        for name, arr in (("x", self.x), ("y", self.y), ("tile", self.tile), ("classes", self.classes)):
            if len(arr) != n:
                msg = f"cell table column {name!r} has {len(arr)} values for {n} cells"
                raise CellStoreError(msg)
        for name, arr in self.columns.items():
            if len(arr) != n:
                msg = f"measurement {name!r} has {len(arr)} values for {n} cells"
                raise CellStoreError(msg)
        if self.regions is not None and len(self.regions) != n:
            msg = f"regions has {len(self.regions)} values for {n} cells"
            raise CellStoreError(msg)
        if len(self.poly_offsets) != n + 1 or (n and self.poly_offsets[-1] != len(self.poly_cpx)):
            msg = f"polygon offsets ({len(self.poly_offsets)}) do not match {n} cells and {len(self.poly_cpx)} vertices"
            raise CellStoreError(msg)
        if self.bbox.shape != (n, 4):
            msg = f"bbox has shape {self.bbox.shape}, expected ({n}, 4)"
            raise CellStoreError(msg)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"CellTable({len(self)} cells, {len(self.columns)} measurements, source={self.source})"

    @property
    def column_names(self) -> list[str]:
        """The measurements, in the export order (known ones first)."""
        known = [name for name in MEASUREMENTS if name in self.columns]
        return known + sorted(name for name in self.columns if name not in MEASUREMENTS)

    @property
    def poly_xy(self) -> np.ndarray:
        """All polygon vertices (m x 2 float32, level-0 px); made on first use."""
        if self._poly_xy is None:
            self._poly_xy = (self.poly_cpx / _COORD_SCALE).astype(np.float32)
        return self._poly_xy

    def polygon(self, i: int) -> np.ndarray:
        """Vertices of cell `i` ((k, 2) float64 level-0 px, ring not closed), as cells.geojson has them."""
        return self.vertices(i, i + 1)

    def vertices(self, lo: int, hi: int) -> np.ndarray:
        """The vertices of cells lo:hi, one after another (float64 level-0 px, as cells.geojson has them)."""
        return self.poly_cpx[int(self.poly_offsets[lo]) : int(self.poly_offsets[hi])] / float(_COORD_SCALE)

    def take(self, which: np.ndarray | Sequence[int]) -> CellTable:
        """A new table of the cells selected by a bool mask or by indices (in that order)."""
        idx = np.asarray(which)
        if idx.dtype == bool:
            if len(idx) != len(self):
                msg = f"mask has {len(idx)} values for {len(self)} cells"
                raise CellStoreError(msg)
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        starts, ends = self.poly_offsets[idx], self.poly_offsets[idx + 1]
        lengths = ends - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Vertex index of each output vertex: its cell's start plus its rank within the cell.
        rank = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        vertices = self.poly_cpx[np.repeat(starts, lengths) + rank]
        return CellTable(
            ids=self.ids[idx],
            x=self.x[idx],
            y=self.y[idx],
            columns={k: v[idx] for k, v in self.columns.items()},
            poly_offsets=offsets,
            poly_cpx=vertices,
            bbox=self.bbox[idx],
            tile=self.tile[idx],
            classes=self.classes[idx],
            regions=None if self.regions is None else self.regions[idx],
            class_colors=self.class_colors,
            partial=self.partial,
            source=self.source,
            note=self.note,
        )

    def cells_in_rect(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Indices of the cells whose bounding box overlaps the rectangle (level-0 px)."""
        b = self.bbox
        hit = (b[:, 2] >= min(x0, x1)) & (b[:, 0] <= max(x0, x1)) & (b[:, 3] >= min(y0, y1)) & (b[:, 1] <= max(y0, y1))
        return np.flatnonzero(hit)

    def set_classes(self, classes: np.ndarray, colors: Mapping[str, str] | None = None) -> None:
        """Replace the classes (str per cell, '' = unclassified) and their colours (name -> '#rrggbb')."""
        classes = np.asarray(classes, dtype=str)
        if len(classes) != len(self):
            msg = f"{len(classes)} classes for {len(self)} cells"
            raise CellStoreError(msg)
        self.classes = classes
        self.class_colors = dict(colors or {})

    @property
    def classified(self) -> bool:
        return bool((self.classes != "").any())

    def iter_cells(self, *, chunk: int = 65536) -> Iterator[Cell]:
        """Cell objects, one at a time (for the GeoJSON and CSV writers; exports only).

        Columns become Python lists a chunk at a time: per-element numpy indexing is ~10x slower.
        """
        from wsidesk.core.segment.cells import Cell

        names = self.column_names
        for lo in range(0, len(self), chunk):
            hi = min(lo + chunk, len(self))
            vertices = self.vertices(lo, hi)
            starts = (self.poly_offsets[lo : hi + 1] - self.poly_offsets[lo]).tolist()
            rows = np.column_stack([self.columns[k][lo:hi] for k in names]).tolist() if names else [[]] * (hi - lo)
            regions = self.regions[lo:hi].tolist() if self.regions is not None else [""] * (hi - lo)
            columns = zip(
                self.ids[lo:hi].tolist(),
                self.x[lo:hi].tolist(),
                self.y[lo:hi].tolist(),
                self.bbox[lo:hi].tolist(),
                self.tile[lo:hi].tolist(),
                rows,
                regions,
                strict=True,
            )
            for j, (cell_id, x, y, box, tile, row, region) in enumerate(columns):
                yield Cell(
                    polygon=vertices[starts[j] : starts[j + 1]],
                    centroid=(x, y),
                    bbox=(box[0], box[1], box[2], box[3]),
                    tile=tile,
                    measurements={k: v for k, v in zip(names, row, strict=True) if v == v},  # NaN: missing
                    id=cell_id,
                    region=region,
                )


def _bboxes(offsets: np.ndarray, cpx: np.ndarray) -> np.ndarray:
    n = len(offsets) - 1
    if n <= 0 or len(cpx) == 0:
        return np.zeros((max(n, 0), 4), dtype=np.float64)
    starts = offsets[:-1]
    lo = np.minimum.reduceat(cpx, starts, axis=0) / float(_COORD_SCALE)
    hi = np.maximum.reduceat(cpx, starts, axis=0) / float(_COORD_SCALE)
    return np.column_stack((lo, hi))


def table_from_cells(
    cells: Sequence[Cell],
    *,
    regions: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    partial: bool = False,
    source: Path | None = None,
    note: str = "",
) -> CellTable:
    """A table of Cell objects (what the segment job and read_geojson give)."""
    n = len(cells)
    if regions is None and any(c.region for c in cells):
        regions = [c.region for c in cells]
    columns = _measurement_columns([c.measurements for c in cells])
    lengths = np.array([len(c.polygon) for c in cells], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if n:
        # np.round = cells.geojson's "%.2f" (both round half to even)
        cpx = np.round(np.concatenate([c.polygon for c in cells]) * _COORD_SCALE).astype(np.int32)
    else:
        cpx = np.zeros((0, 2), dtype=np.int32)
    return CellTable(
        ids=np.fromiter((c.id for c in cells), np.int64, n),
        x=np.fromiter((c.centroid[0] for c in cells), np.float64, n),
        y=np.fromiter((c.centroid[1] for c in cells), np.float64, n),
        columns=columns,
        poly_offsets=offsets,
        poly_cpx=cpx,
        bbox=np.fromiter(itertools.chain.from_iterable(c.bbox for c in cells), np.float64, 4 * n).reshape(n, 4),
        tile=np.fromiter((c.tile for c in cells), np.int32, n),
        classes=None if classes is None else np.asarray(classes, dtype=str),
        regions=None if regions is None else np.asarray(regions, dtype=str),
        partial=partial,
        source=source,
        note=note,
    )


def _measurement_columns(measurements: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """name -> float64 column (NaN where a cell lacks it), known measurements first.

    Cells are grouped by their tuple of names (nearly all share one), so each group's values become
    one 2-D array in a single pass instead of one dict lookup per cell and name (10x faster at 1M).
    """
    n = len(measurements)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, m in enumerate(measurements):
        groups.setdefault(tuple(m), []).append(i)
    present = {k for keys in groups for k in keys}
    names = [k for k in MEASUREMENTS if k in present] + sorted(present - set(MEASUREMENTS))
    columns = {k: np.full(n, np.nan) for k in names}
    for keys, members in groups.items():
        if not keys:
            continue
        values = np.fromiter(
            itertools.chain.from_iterable(measurements[i].values() for i in members),
            np.float64,
            len(members) * len(keys),
        ).reshape(len(members), len(keys))
        rows = np.asarray(members)
        for j, k in enumerate(keys):
            columns[k][rows] = values[:, j]
    return columns


def write_cell_store(
    cells: Sequence[Cell] | CellTable,
    out_dir: str | Path,
    *,
    regions: Sequence[str] | None = None,
    partial: bool = False,
) -> Path:
    """Write `<out_dir>/cells.arrow` atomically (after cells.geojson: the store records which GeoJSON it matches)."""
    table = cells if isinstance(cells, CellTable) else table_from_cells(cells, regions=regions, partial=partial)
    return save_table(table, Path(out_dir) / STORE_NAME, partial=partial or table.partial)


def save_table(table: CellTable, path: Path, *, partial: bool | None = None) -> Path:
    """Write a table to `path` (Arrow IPC file) atomically: tmp file + os.replace."""
    import pyarrow as pa
    import pyarrow.feather as feather

    path = Path(path)
    class_names, class_codes = np.unique(table.classes, return_inverse=True)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "cells": len(table),
        "partial": table.partial if partial is None else partial,
        "columns": list(table.column_names),
        "class_names": class_names.tolist(),
        "class_colors": table.class_colors,
        "geojson": _file_stamp(path.parent / GEOJSON_NAME),
    }
    columns: dict[str, Any] = {
        "id": table.ids,
        "x": table.x,
        "y": table.y,
        "tile": table.tile,
        "class": class_codes.astype(np.int32),
        "bbox": pa.FixedSizeListArray.from_arrays(pa.array(table.bbox.reshape(-1)), 4),
        # Each cell's outline: its vertices as int32 hundredths of a px, offsets shared with poly_offsets.
        "polygon": pa.LargeListArray.from_arrays(
            pa.array(table.poly_offsets), pa.FixedSizeListArray.from_arrays(pa.array(table.poly_cpx.reshape(-1)), 2)
        ),
    }
    if table.regions is not None:
        region_names, region_codes = np.unique(table.regions, return_inverse=True)
        meta["region_names"] = region_names.tolist()
        columns["region"] = region_codes.astype(np.int32)
    for i, name in enumerate(table.column_names):
        columns[f"m{i}"] = table.columns[name]  # names can be anything; the meta maps them
    arrow = pa.table(columns).replace_schema_metadata({_META_KEY: json.dumps(meta)})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        feather.write_feather(arrow, tmp, compression="uncompressed")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("wrote %d cells to %s", len(table), path)
    return path


def _file_stamp(path: Path) -> dict[str, Any] | None:
    """Size and a hash of the first and last 64 KiB: tells a rewritten GeoJSON from a copy (cache reuse)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(0)
            digest = hashlib.sha256(f.read(_STAMP_BYTES))
            f.seek(max(size - _STAMP_BYTES, 0))
            digest.update(f.read(_STAMP_BYTES))
    except OSError:
        return None
    return {"size": size, "sha256": digest.hexdigest()}


def read_store(path: str | Path) -> CellTable:
    """A table from a cell store; CellStoreError when it is not one or is damaged."""
    import pyarrow as pa
    import pyarrow.feather as feather

    path = Path(path)
    try:
        # Read into memory, not memory-mapped: the store is rewritten in place (classify), which a
        # mapped file would block on Windows.
        arrow = feather.read_table(path, memory_map=False)
        meta: dict[str, Any] = json.loads((arrow.schema.metadata or {}).get(_META_KEY.encode(), b"{}"))
        if meta.get("format") != FORMAT or int(meta.get("version", 0)) > VERSION:
            msg = f"{path} is not a wsidesk cell store of version <= {VERSION}"
            raise CellStoreError(msg)

        def column(name: str) -> np.ndarray:
            return np.asarray(arrow.column(name).to_numpy())

        rings = arrow.column("polygon").combine_chunks()
        boxes = arrow.column("bbox").combine_chunks()
        class_names = np.asarray(meta["class_names"], dtype=str)
        region_names = meta.get("region_names")
        n = arrow.num_rows
        table = CellTable(
            ids=column("id"),
            x=column("x"),
            y=column("y"),
            columns={name: column(f"m{i}") for i, name in enumerate(meta["columns"])},
            poly_offsets=rings.offsets.to_numpy() if n else np.zeros(1, dtype=np.int64),
            poly_cpx=rings.values.values.to_numpy().reshape(-1, 2) if n else np.zeros((0, 2), dtype=np.int32),
            bbox=boxes.values.to_numpy().reshape(-1, 4) if n else np.zeros((0, 4)),
            tile=column("tile"),
            classes=class_names[column("class")] if len(class_names) else None,
            regions=None if region_names is None else np.asarray(region_names, dtype=str)[column("region")],
            class_colors={str(k): str(v) for k, v in (meta.get("class_colors") or {}).items()},
            partial=bool(meta.get("partial", False)),
            source=path,
        )
    except CellStoreError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, pa.ArrowException) as exc:
        msg = f"cannot read the cell store {path}: {exc}"
        raise CellStoreError(msg) from exc
    if len(table) != int(meta.get("cells", -1)):
        msg = f"cell store {path} holds {len(table)} cells but says {meta.get('cells')}"
        raise CellStoreError(msg)
    stamp = meta.get("geojson")
    current = _file_stamp(path.parent / GEOJSON_NAME)
    if stamp and current and stamp != current:
        msg = f"cell store {path} was written for another {GEOJSON_NAME} (it changed since)"
        raise CellStoreError(msg)
    return table


def result_dir(path: str | Path) -> Path:
    """The segment result folder of `path`: itself, or the one job folder of a run folder with cells."""
    path = Path(path)
    if not path.is_dir():
        msg = f"{path} is not a folder (expected a segment job's folder or a run folder)"
        raise CellStoreError(msg)
    if (path / GEOJSON_NAME).is_file() or (path / STORE_NAME).is_file():
        return path
    found = sorted(p.parent for p in path.glob(f"*/{GEOJSON_NAME}")) or sorted(
        p.parent for p in path.glob(f"*/{STORE_NAME}")
    )
    if len(found) == 1:
        return found[0]
    if not found:
        msg = f"{path} holds no cells ({GEOJSON_NAME} or {STORE_NAME}): give a segment job's folder or its run folder"
        raise CellStoreError(msg)
    names = ", ".join(p.name for p in found)
    msg = f"{path} holds several segment results ({names}): give one job's folder, e.g. {found[0]}"
    raise CellStoreError(msg)


def open_cells(result: str | Path) -> CellTable:
    """The cells of a segment result (job or run folder): the store, else cells.geojson with a warning."""
    folder = result_dir(result)
    store = folder / STORE_NAME
    geojson = folder / GEOJSON_NAME
    if store.is_file():
        try:
            table = read_store(store)
        except CellStoreError as exc:
            why = str(exc)
        else:
            return _with_saved_classes(table, folder)
    else:
        why = f"no cell store {store}"
    if not geojson.is_file():
        msg = f"cannot open the cells of {folder}: {why}, and no {GEOJSON_NAME}"
        raise CellStoreError(msg)
    note = f"{why}; read {GEOJSON_NAME} instead (slower)"
    logger.warning("%s", note)
    from wsidesk.core.export.geojson import read_geojson

    try:
        cells = read_geojson(geojson)
        partial = _geojson_partial(geojson)
    except (OSError, ValueError) as exc:
        msg = f"cannot open the cells of {folder}: {why}, and {exc}"
        raise CellStoreError(msg) from exc
    table = table_from_cells(cells, partial=partial, source=geojson, note=note)
    return _with_saved_classes(table, folder)


def _geojson_partial(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        return '"partial": true' in f.readline(4096)


def _with_saved_classes(table: CellTable, folder: Path) -> CellTable:
    """The result's saved class rules (classes.yaml) applied: they win over classes stored earlier.

    The app saves only the rules when a user edits classes; applying them on open (~0.1 s at 1M
    cells) keeps the store, the GeoJSON fallback and the app in agreement.
    """
    from wsidesk.core.cells.classes import CLASSES_NAME, RulesError, classify, load_rules

    rules_path = folder / CLASSES_NAME
    if not rules_path.is_file():
        return table
    try:
        rules = load_rules(rules_path)
        table.set_classes(classify(table, rules), {r.name: r.color for r in rules})
    except RulesError as exc:
        logger.warning("cannot apply the saved classes %s: %s", rules_path, exc)
        table.note = "; ".join(filter(None, (table.note, f"saved classes not applied: {exc}")))
    return table


__all__ = [
    "GEOJSON_NAME",
    "STORE_NAME",
    "CellStoreError",
    "CellTable",
    "open_cells",
    "read_store",
    "result_dir",
    "save_table",
    "table_from_cells",
    "write_cell_store",
]
