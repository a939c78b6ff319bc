"""The run store: SQLite (WAL) with runs, jobs, tile checkpoints and a segmentation index, scoped by profile.

One connection shared by the runner's threads, serialised by a lock: writes are small and rare
(per job and per tile batch), so contention is not a concern and ordering stays simple.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsidesk.core.errors import ProfileError, StoreError
from wsidesk.core.profiles import DEFAULT_PROFILE, check_profile_name
from wsidesk.core.states import UNFINISHED_RUN_STATUSES, JobState, RunStatus
from wsidesk.core.store.paths import DataLayout

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS profile_slides (
    profile TEXT NOT NULL,
    path TEXT NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (profile, path)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    workflow TEXT NOT NULL,
    source TEXT,              -- absolute path of the submitted YAML, if any
    source_sha256 TEXT,       -- identifies "the same command" for automatic resume
    run_dir TEXT NOT NULL,
    status TEXT NOT NULL,     -- running | interrupted | succeeded | failed | cancelled
    owner_pid INTEGER,
    created REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS runs_by_profile ON runs (profile, created);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    job_id TEXT NOT NULL,
    branch TEXT NOT NULL,
    state TEXT NOT NULL,
    started REAL,
    finished REAL,
    error TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS tiles (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    tile_index INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (run_id, job_id, tile_index)
);
"""

# Which slide each finished segmentation was made on, so "results of this slide" is one indexed query
# instead of reading every run's tiles.json. Created (and filled from the run folders) on first open.
SEGMENTATIONS_SCHEMA = (
    """CREATE TABLE segmentations (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    slide TEXT,               -- resolved slide path, NULL when unknown (tiles.json unreadable at backfill)
    cells TEXT NOT NULL,      -- the job's cells.geojson
    PRIMARY KEY (run_id, job_id)
)""",
    "CREATE INDEX segmentations_by_slide ON segmentations (slide)",
)

UNFINISHED = tuple(str(s) for s in UNFINISHED_RUN_STATUSES)


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    profile: str
    workflow: str
    source: str | None
    source_sha256: str | None
    run_dir: Path
    status: RunStatus
    owner_pid: int | None
    created: float
    finished: float | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    run_id: str
    job_id: str
    branch: str
    state: JobState
    started: float | None
    finished: float | None
    error: str | None
    outputs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SegmentationRecord:
    """A succeeded job with a ``cells`` output, and the run it belongs to."""

    run_id: str
    job_id: str
    workflow: str
    cells: Path


