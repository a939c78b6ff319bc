"""`wsidesk store rebuild`: a new store filled from the run folders, when the database was lost or damaged.

Each run folder keeps what is needed: `workflow.yaml` (the jobs and branches), `events.jsonl` (what
happened, in order), `summary.json` (the final states, when the run finished) and, for segment jobs,
`cells.parts.jsonl` (the finished tiles). An unfinished run comes back as interrupted, so running the
same command again resumes it. The old database is kept beside the new one, renamed, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsidesk.core.errors import StoreError, WsideskError
from wsidesk.core.profiles import check_profile_name
from wsidesk.core.states import JobState, RunStatus
from wsidesk.core.store.db import JobRecord, RunRecord, Store
from wsidesk.core.store.paths import DataLayout

logger = logging.getLogger(__name__)

_EVENT_STATES = {
    "job_started": JobState.RUNNING,
    "job_succeeded": JobState.SUCCEEDED,
    "job_failed": JobState.FAILED,
    "job_skipped": JobState.SKIPPED,
    "job_cancelled": JobState.CANCELLED,
}


@dataclass(slots=True)
class RebuildReport:
    database: Path
    kept_as: Path | None = None  # the old database, renamed
    profiles: list[str] = field(default_factory=list)
    runs: dict[str, RunStatus] = field(default_factory=dict)  # run_id -> status
    tiles: int = 0
    skipped: list[str] = field(default_factory=list)  # "folder: why"


def rebuild_store(root: Path) -> RebuildReport:
    """Move the old database aside and rebuild profiles, runs, job states and tile checkpoints."""
    layout = DataLayout(Path(root))
    report = RebuildReport(layout.database)
    report.kept_as = _move_aside(layout.database)
    store = Store(layout.root, rebuilding=True)
    try:
        profiles_dir = layout.root / "profiles"
        for profile_dir in sorted(p for p in _listdir(profiles_dir) if p.is_dir()):
            try:
                profile = check_profile_name(profile_dir.name)
            except WsideskError as exc:
                report.skipped.append(f"{profile_dir}: {exc}")
                continue
            store.add_profile(profile)
            report.profiles.append(profile)
            for run_dir in sorted(p for p in _listdir(profile_dir / "runs") if p.is_dir()):
                try:
                    _rebuild_run(store, profile, run_dir, report)
                except (WsideskError, OSError, ValueError, KeyError, TypeError) as exc:
                    report.skipped.append(f"{run_dir}: {exc}")
                    logger.warning("cannot rebuild run %s: %s", run_dir, exc)
    finally:
        store.close()
    return report


def _listdir(folder: Path) -> Iterator[Path]:
    try:
        yield from folder.iterdir()
    except FileNotFoundError:
        return


def _move_aside(database: Path) -> Path | None:
    if not database.exists():
        return None
    kept = database.with_name(f"{database.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{database}{suffix}")
            if part.exists():
                os.replace(part, Path(f"{kept}{suffix}"))
    except OSError as exc:
        msg = f"cannot move the damaged store {database} aside: {exc}; check the folder's permissions"
        raise StoreError(msg) from exc
    return kept


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a torn last line
        if isinstance(event, dict) and "event" in event:
            events.append(event)
    return events


def _rebuild_run(store: Store, profile: str, run_dir: Path, report: RebuildReport) -> None:
    from wsidesk.core.segment.shards import recorded_tiles
    from wsidesk.core.workflow.io import loads_workflow

    copy = run_dir / "workflow.yaml"
    raw = copy.read_bytes()
    events = _read_events(run_dir / "events.jsonl")
    submitted = [e for e in events if e["event"] == "run_submitted"]
    source = next((e["source"] for e in submitted if isinstance(e.get("source"), str)), None)
    # Relative image paths in the copy stay relative to the original YAML file, as on resume.
    workflow = loads_workflow(raw.decode("utf-8"), file=source or copy, check_images=False)
    created = float(submitted[0]["ts"]) if submitted else run_dir.stat().st_mtime
    jobs: dict[str, dict[str, Any]] = {
        job.job_id: {
            "branch": branch.name,
            "state": JobState.PENDING,
            "started": None,
            "finished": None,
            "error": None,
            "outputs": {},
        }
        for branch, job in workflow.jobs()
    }
    status: RunStatus | None = None
    finished: float | None = None
    for event in events:
        job = jobs.get(str(event.get("job_id")))
        state = _EVENT_STATES.get(event["event"])
        if job is not None and state is not None:
            job["state"] = state
            if state == JobState.RUNNING:
                job.update(started=event["ts"], finished=None, error=None)
            else:
                job["finished"] = event["ts"]
                job["error"] = event.get("error") or event.get("reason") if state != JobState.SUCCEEDED else None
                if state == JobState.CANCELLED and event.get("reason") == "interrupted":
                    job["state"] = JobState.PENDING  # runs again on resume
                if state == JobState.SUCCEEDED:
                    job["outputs"] = dict(event.get("outputs") or {})
        elif event["event"] == "run_finished":
            status, finished = RunStatus(event["status"]), float(event["ts"])
        elif event["event"] == "run_submitted":
            status, finished = None, None  # resumed: what happened before is superseded
    summary = _read_summary(run_dir / "summary.json")
    if summary is not None and summary.get("run_id") == run_dir.name:
        status = RunStatus(summary["status"])
        finished = summary.get("finished")
        for job_id, saved in dict(summary.get("jobs") or {}).items():
            if job_id in jobs:
                jobs[job_id].update(
                    state=JobState(saved["state"]),
                    started=saved.get("started"),
                    finished=saved.get("finished"),
                    error=saved.get("error"),
                    outputs=dict(saved.get("outputs") or {}),
                )
    if status is None or status == RunStatus.RUNNING:
        status = RunStatus.INTERRUPTED  # its process is gone: the same command resumes it
    if status == RunStatus.INTERRUPTED:
        for job in jobs.values():
            if job["state"] == JobState.RUNNING:
                job["state"] = JobState.PENDING
    record = RunRecord(
        run_id=run_dir.name,
        profile=profile,
        workflow=workflow.name,
        source=source,
        source_sha256=hashlib.sha256(raw).hexdigest(),
        run_dir=run_dir,
        status=status,
        owner_pid=None,
        created=created,
        finished=finished,
    )
    records = [
        JobRecord(run_dir.name, job_id, j["branch"], j["state"], j["started"], j["finished"], j["error"], j["outputs"])
        for job_id, j in jobs.items()
    ]
    slides = {job.job_id: workflow.image_path(job) for _, job in workflow.jobs()}
    store.import_run(record, records, slides)
    for job_id in jobs:
        tiles = recorded_tiles(run_dir / job_id)
        if tiles:
            store.set_tile_states(run_dir.name, job_id, [(i, s, d) for i, (s, d) in sorted(tiles.items())])
            report.tiles += len(tiles)
    report.runs[run_dir.name] = status


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
