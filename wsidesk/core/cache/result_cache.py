"""The result cache of one data folder: finished job results by fingerprint, and each job's provenance.

```
<data>/cache/index.sqlite3              entries, holders (who ran or reused what), provenance
<data>/cache/objects/<fingerprint>/...  the files of each cached result (hard links where possible)
```

Bytes are shared across profiles, results are not: a job that matches an entry gets the files linked
(or copied) into its own run folder, and its profile becomes a holder of the entry; `entries(profile)`
lists only what that profile ran or reused. Only complete results enter the cache (a cancelled job
raises, a job with failed tiles is partial). Every file's size and SHA-256 are recorded and checked
before a reuse: a damaged entry is discarded with a WARNING and the job recomputes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsidesk.core.errors import StoreError
from wsidesk.core.store.db import immediate_transaction

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    fingerprint TEXT PRIMARY KEY,
    job_type TEXT NOT NULL,
    files TEXT NOT NULL,          -- JSON [[relative path, size, sha256], ...]
    outputs TEXT NOT NULL,        -- JSON {output name: relative path}
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    source_profile TEXT NOT NULL,
    source_run TEXT NOT NULL,
    source_job TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS holders (
    fingerprint TEXT NOT NULL,
    profile TEXT NOT NULL,
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (fingerprint, run_id, job_id)
);
CREATE TABLE IF NOT EXISTS provenance (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    fingerprint TEXT,             -- NULL: the job has none (see `reason`)
    reason TEXT,
    complete INTEGER NOT NULL DEFAULT 0,  -- 1: finished with a complete result (dependents may build on it)
    slide_digest TEXT,
    slide_path TEXT,
    parts TEXT NOT NULL,          -- JSON: what the fingerprint was made of
    reused_run TEXT,
    reused_job TEXT,
    ts REAL NOT NULL,
    PRIMARY KEY (run_id, job_id)
);
CREATE INDEX IF NOT EXISTS provenance_by_slide ON provenance (profile, slide_digest);
"""


@dataclass(frozen=True, slots=True)
class CacheFile:
    path: str  # relative to the result's folder
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class CacheEntry:
    fingerprint: str
    job_type: str
    files: tuple[CacheFile, ...]
    outputs: Mapping[str, str]
    size: int
    created: float
    last_used: float
    source_profile: str
    source_run: str
    source_job: str


@dataclass(frozen=True, slots=True)
class MovedResult:
    """A job result recorded for a slide that now sits elsewhere (same content fingerprint)."""

    run_id: str
    job_id: str
    old_path: str


