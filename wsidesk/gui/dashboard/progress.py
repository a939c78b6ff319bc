"""Progress bookkeeping from core events: plain Python, so it is easy to test and cheap to update."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from wsidesk.core.events import Event

_JOB_STATE = {
    "job_started": "running",
    "job_succeeded": "succeeded",
    "job_failed": "failed",
    "job_skipped": "skipped",
    "job_cancelled": "cancelled",
}


@dataclass(slots=True)
class JobProgress:
    job_id: str
    branch: str
    state: str = "pending"
    tiles_done: int = 0
    tiles_total: int = 0
    cells: int = 0
    started: float | None = None
    tile_times: list[tuple[float, int]] = field(default_factory=list)  # (ts, done) for the rate
    log: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Tiles per second over the last ~10 s of batches."""
        if len(self.tile_times) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self.tile_times[0], self.tile_times[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if rate <= 0 or self.tiles_total <= self.tiles_done:
            return None
        return (self.tiles_total - self.tiles_done) / rate


@dataclass(slots=True)
class RunProgress:
    run_id: str
    profile: str
    workflow: str
    status: str = "running"
    queue_position: int | None = None
    jobs: dict[str, JobProgress] = field(default_factory=dict)

    def job(self, event: Event) -> JobProgress:
        job_id = event.job_id or ""
        if job_id not in self.jobs:
            self.jobs[job_id] = JobProgress(job_id, event.branch or "")
        return self.jobs[job_id]

    @property
    def done_jobs(self) -> int:
        return sum(j.state in ("succeeded", "failed", "skipped", "cancelled") for j in self.jobs.values())


class ProgressBook:
    """Everything the dashboard shows, updated one event at a time."""

    def __init__(self) -> None:
        self.runs: dict[str, RunProgress] = {}
        self.tiles_done_total = 0  # across runs, for the tiles/s plot

    def apply(self, event: Event) -> RunProgress:
        run = self.runs.get(event.run_id)
        if run is None:
            run = self.runs[event.run_id] = RunProgress(event.run_id, event.profile, event.workflow)
        name, f = event.event, event.fields
        if name == "run_submitted":
            run.status = "running"
        elif name == "profile_queued":
            run.status, run.queue_position = "waiting", int(f.get("position", 0))
        elif name == "profile_activated":
            run.status, run.queue_position = "running", None
        elif name == "run_finished":
            run.status = str(f.get("status"))
        if event.job_id is None:
            return run
        job = run.job(event)
        if name in _JOB_STATE:
            job.state = _JOB_STATE[name]
            if name == "job_started":
                job.started = event.ts
                job.tile_times.clear()
            detail = f.get("error") or f.get("reason")
            job.log.append(_stamp(event.ts) + f" {name.removeprefix('job_')}" + (f": {detail}" if detail else ""))
        elif name == "tiles_planned":
            job.tiles_total = int(f.get("tissue", 0))
            job.log.append(_stamp(event.ts) + f" {f.get('tissue')} tissue tiles of {f.get('total')}")
        elif name == "tile_batch_done":
            done = int(f.get("done", 0))
            self.tiles_done_total += max(0, done - job.tiles_done)
            job.tiles_done, job.tiles_total, job.cells = done, int(f.get("total", 0)), int(f.get("cells", 0))
            job.tile_times.append((event.ts, done))
            job.tile_times[:] = [(t, d) for t, d in job.tile_times if t >= event.ts - 10.0]
        return run


def _stamp(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
