"""What the runner asks the result cache about each job, in one place; never fails a run.

Before a job is dispatched (on any executor: the decision is made on the client), `prepare` computes
its fingerprint, records its provenance and finds a reusable result; `reuse` links that result into
the job's folder. When a computed job succeeds, `finished` decides whether its result is complete and
caches it. A cache that cannot be opened or written only costs reuse, never a run.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsidesk.core.cache.fingerprint import JobFingerprint, NotCacheable, fingerprint_job, package_versions
from wsidesk.core.cache.result_cache import CacheEntry, ResultCache, incomplete
from wsidesk.core.errors import WsideskError
from wsidesk.core.jobs.task import JobSpec

logger = logging.getLogger(__name__)

MIN_FREE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Prepared:
    fingerprint: JobFingerprint | None  # None: this job is not cacheable
    entry: CacheEntry | None  # a checked result to reuse instead of running


@dataclass(frozen=True, slots=True)
class Reused:
    outputs: dict[str, str]
    source_run: str
    source_job: str
    fingerprint: str


class CacheGate:
    """Opens the cache at `root` on first use, and leaves it alone while the disk is nearly full: the
    run's own records (and the store's reserve) must not lose their last megabytes to the cache."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._cache: ResultCache | None = None
        self._failed = False
        self._warned_space = False

    @property
    def cache(self) -> ResultCache | None:
        if not self._room():
            return None
        if self._cache is None and not self._failed:
            try:
                self._cache = ResultCache(self._root)
            except WsideskError as exc:
                self._failed = True
                logger.warning("%s; results are computed without reuse", exc)
        return self._cache

    def _room(self) -> bool:
        folder = self._root if self._root.exists() else self._root.parent
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            return True  # nothing to measure yet: opening says what is wrong
        if free >= MIN_FREE_BYTES:
            return True
        if not self._warned_space:
            self._warned_space = True
            logger.warning(
                "only %.0f MB free in %s: results are neither reused nor cached until space is freed",
                free / 1e6,
                folder,
            )
        return False

    def prepare(self, spec: JobSpec, upstream: Mapping[str, str | None]) -> Prepared:
        cache = self.cache
        if cache is None:
            return Prepared(None, None)
        fingerprint: JobFingerprint | None = None
        reason: str | None = None
        if spec.function is not None:
            reason = "the job runs a caller-supplied function"
        else:
            try:
                fingerprint = fingerprint_job(
                    job_type=spec.job.type,
                    params=spec.params,
                    image=spec.image,
                    base_dir=spec.workflow.base_dir,
                    models_dir=spec.models_dir,
                    upstream=upstream,
                    profile_dir=_profile_dir(spec),
                )
            except NotCacheable as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - a fingerprint bug must not stop the job itself
                logger.exception("fingerprinting job %s failed", spec.job.job_id)
                reason = f"fingerprinting failed: {exc}"
        entry = None
        try:
            cache.record_job(
                profile=spec.profile,
                run_id=spec.run_id,
                job_id=spec.job.job_id,
                fingerprint=fingerprint.digest if fingerprint else None,
                # Package versions as they were when the job ran (not in the digest: a patch release
                # of numpy must not invalidate every result).
                parts={
                    **(fingerprint.parts if fingerprint else {"job_type": spec.job.type}),
                    "packages": package_versions(),
                },
                reason=reason,
                slide_digest=fingerprint.slide_digest if fingerprint else None,
                slide_path=fingerprint.slide_path if fingerprint else None,
            )
            if fingerprint is not None and _wants_cache(spec):
                entry = cache.lookup(fingerprint.digest)
        except Exception as exc:  # noqa: BLE001 - sqlite or disk trouble: run without reuse
            logger.warning("result cache unavailable for job %s: %s", spec.job.job_id, exc)
        return Prepared(fingerprint, entry)

    def reuse(self, spec: JobSpec, prepared: Prepared) -> Reused | None:
        """Link the prepared entry's files into the job's folder; None if that failed (then it runs)."""
        cache, entry, fingerprint = self.cache, prepared.entry, prepared.fingerprint
        if cache is None or entry is None or fingerprint is None:
            return None
        try:
            outputs = cache.materialise(entry, spec.out_dir)
            source = cache.source_for(entry, spec.profile)
            cache.add_holder(entry.fingerprint, profile=spec.profile, run_id=spec.run_id, job_id=spec.job.job_id)
            cache.mark_complete(spec.run_id, spec.job.job_id, reused=source)
        except Exception as exc:  # noqa: BLE001 - e.g. a full disk: compute instead
            logger.warning("cannot reuse the cached result of job %s (%s); computing it", spec.job.job_id, exc)
            return None
        return Reused(outputs, source[0], source[1], entry.fingerprint)

    def finished(self, spec: JobSpec, fingerprint: JobFingerprint | None, outputs: Mapping[str, str]) -> bool:
        """A computed job succeeded: cache a complete result. True when it is complete and fingerprinted
        (jobs depending on it may then be fingerprinted too)."""
        cache = self.cache
        if cache is None or fingerprint is None:
            return False
        why = incomplete(spec.out_dir, outputs)
        if why is not None:
            logger.info("job %s of run %s is not cached: %s", spec.job.job_id, spec.run_id, why)
            return False
        try:
            cache.mark_complete(spec.run_id, spec.job.job_id)
            cache.add(
                fingerprint.digest,
                job_type=spec.job.type,
                out_dir=spec.out_dir,
                outputs=outputs,
                profile=spec.profile,
                run_id=spec.run_id,
                job_id=spec.job.job_id,
            )
        except Exception as exc:  # noqa: BLE001 - the result stands; it is only not reusable
            logger.warning("job %s of run %s could not be cached: %s", spec.job.job_id, spec.run_id, exc)
        return True

    def complete_fingerprints(self, run_id: str) -> dict[str, str]:
        if self.cache is None:
            return {}
        try:
            return self.cache.complete_fingerprints(run_id)
        except Exception as exc:  # noqa: BLE001
            logger.warning("cannot read the fingerprints of run %s: %s", run_id, exc)
            return {}

    def provenance(self, run_id: str) -> dict[str, dict[str, Any]]:
        """job id -> provenance for summary.json (with the versions of the packages that shaped results)."""
        if self.cache is None:
            return {}
        try:
            records = self.cache.provenance(run_id)
        except Exception as exc:  # noqa: BLE001
            logger.warning("cannot read the provenance of run %s: %s", run_id, exc)
            return {}
        for record in records.values():
            record["packages"] = record["parts"].pop("packages", None)
        return records


def _profile_dir(spec: JobSpec) -> Path | None:
    """<data>/profiles/<profile>, from the job folder <profile>/runs/<run>/<job> (as the jobs find it)."""
    parents = spec.out_dir.parents
    return parents[2] if len(parents) > 2 and parents[2].name == spec.profile else None


def _wants_cache(spec: JobSpec) -> bool:
    """The job's `cache` param (every job type has it; false forces recomputation)."""
    return spec.params.get("cache") is not False