class ResultCache:
    """Thread-safe; one SQLite connection serialised by a lock, like the run store."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.root / "index.sqlite3", check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot use the result cache in {self.root}: {exc}"
            raise StoreError(msg) from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db, self._lock)

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # -- entries --------------------------------------------------------------------------------
    def object_dir(self, fingerprint: str) -> Path:
        return self.objects / fingerprint

    def get(self, fingerprint: str) -> CacheEntry | None:
        rows = self._query("SELECT * FROM entries WHERE fingerprint = ?", (fingerprint,))
        return _entry(rows[0]) if rows else None

    def lookup(self, fingerprint: str) -> CacheEntry | None:
        """The entry, after checking every file's size and SHA-256; a damaged one is discarded."""
        entry = self.get(fingerprint)
        if entry is None:
            return None
        problem = self._damage(entry)
        if problem is not None:
            logger.warning(
                "cached result %s (run %s, job %s) is damaged: %s; discarded, the job runs again",
                fingerprint[:12],
                entry.source_run,
                entry.source_job,
                problem,
            )
            self.discard(fingerprint)
            return None
        return entry

    def _damage(self, entry: CacheEntry) -> str | None:
        folder = self.object_dir(entry.fingerprint)
        for f in entry.files:
            path = folder / f.path
            try:
                size = path.stat().st_size
            except OSError:
                return f"{f.path} is missing"
            if size != f.size:
                return f"{f.path} has {size} bytes, expected {f.size}"
            if _sha256(path) != f.sha256:
                return f"{f.path} does not match its recorded SHA-256"
        return None

    def materialise(self, entry: CacheEntry, out_dir: Path) -> dict[str, str]:
        """Put the entry's files into `out_dir` (hard links, else copies); returns the job's outputs."""
        if out_dir.exists():
            shutil.rmtree(out_dir)  # leftovers of an interrupted attempt must not mix with the result
        folder = self.object_dir(entry.fingerprint)
        for f in entry.files:
            target = out_dir / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(folder / f.path, target)
        with self._tx() as db:
            db.execute("UPDATE entries SET last_used = ? WHERE fingerprint = ?", (time.time(), entry.fingerprint))
        return {name: str(out_dir / rel) for name, rel in entry.outputs.items()}

    def add(
        self,
        fingerprint: str,
        *,
        job_type: str,
        out_dir: Path,
        outputs: Mapping[str, str],
        profile: str,
        run_id: str,
        job_id: str,
    ) -> CacheEntry | None:
        """Cache a finished job's folder; None (and nothing cached) when its result is not complete."""
        why = incomplete(out_dir, outputs)
        if why is not None:
            logger.info("job %s of run %s is not cached: %s", job_id, run_id, why)
            return None
        relative = {name: os.path.relpath(path, out_dir) for name, path in outputs.items()}
        staging = self.objects / f".staging-{secrets.token_hex(4)}"
        try:
            files = []
            for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
                rel = path.relative_to(out_dir).as_posix()
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(path, target)
                files.append(CacheFile(rel, target.stat().st_size, _sha256(target)))
            final = self.object_dir(fingerprint)
            if final.exists():
                shutil.rmtree(final)  # a forced recomputation replaces the older result
            staging.rename(final)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            logger.warning("job %s of run %s could not be cached: %s", job_id, run_id, exc)
            return None
        now = time.time()
        entry = CacheEntry(
            fingerprint,
            job_type,
            tuple(files),
            relative,
            sum(f.size for f in files),
            now,
            now,
            profile,
            run_id,
            job_id,
        )
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fingerprint,
                    job_type,
                    json.dumps([[f.path, f.size, f.sha256] for f in files]),
                    json.dumps(relative),
                    entry.size,
                    now,
                    now,
                    profile,
                    run_id,
                    job_id,
                ),
            )
            db.execute(
                "INSERT OR REPLACE INTO holders VALUES (?, ?, ?, ?, ?)", (fingerprint, profile, run_id, job_id, now)
            )
        return entry

    def add_holder(self, fingerprint: str, *, profile: str, run_id: str, job_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO holders VALUES (?, ?, ?, ?, ?)",
                (fingerprint, profile, run_id, job_id, time.time()),
            )

    def source_for(self, entry: CacheEntry, profile: str) -> tuple[str, str]:
        """(run_id, job_id) to name as the source of a reuse: the profile's own newest holder, else the
        run that computed it."""
        rows = self._query(
            "SELECT run_id, job_id FROM holders WHERE fingerprint = ? AND profile = ? ORDER BY ts DESC LIMIT 1",
            (entry.fingerprint, profile),
        )
        return (rows[0]["run_id"], rows[0]["job_id"]) if rows else (entry.source_run, entry.source_job)

    def discard(self, fingerprint: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM entries WHERE fingerprint = ?", (fingerprint,))
            db.execute("DELETE FROM holders WHERE fingerprint = ?", (fingerprint,))
        shutil.rmtree(self.object_dir(fingerprint), ignore_errors=True)

    def entries(self, profile: str | None = None) -> list[CacheEntry]:
        """Cached results, newest use first; with `profile`, only those it ran or reused itself."""
        if profile is None:
            rows = self._query("SELECT * FROM entries ORDER BY last_used DESC")
        else:
            rows = self._query(
                "SELECT * FROM entries WHERE fingerprint IN (SELECT fingerprint FROM holders WHERE profile = ?) "
                "ORDER BY last_used DESC",
                (profile,),
            )
        return [_entry(r) for r in rows]

    def prune(self, *, older_than: float | None = None, max_size: int | None = None) -> list[CacheEntry]:
        """Drop entries unused for `older_than` seconds, then the least recently used until the cache
        holds at most `max_size` bytes. Run folders keep their own files; only the cache's go."""
        now = time.time()
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        drop = [e for e in entries if older_than is not None and now - e.last_used > older_than]
        if max_size is not None:
            total = sum(e.size for e in entries if e not in drop)
            for e in entries:
                if total <= max_size:
                    break
                if e not in drop:
                    drop.append(e)
                    total -= e.size
        for e in drop:
            self.discard(e.fingerprint)
        return drop

    # -- provenance -----------------------------------------------------------------------------
    def record_job(
        self,
        *,
        profile: str,
        run_id: str,
        job_id: str,
        fingerprint: str | None,
        parts: Mapping[str, Any],
        reason: str | None = None,
        slide_digest: str | None = None,
        slide_path: str | None = None,
    ) -> None:
        """What a job is about to compute (or reuse): its fingerprint and the parts it was made of."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO provenance VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, NULL, NULL, ?)",
                (
                    run_id,
                    job_id,
                    profile,
                    fingerprint,
                    reason,
                    slide_digest,
                    slide_path,
                    json.dumps(parts, default=str),
                    time.time(),
                ),
            )

    def mark_complete(self, run_id: str, job_id: str, *, reused: tuple[str, str] | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE provenance SET complete = 1, reused_run = ?, reused_job = ? WHERE run_id = ? AND job_id = ?",
                (*(reused or (None, None)), run_id, job_id),
            )

    def complete_fingerprints(self, run_id: str) -> dict[str, str]:
        """job id -> fingerprint of the run's jobs that finished with a complete result."""
        rows = self._query(
            "SELECT job_id, fingerprint FROM provenance WHERE run_id = ? AND complete = 1 AND fingerprint IS NOT NULL",
            (run_id,),
        )
        return {r["job_id"]: r["fingerprint"] for r in rows}

    def provenance(self, run_id: str) -> dict[str, dict[str, Any]]:
        """job id -> its provenance record, as summary.json shows it."""
        rows = self._query("SELECT * FROM provenance WHERE run_id = ?", (run_id,))
        return {
            r["job_id"]: {
                "fingerprint": r["fingerprint"],
                "not_cached_because": r["reason"],
                "reused_from": {"run_id": r["reused_run"], "job_id": r["reused_job"]} if r["reused_run"] else None,
                "parts": json.loads(r["parts"]),
            }
            for r in rows
        }

    def moved_results(self, profile: str, slide_digest: str, slide_path: str) -> list[MovedResult]:
        """The profile's complete results made on a slide with this fingerprint but another path."""
        rows = self._query(
            "SELECT run_id, job_id, slide_path FROM provenance WHERE profile = ? AND slide_digest = ? "
            "AND slide_path != ? AND complete = 1 ORDER BY ts DESC",
            (profile, slide_digest, slide_path),
        )
        return [MovedResult(r["run_id"], r["job_id"], r["slide_path"]) for r in rows]

    def slide_paths(self, profile: str) -> list[str]:
        """The slides the profile's complete results were made on, as recorded."""
        rows = self._query(
            "SELECT DISTINCT slide_path FROM provenance WHERE profile = ? AND complete = 1 AND slide_path IS NOT NULL",
            (profile,),
        )
        return [r["slide_path"] for r in rows]

    def relink(self, result: MovedResult, new_path: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE provenance SET slide_path = ? WHERE run_id = ? AND job_id = ?",
                (new_path, result.run_id, result.job_id),
            )


def incomplete(out_dir: Path, outputs: Mapping[str, str]) -> str | None:
    """Why a finished job's result must not be cached (partial, failed tiles, files elsewhere), or None."""
    for name, path in outputs.items():
        p = Path(path)
        if not p.is_relative_to(out_dir):
            return f"output {name} ({p}) lies outside the job's folder"
        if not p.is_file():
            return f"output {name} ({p}) is missing"
    tiles = outputs.get("tiles")
    if tiles:
        try:
            doc = json.loads(Path(tiles).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"its tiles.json cannot be read ({exc})"
        if doc.get("partial"):
            return "its result is partial"
        if doc.get("failed"):
            return f"{doc['failed']} tiles failed"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link shares the bytes; across file systems (or where links are refused) copy them."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _entry(row: sqlite3.Row) -> CacheEntry:
    return CacheEntry(
        fingerprint=row["fingerprint"],
        job_type=row["job_type"],
        files=tuple(CacheFile(p, int(s), h) for p, s, h in json.loads(row["files"])),
        outputs=json.loads(row["outputs"]),
        size=int(row["size"]),
        created=float(row["created"]),
        last_used=float(row["last_used"]),
        source_profile=row["source_profile"],
        source_run=row["source_run"],
        source_job=row["source_job"],
    )
