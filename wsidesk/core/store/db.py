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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsidesk.core.errors import ProfileError, StoreError
from wsidesk.core.fileio import disk_full_message, is_disk_full
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

RESERVE_FILENAME = ".wsidesk-reserve"
RESERVE_BYTES = 512 * 1024
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


class StoreDamagedError(StoreError):
    """The database is empty or damaged while run folders exist: refuse until `wsidesk store rebuild`."""


class Store:
    """Persistent runs and jobs. Every query that returns runs is scoped to one profile."""

    def __init__(self, root: Path, *, rebuilding: bool = False) -> None:
        """Open (or create) the store in `root`; `rebuilding` allows a new database beside existing
        run folders (only `wsidesk store rebuild` passes it, and then fills it from those folders)."""
        self.layout = DataLayout(Path(root))
        try:
            self.layout.root.mkdir(parents=True, exist_ok=True)
            if not rebuilding:
                self._refuse_lost_history()
            self._db = sqlite3.connect(self.layout.database, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._check_integrity()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except StoreDamagedError:
            raise
        except (OSError, sqlite3.Error) as exc:
            if is_disk_full(exc):
                raise StoreError(disk_full_message(self.layout.root)) from exc
            msg = f"cannot use the data folder {root}: {exc}; pass another with --data-dir"
            raise StoreError(msg) from exc
        self._lock = threading.Lock()
        self._create_segmentation_index()
        self._keep_reserve()

    @property
    def _reserve(self) -> Path:
        return self.layout.root / RESERVE_FILENAME

    def _keep_reserve(self) -> None:
        """A little space set aside, so that on a full disk the end of a run can still be recorded."""
        if self._reserve.exists():
            return
        try:
            with self._reserve.open("wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
        except OSError:
            self._reserve.unlink(missing_ok=True)  # no room for it now: the next open tries again

    def release_reserve(self) -> bool:
        """Free the space set aside (the disk is full); True if there was some."""
        try:
            self._reserve.unlink()
        except OSError:
            return False
        logger.warning(
            "the disk is full: used the space wsidesk set aside in %s to record how runs ended", self.layout.root
        )
        return True

    def _refuse_lost_history(self) -> None:
        """An empty or missing database beside existing run folders means the history was lost:
        creating a fresh store would silently forget every profile and interrupted run."""
        db = self.layout.database
        if db.exists() and db.stat().st_size > 0:
            return
        runs = existing_run_dirs(self.layout)
        if runs:
            what = "is empty" if db.exists() else "is missing"
            raise StoreDamagedError(self._damaged_message(f"{what}, but {len(runs)} run folder(s) exist"))

    def _check_integrity(self) -> None:
        try:
            rows = self._db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            if is_disk_full(exc):
                raise
            self._db.close()
            raise StoreDamagedError(self._damaged_message(f"is not a readable SQLite database ({exc})")) from exc
        problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
        if problems:
            self._db.close()
            raise StoreDamagedError(self._damaged_message(f"is damaged ({problems[0]})"))

    def _damaged_message(self, what: str) -> str:
        return (
            f"the store {self.layout.database} {what}; nothing was changed. Run `wsidesk store rebuild "
            f"--data-dir {self.layout.root}` to rebuild profiles, runs and job states from the run folders"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            with immediate_transaction(self._db, self._lock) as db:
                yield db
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc) from exc

    def _error(self, exc: BaseException) -> StoreError:
        if is_disk_full(exc):
            return StoreError(disk_full_message(self.layout.root))
        return StoreError(f"database {self.layout.database} failed: {exc}")

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    # -- profiles ---------------------------------------------------------------------------
    def add_profile(self, name: str) -> None:
        check_profile_name(name)
        with self._tx() as db:
            _refuse_case_twin(db, name)
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
            _refuse_case_twin(db, profile)
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

    def import_run(self, run: RunRecord, jobs: Iterable[JobRecord], slides: Mapping[str, Path | None]) -> None:
        """Insert a run recovered from its folder (`wsidesk store rebuild`), with its jobs as they were."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO profiles VALUES (?, ?)", (run.profile, run.created))
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (
                    run.run_id,
                    run.profile,
                    run.workflow,
                    run.source,
                    run.source_sha256,
                    str(run.run_dir),
                    run.status,
                    run.created,
                    run.finished,
                ),
            )
            for job in jobs:
                db.execute(
                    "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.run_id,
                        job.job_id,
                        job.branch,
                        job.state,
                        job.started,
                        job.finished,
                        job.error,
                        json.dumps(dict(job.outputs)),
                    ),
                )
                cells = job.outputs.get("cells")
                if job.state == JobState.SUCCEEDED and cells:
                    slide = slides.get(job.job_id)
                    db.execute(
                        "INSERT OR REPLACE INTO segmentations VALUES (?, ?, ?, ?)",
                        (run.run_id, job.job_id, str(slide.resolve()) if slide is not None else None, cells),
                    )

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

    def claim_run(self, run_id: str, owner_pid: int, *, alive: Callable[[int | None], bool]) -> int | None:
        """Make `owner_pid` the run's owner unless another live process owns it; returns that process's
        pid when it does (nothing changed), else None. One transaction, so two processes cannot both win."""
        with self._tx() as db:
            row = db.execute("SELECT owner_pid, status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            owner = row["owner_pid"]
            if row["status"] == RunStatus.RUNNING and owner not in (None, owner_pid) and alive(owner):
                return int(owner)
            db.execute("UPDATE runs SET owner_pid = ? WHERE run_id = ?", (owner_pid, run_id))
            return None

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

    def relink_segmentation(self, run_id: str, job_id: str, slide: Path) -> None:
        """Index a finished segmentation under `slide` (its slide moved; found again by fingerprint)."""
        with self._tx() as db:
            db.execute(
                "UPDATE segmentations SET slide = ? WHERE run_id = ? AND job_id = ?",
                (str(slide.resolve()), run_id, job_id),
            )

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


@contextmanager
def immediate_transaction(db: sqlite3.Connection, lock: threading.Lock) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT under `lock`, rolled back when the body or the COMMIT fails."""
    with lock:
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            # SQLite may have rolled back on its own (SQLITE_FULL, I/O errors): a second ROLLBACK
            # would then fail with "no transaction is active" and hide the real error.
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error as rollback_error:
                    logger.debug("rollback after %r failed: %s", exc, rollback_error)
            raise


def _refuse_case_twin(db: sqlite3.Connection, name: str) -> None:
    """Profile folders must not collide on case-insensitive file systems (macOS, Windows)."""
    twin = db.execute("SELECT name FROM profiles WHERE lower(name) = lower(?) AND name != ?", (name, name)).fetchone()
    if twin is not None:
        msg = (
            f"profile {name!r} differs from the existing profile {twin['name']!r} only in case; "
            f"use {twin['name']!r} or pick another name"
        )
        raise ProfileError(msg)


def existing_run_dirs(layout: DataLayout) -> list[Path]:
    """Run folders under `<data>/profiles/*/runs/`."""
    root = layout.root / "profiles"
    try:
        return sorted(p for p in root.glob("*/runs/*") if p.is_dir())
    except OSError:
        return []


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
