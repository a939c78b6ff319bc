"""A job task: what one job needs, split into a part that can travel and hooks that cannot.

`JobSpec` is plain picklable data (a Dask worker in another process or on another machine gets
it); `JobHooks` are the client's closures (the run's events log, its cancel flag, its tile
checkpoints in the SQLite store). Every executor runs the same `JobTask`: local executors call
`task.run()` in-process with the hooks as they are; the Dask executor ships `task.remote_spec()`
and hands a worker-side context whose hooks travel back as messages (see dask_executor.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsidesk.core.jobs.context import Emit, JobContext, JobFunction, TileCheckpoints

if TYPE_CHECKING:  # jobs are declared before workflows, which validate against them
    from wsidesk.core.workflow.model import Job, Workflow

TileStates = Mapping[int, tuple[str, str | None]]  # tile index -> (state, detail)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a worker needs to run one job; no closures, no open files, no locks."""

    run_id: str
    profile: str
    workflow: Workflow
    branch: str
    job: Job
    params: Mapping[str, Any]
    image: Path | None
    out_dir: Path
    inputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    models_dir: Path | None = None
    # Tile checkpoints as the store had them when the job was shipped; None: ask the hooks.
    checkpoints: TileStates | None = None
    # A job function chosen by the caller (tests, plugins); None: the one for `job.type`.
    function: JobFunction | None = None

    def context(self, *, emit: Emit, is_cancelled: Callable[[], bool], checkpoints: TileCheckpoints) -> JobContext:
        return JobContext(
            run_id=self.run_id,
            profile=self.profile,
            workflow=self.workflow,
            branch=self.branch,
            job=self.job,
            params=self.params,
            image=self.image,
            out_dir=self.out_dir,
            inputs=self.inputs,
            emit=emit,
            is_cancelled=is_cancelled,
            checkpoints=checkpoints,
            models_dir=self.models_dir,
        )


@dataclass(frozen=True, slots=True)
class JobHooks:
    """The client's side of a job: where its events, cancel flag and tile checkpoints live."""

    emit: Emit
    is_cancelled: Callable[[], bool]
    checkpoints: TileCheckpoints


@dataclass(frozen=True, slots=True)
class JobTask:
    """The one unit of work every executor runs: a spec plus the client's hooks."""

    spec: JobSpec
    hooks: JobHooks

    @property
    def job_id(self) -> str:
        return self.spec.job.job_id

    def run(self) -> dict[str, str]:
        """Run here, in this process, talking to the hooks directly."""
        hooks = self.hooks
        ctx = self.spec.context(emit=hooks.emit, is_cancelled=hooks.is_cancelled, checkpoints=hooks.checkpoints)
        return run_job(self.spec, ctx)

    def remote_spec(self) -> JobSpec:
        """The spec to ship elsewhere, with the tile checkpoints the store holds right now."""
        return replace(self.spec, checkpoints=dict(self.hooks.checkpoints.load()))


def run_job(spec: JobSpec, ctx: JobContext) -> dict[str, str]:
    """Run one job wherever `ctx` was built: the client (local executors) or a Dask worker."""
    from wsidesk.core.jobs import job_function  # the package imports this module

    spec.out_dir.mkdir(parents=True, exist_ok=True)
    function = spec.function or job_function(spec.job.type)
    return function(ctx)


class ForwardingCheckpoints:
    """Tile checkpoints on a worker: start from the shipped states, send each save to the client."""

    def __init__(self, states: TileStates | None, send: Callable[[list[tuple[int, str, str | None]]], None]) -> None:
        self._states: dict[int, tuple[str, str | None]] = dict(states or {})
        self._send = send

    def load(self) -> dict[int, tuple[str, str | None]]:
        return dict(self._states)

    def save(self, states: Any) -> None:
        batch = [(int(i), str(s), None if d is None else str(d)) for i, s, d in states]
        self._states.update({i: (s, d) for i, s, d in batch})
        self._send(batch)
