"""The planner: a pure, deterministic state machine that decides which job may start next.

No threads, no I/O, no clocks (after CPython's ``graphlib.TopologicalSorter`` and dask's local
scheduler). A runner asks :meth:`Planner.ready`, starts jobs on its executor, reports each outcome,
and logs the :data:`Change` values every mutating call returns. The planner is not thread-safe: the
runner serialises calls (one thread, or one lock).

Rules it enforces:

- jobs of one branch run one at a time, in list order (FIFO); branch names are scoped to their run;
- a job runs only after every job it ``depends_on`` succeeded;
- at most ``workers`` jobs run at once;
- at most ``max_active_profiles`` profiles have work dispatched; the others wait FIFO;
- a failed job skips the rest of its branch and, transitively, everything depending on it;
- ``ready()`` interleaves active profiles (and the runs within a profile) round-robin, least
  recently dispatched first, so one large workflow cannot starve another.

Every call costs time proportional to what it changes, never to the number of jobs submitted.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from wsidesk.core.errors import WorkflowError
from wsidesk.core.profiles import check_profile_name
from wsidesk.core.states import SCHEDULED_JOB_STATES, JobState, RunStatus
from wsidesk.core.workflow.graph import cycle_text, find_cycle
from wsidesk.core.workflow.model import Workflow

logger = logging.getLogger(__name__)

__all__ = [
    "Change",
    "JobCancellation",
    "JobKey",
    "JobSkipped",
    "JobState",
    "Planner",
    "ProfileActivated",
    "ProfileQueued",
    "ProfileReleased",
    "RunFinished",
    "RunStatus",
]


# Module-level aliases: the hot paths compare states by identity thousands of times a second.
_PENDING = JobState.PENDING
_RUNNING = JobState.RUNNING
_SUCCEEDED = JobState.SUCCEEDED
_FAILED = JobState.FAILED
_SKIPPED = JobState.SKIPPED
_CANCELLED = JobState.CANCELLED


@dataclass(frozen=True, slots=True, order=True)
class JobKey:
    run_id: str
    job_id: str


@dataclass(frozen=True, slots=True)
class ProfileQueued:
    """The profile has work but every active slot is taken; ``position`` is 1-based in the queue."""

    profile: str
    position: int


@dataclass(frozen=True, slots=True)
class ProfileActivated:
    profile: str


@dataclass(frozen=True, slots=True)
class ProfileReleased:
    """The profile has nothing pending or running any more; its slot is free."""

    profile: str


@dataclass(frozen=True, slots=True)
class JobSkipped:
    key: JobKey
    reason: str


@dataclass(frozen=True, slots=True)
class JobCancellation:
    """The job was cancelled (pending, or running and now stopped); not the error a job raises."""

    key: JobKey


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    status: RunStatus  # SUCCEEDED, FAILED or CANCELLED


Change = ProfileQueued | ProfileActivated | ProfileReleased | JobSkipped | JobCancellation | RunFinished


class _Job:
    """Mutable bookkeeping for one job; internal, identity-hashed for speed."""

    __slots__ = (
        "branch",
        "dependents",
        "error",
        "job_id",
        "key",
        "pos",
        "reason",
        "run",
        "state",
        "unmet",
    )

    def __init__(self, run: _Run, key: JobKey, branch: _Branch, pos: int) -> None:
        self.run = run
        self.key = key
        self.job_id = key.job_id
        self.branch = branch
        self.pos = pos
        self.state = _PENDING
        self.unmet = 0  # dependencies not yet succeeded
        self.dependents: list[_Job] = []
        self.reason: str | None = None
        self.error: str | None = None


class _Branch:
    __slots__ = ("cursor", "jobs", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.jobs: list[_Job] = []
        self.cursor = 0  # index of the first job that has not succeeded


class _Run:
    __slots__ = (
        "branches",
        "cancelled",
        "counts",
        "jobs",
        "profile",
        "ready",
        "run_id",
        "status",
        "workflow",
    )

    def __init__(self, run_id: str, profile: str, workflow: Workflow) -> None:
        self.run_id = run_id
        self.profile = profile
        self.workflow = workflow
        self.jobs: dict[str, _Job] = {}
        self.branches: list[_Branch] = []
        # Jobs that may start as soon as their profile is active and a worker is free, in the
        # order they became so (a dict is an insertion-ordered set).
        self.ready: dict[_Job, None] = {}
        self.counts: dict[JobState, int] = dict.fromkeys(SCHEDULED_JOB_STATES, 0)
        self.cancelled = False
        self.status: RunStatus | None = None

    @property
    def open(self) -> bool:
        return self.counts[_PENDING] > 0 or self.counts[_RUNNING] > 0


def _interleave(iterables: Iterable[Iterable[Any]]) -> Iterator[Any]:
    """Round-robin over iterables, lazily, dropping each one when it is exhausted.

    The first round pulls ``iterables`` one at a time, so taking a few items costs O(items),
    not O(number of iterables): ``ready()`` usually wants one job out of hundreds of runs.
    """
    queue: deque[Iterator[Any]] = deque()
    for iterable in iterables:
        it = iter(iterable)
        for item in it:
            yield item
            queue.append(it)
            break
    while queue:
        it = queue.popleft()
        for item in it:
            yield item
            queue.append(it)
            break


class Planner:
    """Decides which jobs may start; see the module docstring for the rules."""

    def __init__(self, *, workers: int = 4, max_active_profiles: int = 3) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            msg = f"workers must be an integer >= 1, got {workers!r}"
            raise ValueError(msg)
        if not isinstance(max_active_profiles, int) or isinstance(max_active_profiles, bool) or max_active_profiles < 1:
            msg = f"max_active_profiles must be an integer >= 1, got {max_active_profiles!r}"
            raise ValueError(msg)
        self._workers = workers
        self._max_active = max_active_profiles
        self._runs: dict[str, _Run] = {}
        # Per profile: its unfinished runs, least recently dispatched first.
        self._open_runs: dict[str, dict[_Run, None]] = {}
        self._active: list[str] = []  # activation order, for display
        self._turn: dict[str, None] = {}  # active profiles, least recently dispatched first
        self._queue: deque[str] = deque()
        self._running: dict[_Job, None] = {}  # in start order

    # ------------------------------------------------------------------ properties

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def max_active_profiles(self) -> int:
        return self._max_active

    # ------------------------------------------------------------------ submit

    def submit(self, run_id: str, profile: str, workflow: Workflow, *, done: Iterable[str] = ()) -> list[Change]:
        """Add a run; ``done`` names jobs that already succeeded in an earlier attempt (resume)."""
        if run_id in self._runs:
            msg = f"run {run_id!r} was already submitted; use a new run id"
            raise ValueError(msg)
        check_profile_name(profile)
        run = self._build_run(run_id, profile, workflow)
        done_ids = set(done)
        unknown = sorted(done_ids - run.jobs.keys())
        if unknown:
            msg = f"run {run_id!r}: done names jobs not in workflow {workflow.name!r}: {unknown}"
            raise ValueError(msg)

        counts = run.counts
        for job_id in done_ids:
            run.jobs[job_id].state = _SUCCEEDED
        counts[_SUCCEEDED] = len(done_ids)
        counts[_PENDING] = len(run.jobs) - len(done_ids)
        for rec in run.jobs.values():
            if rec.state is _SUCCEEDED:
                for dep in rec.dependents:
                    dep.unmet -= 1
        for branch in run.branches:
            self._advance(branch)
        self._runs[run_id] = run
        logger.debug("run %s submitted for profile %s: %d jobs", run_id, profile, len(run.jobs))

        changes: list[Change] = []
        if not run.open:
            self._finish(run, changes)
            return changes
        open_runs = self._open_runs.setdefault(profile, {})
        open_runs[run] = None
        if profile in self._turn or profile in self._queue:
            return changes
        if len(self._active) < self._max_active:
            self._activate(profile, changes)
        else:
            self._queue.append(profile)
            changes.append(ProfileQueued(profile, len(self._queue)))
        return changes

    def forget(self, run_id: str) -> None:
        """Drop a finished run, so it can be submitted again (resume or retry in a long session)."""
        run = self._runs.get(run_id)
        if run is None:
            return
        if run.open:
            msg = f"run {run_id!r} is not finished; cancel it first"
            raise ValueError(msg)
        del self._runs[run_id]

    def _build_run(self, run_id: str, profile: str, workflow: Workflow) -> _Run:
        run = _Run(run_id, profile, workflow)
        jobs = run.jobs
        branch_names: set[str] = set()
        for wf_branch in workflow.branches:
            if wf_branch.name in branch_names:
                msg = f"workflow {workflow.name!r}: branch {wf_branch.name!r} appears twice"
                raise WorkflowError(msg)
            branch_names.add(wf_branch.name)
            branch = _Branch(wf_branch.name)
            run.branches.append(branch)
            for pos, job in enumerate(wf_branch.jobs):
                if job.job_id in jobs:
                    msg = f"workflow {workflow.name!r}: job id {job.job_id!r} is used twice"
                    raise WorkflowError(msg, job_id=job.job_id)
                rec = _Job(run, JobKey(run_id, job.job_id), branch, pos)
                jobs[job.job_id] = rec
                branch.jobs.append(rec)
        for _, job in workflow.jobs():
            rec = jobs[job.job_id]
            for dep_id in dict.fromkeys(job.depends_on):  # ignore repeats, keep order
                dep = jobs.get(dep_id)
                if dep is None:
                    msg = f"workflow {workflow.name!r}: job {job.job_id!r} depends on unknown job {dep_id!r}"
                    raise WorkflowError(msg, job_id=job.job_id)
                dep.dependents.append(rec)
                rec.unmet += 1
        _check_acyclic(run)
        return run

    # ------------------------------------------------------------------ queries

    def ready(self) -> list[JobKey]:
        """Jobs that may start now, fairest first; at most ``workers - running``."""
        free = self._workers - len(self._running)
        if free <= 0 or not self._turn:
            return []
        per_profile = [self._profile_ready(p) for p in self._turn]
        out: list[JobKey] = []
        for rec in _interleave(per_profile):
            out.append(rec.key)
            if len(out) == free:
                break
        return out

    def _profile_ready(self, profile: str) -> Iterator[_Job]:
        return _interleave(run.ready for run in self._open_runs[profile] if run.ready)

    def state(self, key: JobKey) -> JobState:
        return self._job(key).state

    def branch(self, key: JobKey) -> str:
        """The branch the job belongs to (for job events)."""
        return self._job(key).branch.name

    def reason(self, key: JobKey) -> str | None:
        """Why a job was skipped, else None."""
        return self._job(key).reason

    def error(self, key: JobKey) -> str | None:
        """The error a failed job reported, else None."""
        return self._job(key).error

    def run_status(self, run_id: str) -> RunStatus | None:
        """``succeeded``, ``failed`` or ``cancelled`` once the run finished; None before."""
        return self._run(run_id).status

    def run_profile(self, run_id: str) -> str:
        return self._run(run_id).profile

    def run_workflow(self, run_id: str) -> Workflow:
        return self._run(run_id).workflow

    def job_states(self, run_id: str) -> dict[str, JobState]:
        """Every job of the run and its state, in workflow order."""
        return {job_id: rec.state for job_id, rec in self._run(run_id).jobs.items()}

    def runs(self) -> tuple[str, ...]:
        """Every submitted run id, in submit order."""
        return tuple(self._runs)

    def active_profiles(self) -> tuple[str, ...]:
        """Active profiles, in activation order."""
        return tuple(self._active)

    def queued_profiles(self) -> tuple[str, ...]:
        """Profiles waiting for a slot, first in line first."""
        return tuple(self._queue)

    def running(self) -> list[JobKey]:
        """Running jobs, oldest start first."""
        return [rec.key for rec in self._running]

    def is_idle(self) -> bool:
        """True when nothing is pending or running."""
        return not self._open_runs

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-ready counts for a dashboard."""
        return {
            "workers": self._workers,
            "max_active_profiles": self._max_active,
            "running": len(self._running),
            "active_profiles": list(self._active),
            "queued_profiles": list(self._queue),
            "runs": {
                run.run_id: {
                    "profile": run.profile,
                    "workflow": run.workflow.name,
                    "status": run.status,
                    "cancelled": run.cancelled,
                    "counts": {state.value: n for state, n in run.counts.items()},
                }
                for run in self._runs.values()
            },
        }

    # ------------------------------------------------------------------ transitions

    def started(self, key: JobKey) -> list[Change]:
        """PENDING -> RUNNING. Raises ValueError unless the job may start now."""
        rec = self._job(key)
        run = rec.run
        if rec not in run.ready or run.profile not in self._turn:
            msg = f"job {key.job_id!r} of run {key.run_id!r} cannot start now (state {rec.state})"
            raise ValueError(msg)
        if len(self._running) >= self._workers:
            msg = f"cannot start job {key.job_id!r} of run {key.run_id!r}: all {self._workers} workers are busy"
            raise ValueError(msg)
        del run.ready[rec]
        rec.state = _RUNNING
        counts = run.counts
        counts[_PENDING] -= 1
        counts[_RUNNING] += 1
        self._running[rec] = None
        # Least recently dispatched goes first: move this profile and run to the back.
        turn = self._turn
        del turn[run.profile]
        turn[run.profile] = None
        open_runs = self._open_runs[run.profile]
        del open_runs[run]
        open_runs[run] = None
        return []

    def succeeded(self, key: JobKey) -> list[Change]:
        rec = self._take_running(key, _SUCCEEDED)
        run = rec.run
        rec.state = _SUCCEEDED
        run.counts[_SUCCEEDED] += 1
        if not run.cancelled:
            self._advance(rec.branch)
            for dep in rec.dependents:
                dep.unmet -= 1
                if dep.unmet == 0 and dep.state is _PENDING and dep.branch.cursor == dep.pos:
                    run.ready[dep] = None
        changes: list[Change] = []
        if not run.open:
            self._finish(run, changes)
        return changes

    def failed(self, key: JobKey, error: str) -> list[Change]:
        rec = self._take_running(key, _FAILED)
        run = rec.run
        rec.state = _FAILED
        rec.error = error
        run.counts[_FAILED] += 1
        changes: list[Change] = []
        self._skip_downstream(rec, changes)
        if not run.open:
            self._finish(run, changes)
        return changes

    def cancel_run(self, run_id: str) -> list[Change]:
        """Stop dispatching the run: pending jobs become CANCELLED; running ones stay RUNNING
        until the runner reports them (``cancelled``, ``succeeded`` or ``failed``)."""
        run = self._run(run_id)
        changes: list[Change] = []
        if run.status is not None or run.cancelled:
            return changes
        self._cancel_pending(run, changes)
        if not run.open:
            self._finish(run, changes)
        return changes

    def cancelled(self, key: JobKey) -> list[Change]:
        """A RUNNING job stopped because of a cancel -> CANCELLED.

        If its run was not cancelled yet, the whole run is cancelled: its later jobs could
        never run otherwise.
        """
        rec = self._take_running(key, _CANCELLED)
        run = rec.run
        rec.state = _CANCELLED
        run.counts[_CANCELLED] += 1
        changes: list[Change] = [JobCancellation(key)]
        if not run.cancelled:
            self._cancel_pending(run, changes)
        if not run.open:
            self._finish(run, changes)
        return changes

    def cancel_profile(self, profile: str) -> list[Change]:
        """Cancel every unfinished run of the profile."""
        changes: list[Change] = []
        for run in list(self._open_runs.get(profile, ())):
            changes.extend(self.cancel_run(run.run_id))
        return changes

    # ------------------------------------------------------------------ internals

    def _run(self, run_id: str) -> _Run:
        try:
            return self._runs[run_id]
        except KeyError:
            msg = f"unknown run {run_id!r}"
            raise KeyError(msg) from None

    def _job(self, key: JobKey) -> _Job:
        try:
            return self._runs[key.run_id].jobs[key.job_id]
        except KeyError:
            msg = f"unknown job {key.job_id!r} in run {key.run_id!r}"
            raise KeyError(msg) from None

    def _take_running(self, key: JobKey, outcome: JobState) -> _Job:
        rec = self._job(key)
        if rec.state is not _RUNNING:
            msg = f"cannot mark job {key.job_id!r} of run {key.run_id!r} {outcome}: it is {rec.state}, not running"
            raise ValueError(msg)
        del self._running[rec]
        rec.run.counts[_RUNNING] -= 1
        return rec

    def _advance(self, branch: _Branch) -> None:
        """Move the branch cursor past succeeded jobs; the new head may become ready."""
        jobs = branch.jobs
        cursor = branch.cursor
        n = len(jobs)
        while cursor < n and jobs[cursor].state is _SUCCEEDED:
            cursor += 1
        branch.cursor = cursor
        if cursor < n:
            head = jobs[cursor]
            if head.state is _PENDING and head.unmet == 0 and not head.run.cancelled:
                head.run.ready[head] = None

    def _skip_downstream(self, failed: _Job, changes: list[Change]) -> None:
        """Skip the rest of the failed job's branch and, transitively, all that depends on it."""
        run = failed.run
        counts = run.counts
        ready = run.ready
        todo: deque[tuple[_Job, bool]] = deque([(failed, True)])

        def skip(rec: _Job, reason: str) -> None:
            rec.state = _SKIPPED
            rec.reason = reason
            counts[_PENDING] -= 1
            counts[_SKIPPED] += 1
            ready.pop(rec, None)
            changes.append(JobSkipped(rec.key, reason))

        while todo:
            cause, is_root = todo.popleft()
            what = "failed" if is_root else "was skipped"
            branch_jobs = cause.branch.jobs
            for i in range(cause.pos + 1, len(branch_jobs)):
                mate = branch_jobs[i]
                if mate.state is _SKIPPED:
                    break  # its own tail was (or will be) handled when it was skipped
                if mate.state is _PENDING:
                    skip(mate, f"{cause.branch.name}: {cause.job_id} {what}")
                    todo.append((mate, False))
            for dep in cause.dependents:
                if dep.state is _PENDING:
                    skip(dep, f"depends on {cause.job_id} which {what}")
                    todo.append((dep, False))

    def _cancel_pending(self, run: _Run, changes: list[Change]) -> None:
        run.cancelled = True
        run.ready.clear()
        n = 0
        for rec in run.jobs.values():
            if rec.state is _PENDING:
                rec.state = _CANCELLED
                n += 1
                changes.append(JobCancellation(rec.key))
        run.counts[_PENDING] -= n
        run.counts[_CANCELLED] += n

    def _finish(self, run: _Run, changes: list[Change]) -> None:
        counts = run.counts
        if counts[_CANCELLED]:
            status = RunStatus.CANCELLED
        elif counts[_FAILED] or counts[_SKIPPED]:
            status = RunStatus.FAILED
        else:
            status = RunStatus.SUCCEEDED
        run.status = status
        changes.append(RunFinished(run.run_id, status))
        logger.debug("run %s finished: %s", run.run_id, status)
        profile = run.profile
        open_runs = self._open_runs.get(profile)
        if open_runs is None or run not in open_runs:
            return  # finished inside submit: it never held a slot
        del open_runs[run]
        if open_runs:
            return
        del self._open_runs[profile]
        if profile in self._turn:
            self._active.remove(profile)
            del self._turn[profile]
            changes.append(ProfileReleased(profile))
            while self._queue and len(self._active) < self._max_active:
                self._activate(self._queue.popleft(), changes)
        else:
            # Cancelled while it waited: it leaves the queue without ever being active.
            self._queue.remove(profile)

    def _activate(self, profile: str, changes: list[Change]) -> None:
        self._active.append(profile)
        self._turn[profile] = None
        changes.append(ProfileActivated(profile))


def _check_acyclic(run: _Run) -> None:
    """Raise WorkflowError if branch order plus ``depends_on`` form a cycle (it would hang)."""
    cycle = find_cycle(run.workflow.graph(), run.workflow.rank())
    if cycle is None:
        return
    msg = (
        f"workflow {run.workflow.name!r}: jobs wait on each other in a cycle "
        f"({cycle_text(cycle)}); remove one depends_on or reorder the branch"
    )
    raise WorkflowError(msg, cycle=cycle)