class Store:
    """Persistent runs and jobs. Every query that returns runs is scoped to one profile."""

    def __init__(self, root: Path) -> None:
        self.layout = DataLayout(Path(root))
        try:
            self.layout.root.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.layout.database, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot use the data folder {root}: {exc}; pass another with --data-dir"
            raise StoreError(msg) from exc
        self._lock = threading.Lock()
        self._create_segmentation_index()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    msg = f"database {self.layout.database} failed: {exc}"
                    raise StoreError(msg) from exc
                raise

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # -- profiles ---------------------------------------------------------------------------
    def add_profile(self, name: str) -> None:
        check_profile_name(name)
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO profiles VALUES (?, ?)", (name, time.time()))
        self.layout.profile_dir(name).mkdir(parents=True, exist_ok=True)

    def remove_profile(self, name: str) -> None:
        """Forget a profile; its folder stays on disk so no result is ever lost by accident."""
        check_profile_name(name)
        if name not in self.profiles():
            msg = f"no profile named {name!r}; see `wsidesk profiles list`"
            raise ProfileError(msg)
        if any(r.status == RunStatus.RUNNING for r in self.list_runs(name)):
            msg = f"profile {name!r} has runs in progress; cancel them first"
            raise ProfileError(msg)
        with self._tx() as db:
            db.execute("DELETE FROM profiles WHERE name = ?", (name,))

    def profiles(self) -> list[str]:
        names = [r["name"] for r in self._query("SELECT name FROM profiles ORDER BY name")]
        return names or [DEFAULT_PROFILE]

    def add_slide(self, profile: str, path: Path) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO profile_slides VALUES (?, ?, ?)",
                (check_profile_name(profile), str(path), time.time()),
            )

    def slides(self, profile: str) -> list[Path]:
        rows = self._query(
            "SELECT path FROM profile_slides WHERE profile = ? ORDER BY added",
            (check_profile_name(profile),),
        )
        return [Path(r["path"]) for r in rows]

    # -- runs -------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        run_id: str,
        profile: str,
        workflow: str,
        jobs: Iterable[tuple[str, str]],  # (job_id, branch)
        source: str | None = None,
        source_sha256: str | None = None,
        owner_pid: int | None = None,
    ) -> RunRecord:
        check_profile_name(profile)
        run_dir = self.layout.run_dir(profile, run_id)
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO profiles VALUES (?, ?)", (profile, now))
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, NULL)",
                (run_id, profile, workflow, source, source_sha256, str(run_dir), owner_pid, now),
            )
            db.executemany(
                "INSERT INTO jobs (run_id, job_id, branch, state) VALUES (?, ?, ?, 'pending')",
                [(run_id, job_id, branch) for job_id, branch in jobs],
            )
        return self.get_run(profile, run_id)

    def get_run(self, profile: str, run_id: str) -> RunRecord:
        """The run, if it belongs to `profile`; another profile's run is reported as not found."""
        rows = self._query("SELECT * FROM runs WHERE run_id = ? AND profile = ?", (run_id, check_profile_name(profile)))
        if not rows:
            msg = f"profile {profile!r} has no run {run_id!r}; see `wsidesk run --help` and list runs"
            raise ProfileError(msg)
        return _run_record(rows[0])

    def list_runs(self, profile: str) -> list[RunRecord]:
        rows = self._query("SELECT * FROM runs WHERE profile = ? ORDER BY created", (check_profile_name(profile),))
        return [_run_record(r) for r in rows]

    def find_resumable(self, profile: str, source: str, source_sha256: str) -> RunRecord | None:
        """The newest unfinished run of the same workflow file and content, for automatic resume."""
        rows = self._query(
            "SELECT * FROM runs WHERE profile = ? AND source = ? AND source_sha256 = ? "
            "AND status IN (?, ?) ORDER BY created DESC LIMIT 1",
            (check_profile_name(profile), source, source_sha256, *UNFINISHED),
        )
        return _run_record(rows[0]) if rows else None

    def set_run_status(self, run_id: str, status: RunStatus, *, owner_pid: int | None = None) -> None:
        finished = None if status in UNFINISHED else time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, owner_pid = ? WHERE run_id = ?",
                (status, finished, owner_pid, run_id),
            )

    # -- jobs -------------------------------------------------------------------------------
    def jobs(self, run_id: str) -> list[JobRecord]:
        rows = self._query("SELECT * FROM jobs WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [_job_record(r) for r in rows]

    def set_job_state(
        self,
        run_id: str,
        job_id: str,
        state: JobState,
        *,
        error: str | None = None,
        outputs: Mapping[str, str] | None = None,
        slide: Path | None = None,
    ) -> None:
        """Record a job's state; a succeeded job with a ``cells`` output is indexed under ``slide``
        (its image), for :meth:`segmentations`."""
        now = time.time()
        with self._tx() as db:
            if state == JobState.RUNNING:
                db.execute(
                    "UPDATE jobs SET state = ?, started = ?, finished = NULL, error = NULL "
                    "WHERE run_id = ? AND job_id = ?",
                    (state, now, run_id, job_id),
                )
            elif state == JobState.PENDING:  # interrupted: will run again on resume
                db.execute(
                    "UPDATE jobs SET state = ?, started = NULL, finished = NULL WHERE run_id = ? AND job_id = ?",
                    (state, run_id, job_id),
                )
            else:
                db.execute(
                    "UPDATE jobs SET state = ?, finished = ?, error = ?, outputs = ? WHERE run_id = ? AND job_id = ?",
                    (state, now, error, json.dumps(dict(outputs or {})), run_id, job_id),
                )
                cells = (outputs or {}).get("cells")
                if state == JobState.SUCCEEDED and cells:
                    db.execute(
                        "INSERT OR REPLACE INTO segmentations VALUES (?, ?, ?, ?)",
                        (run_id, job_id, str(slide.resolve()) if slide is not None else None, cells),
                    )

    # -- segmentation index ----------------------------------------------------------------------
    def segmentations(self, profile: str, slide: Path) -> list[SegmentationRecord]:
        """The profile's succeeded jobs with cells on ``slide``: newest run first, then workflow order."""
        rows = self._query(
            "SELECT s.run_id, s.job_id, r.workflow, s.cells FROM segmentations s "
            "JOIN runs r ON r.run_id = s.run_id "
            "JOIN jobs j ON j.run_id = s.run_id AND j.job_id = s.job_id "
            "WHERE r.profile = ? AND s.slide = ? ORDER BY r.created DESC, r.rowid DESC, j.rowid",
            (check_profile_name(profile), str(Path(slide).resolve())),
        )
        return [SegmentationRecord(r["run_id"], r["job_id"], r["workflow"], Path(r["cells"])) for r in rows]

    def _create_segmentation_index(self) -> None:
        """Create the index on first open of a data folder, filled from the jobs already there."""
        with self._tx() as db:
            exists = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'segmentations'"
            ).fetchone()
            if exists:
                return
            # One statement at a time: executescript would commit the open transaction.
            for statement in SEGMENTATIONS_SCHEMA:
                db.execute(statement)
            rows = db.execute(
                "SELECT j.run_id, j.job_id, j.outputs, r.run_dir FROM jobs j JOIN runs r ON r.run_id = j.run_id "
                "WHERE j.state = ?",
                (JobState.SUCCEEDED,),
            ).fetchall()
            indexed = []
            for row in rows:
                cells = json.loads(row["outputs"] or "{}").get("cells")
                if cells:
                    slide = _planned_slide(Path(row["run_dir"]) / row["job_id"] / "tiles.json")
                    indexed.append((row["run_id"], row["job_id"], slide, cells))
            db.executemany("INSERT OR IGNORE INTO segmentations VALUES (?, ?, ?, ?)", indexed)
            if indexed:
                logger.info("indexed %d finished segmentations from the run folders", len(indexed))

    # -- tile checkpoints (segmentation resumes from these) --------------------------------------
    def set_tile_states(self, run_id: str, job_id: str, states: Iterable[tuple[int, str, str | None]]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?, ?)",
                [(run_id, job_id, index, state, detail) for index, state, detail in states],
            )

    def tile_states(self, run_id: str, job_id: str) -> dict[int, tuple[str, str | None]]:
        rows = self._query(
            "SELECT tile_index, state, detail FROM tiles WHERE run_id = ? AND job_id = ?",
            (run_id, job_id),
        )
        return {r["tile_index"]: (r["state"], r["detail"]) for r in rows}


