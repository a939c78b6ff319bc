"""Result reuse: job fingerprints, the per-data-folder result cache, and provenance records."""

from __future__ import annotations

from wsidesk.core.cache.fingerprint import RESULTS_VERSION, JobFingerprint, NotCacheable, fingerprint_job
from wsidesk.core.cache.result_cache import CacheEntry, MovedResult, ResultCache

__all__ = [
    "RESULTS_VERSION",
    "CacheEntry",
    "JobFingerprint",
    "MovedResult",
    "NotCacheable",
    "ResultCache",
    "fingerprint_job",
]
