"""Cells: segmented objects in level-0 pixel coordinates, the unit every later stage works on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from wsidesk.core.values import reduce_frozen


@dataclass(frozen=True, slots=True, eq=False)
class Cell:
    """One detected object. `polygon` is an (N, 2) float array of (x, y) level-0 px, ring not closed."""

    polygon: np.ndarray
    centroid: tuple[float, float]
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in level-0 px
    tile: int  # index of the tile it was kept from
    measurements: Mapping[str, float] = field(default_factory=dict)
    id: int = 0  # assigned when the cell is accepted by the merger (1, 2, ...)
    region: str = ""  # name of the region (annotation) holding its centroid, for jobs run with `roi`

    def __post_init__(self) -> None:
        polygon = np.asarray(self.polygon, dtype=np.float64)
        if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
            msg = f"a cell polygon needs at least 3 (x, y) points, got shape {polygon.shape}"
            raise ValueError(msg)
        polygon.setflags(write=False)
        object.__setattr__(self, "polygon", polygon)
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return reduce_frozen(self)  # picklable for Dask workers

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (used by checkpoint shards)."""
        out = {
            "id": self.id,
            "tile": self.tile,
            "centroid": list(self.centroid),
            "bbox": list(self.bbox),
            "polygon": np.round(self.polygon, 2).tolist(),
            "measurements": dict(self.measurements),
        }
        if self.region:
            out["region"] = self.region
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        return cls(
            polygon=np.asarray(data["polygon"], dtype=np.float64),
            centroid=(float(data["centroid"][0]), float(data["centroid"][1])),
            bbox=tuple(float(v) for v in data["bbox"]),  # type: ignore[arg-type]
            tile=int(data["tile"]),
            measurements=data.get("measurements", {}),
            id=int(data.get("id", 0)),
            region=str(data.get("region", "")),
        )
