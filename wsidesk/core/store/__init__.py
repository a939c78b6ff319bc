"""Persistent state: SQLite run store and the data folder layout."""

from wsidesk.core.store.db import JobRecord, RunRecord, SegmentationRecord, Store
from wsidesk.core.store.paths import DataLayout, default_data_dir

__all__ = ["DataLayout", "JobRecord", "RunRecord", "SegmentationRecord", "Store", "default_data_dir"]
