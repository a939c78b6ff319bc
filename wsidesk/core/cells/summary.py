"""Per slide, per class and per region: cell count, density per mm² of tissue, mean and median of each measurement.

Tissue area comes from the result's tiles.json: each tissue tile's core area times its tissue fraction
(the fraction the planner measured on the tissue mask over the padded tile), so it is an estimate at
the mask's resolution. Densities per class use the slide's tissue area; per region, the region's area
from the result's regions.json (written by jobs run with `roi`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from wsidesk.core.cells.store import CellTable

logger = logging.getLogger(__name__)

TILES_NAME = "tiles.json"
REGIONS_NAME = "regions.json"


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One row of a summary: `scope` is 'slide', 'class' or 'region'; `name` the class or region ('' = none)."""

    scope: str
    name: str
    count: int
    density_per_mm2: float | None
    mean: dict[str, float]
    median: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "scope": self.scope,
            "name": self.name,
            "count": self.count,
            "density_per_mm2": self.density_per_mm2,
        }
        for key, value in self.mean.items():
            row[f"{key}_mean"] = value
            row[f"{key}_median"] = self.median[key]
        return row


def tissue_area_mm2(result: str | Path) -> float | None:
    """Tissue area of a segment result from its tiles.json (None when there is none or it is unreadable)."""
    from wsidesk.core.tiling.grid import TilePlan

    path = Path(result) / TILES_NAME
    if not path.is_file():
        return None
    try:
        plan = TilePlan.read_json(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("cannot read the tissue area from %s: %s", path, exc)
        return None
    px = sum(t.w * t.h * min(max(t.tissue, 0.0), 1.0) for t in plan.tiles if t.state != "skipped")
    return float(px * plan.slide_mpp**2 / 1e6)


def region_areas_mm2(result: str | Path) -> dict[str, float]:
    """Region name -> area in mm² from the result's regions.json ({} when there is none)."""
    path = Path(result) / REGIONS_NAME
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {str(r["name"]): float(r["area_mm2"]) for r in doc.get("regions", []) if r.get("area_mm2")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("cannot read region areas from %s: %s", path, exc)
        return {}


def summarize(
    table: CellTable, *, tissue_mm2: float | None = None, region_mm2: Mapping[str, float] | None = None
) -> list[GroupSummary]:
    """The slide row, then one row per class (when any cell is classified), then per region (when present)."""
    rows = [_group(table, np.ones(len(table), dtype=bool), "slide", "", tissue_mm2)]
    if (table.classes != "").any():
        for name in _names(table.classes):
            rows.append(_group(table, table.classes == name, "class", name, tissue_mm2))
    if table.regions is not None:
        for name in _names(table.regions):
            area = (region_mm2 or {}).get(name)
            rows.append(_group(table, table.regions == name, "region", name, area))
    return rows


def _names(values: np.ndarray) -> list[str]:
    names = [str(v) for v in np.unique(values)]
    return [n for n in names if n] + ([""] if "" in names else [])  # unclassified last


def _group(table: CellTable, mask: np.ndarray, scope: str, name: str, tissue_mm2: float | None) -> GroupSummary:
    count = int(mask.sum())
    mean: dict[str, float] = {}
    median: dict[str, float] = {}
    for key in table.column_names:
        values = table.columns[key][mask]
        values = values[np.isfinite(values)]
        mean[key] = float(values.mean()) if len(values) else float("nan")
        median[key] = float(np.median(values)) if len(values) else float("nan")
    density = count / tissue_mm2 if tissue_mm2 else None
    return GroupSummary(scope, name, count, density, mean, median)


def write_summary_csv(rows: list[GroupSummary], path: str | Path) -> Path:
    """One CSV row per group: scope, name, count, density_per_mm2, then <measurement>_mean, _median."""
    from wsidesk.core.export.table import write_rows

    dicts = [r.to_dict() for r in rows]
    header = list(dicts[0]) if dicts else ["scope", "name", "count", "density_per_mm2"]
    return write_rows(header, ([_cell(d.get(k)) for k in header] for d in dicts), path)


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return repr(round(value, 6)) if isinstance(value, float) else value


__all__ = ["GroupSummary", "region_areas_mm2", "summarize", "tissue_area_mm2", "write_summary_csv"]