def _planned_slide(tiles: Path) -> str | None:
    """The resolved slide a job's tiles.json was planned on; None if it cannot be read."""
    from wsidesk.core.tiling.grid import TilePlan

    try:
        return str(Path(TilePlan.read_json(tiles).slide_path).resolve())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.debug("cannot read the slide of %s: %s", tiles, exc)
        return None


def _run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        profile=row["profile"],
        workflow=row["workflow"],
        source=row["source"],
        source_sha256=row["source_sha256"],
        run_dir=Path(row["run_dir"]),
        status=RunStatus(row["status"]),
        owner_pid=row["owner_pid"],
        created=row["created"],
        finished=row["finished"],
    )


def _job_record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        run_id=row["run_id"],
        job_id=row["job_id"],
        branch=row["branch"],
        state=JobState(row["state"]),
        started=row["started"],
        finished=row["finished"],
        error=row["error"],
        outputs=json.loads(row["outputs"] or "{}"),
    )


@dataclass(frozen=True, slots=True)
class StoreCheckpoints:
    """TileCheckpoints of one job of one run, kept in the store's `tiles` table."""

    store: Store
    run_id: str
    job_id: str

    def load(self) -> dict[int, tuple[str, str | None]]:
        return self.store.tile_states(self.run_id, self.job_id)

    def save(self, states: Iterable[tuple[int, str, str | None]]) -> None:
        self.store.set_tile_states(self.run_id, self.job_id, states)
