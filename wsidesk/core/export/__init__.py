"""Exports: QuPath-compatible GeoJSON and CSV measurement tables."""

from __future__ import annotations

from wsidesk.core.export.geojson import read_geojson, write_geojson
from wsidesk.core.export.table import write_csv

__all__ = ["read_geojson", "write_csv", "write_geojson"]
