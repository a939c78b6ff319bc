"""Run and job progress from core events: plain Python, cheap to update, easy to test.

One book feeds every display: the GUI's run dashboard and the headless console reporter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wsidesk.core.events import Event, EventName
from wsidesk.core.states import JobState, RunStatus

# The rate is measured from the job's start, not over a short window: on CPU a batch of 16 tiles can
# take longer than any sensible window, and a window holding one batch has no rate at all.


@dataclass(slots=True)
class JobProgress:
    job_id: str
    branch: str
    state: JobState = JobState.PENDING
    tiles_done: int = 0
    tiles_total: int = 0
    cells: int = 0
    started: float | None = None
    first_batch: float | None = None  # when its first tile batch since it started arrived
    rate_origin: tuple[float, int] | None = None  # (ts, tiles done) the rate counts from
    last_batch: tuple[float, int] | None = None  # (ts, tiles done) of the newest batch
    log: list[str] = field(default_factory=list)
    reused_from: str | None = None  # run whose finished result this job reused instead of running

    @property
    def rate(self) -> float:
        """Tiles per second since the job started (tiles restored by a resume do not count)."""
        if self.rate_origin is None or self.last_batch is None:
            return 0.0
        (t0, d0), (t1, d1) = self.rate_origin, self.last_batch
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if rate <= 0 or self.tiles_total <= self.tiles_done:
            return None
        return (self.tiles_total - self.tiles_done) / rate

    @property
    def streaming(self) -> bool:
        """Running and has reported a tile batch since it started (a segmentation under way)."""
        return self.state is JobState.RUNNING and self.first_batch is not None


@dataclass(slots=True)
class RunProgress:
    run_id: str
    profile: str
    workflow: str
    status: RunStatus = RunStatus.RUNNING
    queue_position: int | None = None
    jobs: dict[str, JobProgress] = field(default_factory=dict)
    # Jobs finished since the run was (re)submitted, counting those an earlier attempt finished.
    jobs_finished: int = 0
    cancelling: bool = False  # a cancel was asked for and the run has not finished yet

    def job(self, event: Event) -> JobProgress:
        job_id = event.job_id or ""
        if job_id not in self.jobs:
            self.jobs[job_id] = JobProgress(job_id, event.branch or "")
        return self.jobs[job_id]

    @property
    def state_text(self) -> str:
        """What a display shows as the run's state."""
        if self.cancelling and self.status.is_active:
            return "cancelling…"
        if self.queue_position is not None and self.status is RunStatus.WAITING:
            return f"waiting (#{self.queue_position})"
        return str(self.status)

    @property
    def done_jobs(self) -> int:
        """Jobs seen in this session that reached a terminal state."""
        return sum(j.state.is_terminal for j in self.jobs.values())


class ProgressBook:
    """Everything a progress display shows, updated one event at a time (not thread-safe)."""

    def __init__(self) -> None:
        self.runs: dict[str, RunProgress] = {}
        self.tiles_done_total = 0  # across runs, for the tiles/s plot

    def expect(
        self,
        run_id: str,
        *,
        profile: str,
        workflow: str,
        jobs: Iterable[tuple[str, str]],
        status: RunStatus = RunStatus.RUNNING,
        states: Mapping[str, JobState] | None = None,
    ) -> RunProgress:
        """Make a run known with all its jobs ``(job_id, branch)`` before (or without) its events:
        a waiting run counts its jobs, and a run from an earlier session shows where it stopped."""
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = RunProgress(run_id, profile, workflow, status=status)
        for job_id, branch in jobs:
            job = run.jobs.setdefault(job_id, JobProgress(job_id, branch))
            if states and job_id in states:
                job.state = states[job_id]
        return run

    def cancel_requested(self, run_id: str) -> RunProgress | None:
        """Mark a run as cancelling until its ``run_finished`` arrives."""
        run = self.runs.get(run_id)
        if run is not None and run.status.is_active:
            run.cancelling = True
        return run

    def apply(self, event: Event) -> RunProgress:
        run = self.runs.get(event.run_id)
        if run is None:
            run = self.runs[event.run_id] = RunProgress(event.run_id, event.profile, event.workflow)
        name, f = event.event, event.fields
        if name is EventName.RUN_SUBMITTED:
            run.status, run.cancelling = RunStatus.RUNNING, False
            run.jobs_finished = int(f.get("done", 0))
        elif name is EventName.PROFILE_QUEUED:
            run.status, run.queue_position = RunStatus.WAITING, int(f.get("position", 0))
        elif name is EventName.PROFILE_ACTIVATED:
            run.status, run.queue_position = RunStatus.RUNNING, None
        elif name is EventName.RUN_FINISHED:
            run.status, run.cancelling = RunStatus(str(f.get("status"))), False
        if event.job_id is None:
            return run
        job = run.job(event)
        state = event.job_state
        if state is not None:
            job.state = state
            if state is JobState.RUNNING:
                job.started = event.ts
                job.reused_from = None
                job.first_batch = None
                job.rate_origin = job.last_batch = None
            else:
                run.jobs_finished += 1
            detail = f.get("error") or f.get("reason")
            job.log.append(_stamp(event.ts) + f" {name.removeprefix('job_')}" + (f": {detail}" if detail else ""))
        elif name is EventName.JOB_REUSED:
            job.reused_from = str(f.get("source_run", ""))
            job.log.append(_stamp(event.ts) + f" reused the result of run {job.reused_from} (no recomputation)")
        elif name is EventName.TILES_PLANNED:
            job.tiles_total = int(f.get("tissue", 0))
            job.log.append(_stamp(event.ts) + f" {f.get('tissue')} tissue tiles of {f.get('total')}")
        elif name is EventName.TILE_BATCH_DONE:
            done = int(f.get("done", 0))
            self.tiles_done_total += max(0, done - job.tiles_done)
            job.tiles_done, job.tiles_total, job.cells = done, int(f.get("total", 0)), int(f.get("cells", 0))
            if job.first_batch is None:
                job.first_batch = event.ts
                batch = event.batch
                if batch is not None and job.started is not None:
                    # This batch's tiles ran since the job started; tiles done before (a resume) do not.
                    job.rate_origin = (job.started, done - len(batch.tile_indices) - len(batch.failed))
                else:
                    job.rate_origin = (event.ts, done)
            job.last_batch = (event.ts, done)
        return run

    def active_runs(self) -> list[RunProgress]:
        """Runs that are running or wait for their profile's slot, in submit order."""
        return [run for run in self.runs.values() if run.status.is_active]

    def streaming_jobs(self) -> list[JobProgress]:
        """Running jobs that report tile batches, across runs, in the order their first batch came."""
        jobs = [job for run in self.runs.values() for job in run.jobs.values() if job.streaming]
        return sorted(jobs, key=lambda job: job.first_batch or 0.0)


def _stamp(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
