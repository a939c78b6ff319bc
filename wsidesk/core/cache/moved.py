"""Moved or renamed slides: results are found again by the slide's content fingerprint, then relinked."""

from __future__ import annotations

import logging
from pathlib import Path

from wsidesk.core.cache.result_cache import MovedResult, ResultCache
from wsidesk.core.slide.fingerprint import slide_fingerprint
from wsidesk.core.states import JobState
from wsidesk.core.store.db import Store

logger = logging.getLogger(__name__)


def moved_results(store: Store, cache: ResultCache, profile: str, slide: Path) -> list[MovedResult]:
    """The profile's finished results made on a slide with `slide`'s content but recorded at another
    path (only runs the profile still has; newest first)."""
    path = Path(slide).resolve()
    found = cache.moved_results(profile, slide_fingerprint(path).digest, str(path))
    runs = {r.run_id for r in store.list_runs(profile)}
    out = []
    for result in found:
        if result.run_id not in runs:
            continue
        states = {j.job_id: j.state for j in store.jobs(result.run_id)}
        if states.get(result.job_id) == JobState.SUCCEEDED:
            out.append(result)
    return out


def relink_results(store: Store, cache: ResultCache, profile: str, slide: Path) -> list[MovedResult]:
    """Record `slide` as the new place of the profile's results found by `moved_results`: the library
    gets the slide and its segmentations are listed under it. Returns what was relinked."""
    path = Path(slide).resolve()
    found = moved_results(store, cache, profile, path)
    if not found:
        return []
    store.add_slide(profile, path)
    for result in found:
        store.relink_segmentation(result.run_id, result.job_id, path)
        cache.relink(result, str(path))
        logger.info("job %s of run %s: slide %s is now %s", result.job_id, result.run_id, result.old_path, path)
    return found
