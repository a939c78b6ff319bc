"""The runner drives planner + executor + store: it starts ready jobs, records what happens,
writes each run's events log and summary, and resumes interrupted runs.

All state changes happen under one lock; `done` callbacks may arrive on any thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from wsidesk.core.cache.gate import CacheGate, Prepared
from wsidesk.core.errors import ExecutorLost, JobCancelled, StoreError, WorkflowError, WsideskError
from wsidesk.core.events import Event, EventName, EventSink, event_name
from wsidesk.core.fileio import atomic_write, disk_full_message, is_disk_full
from wsidesk.core.jobs import JobFunction, JobHooks, JobSpec, JobTask
from wsidesk.core.scheduler.executors import Completion, Executor
from wsidesk.core.scheduler.planner import (
    JobCancellation,
    JobKey,
    JobSkipped,
    Planner,
    ProfileActivated,
    ProfileQueued,
    ProfileReleased,
    RunFinished,
)
from wsidesk.core.states import UNFINISHED_RUN_STATUSES, JobState, RunStatus
from wsidesk.core.store.db import RunRecord, Store, StoreCheckpoints
from wsidesk.core.store.eventlog import EventLog, write_json_atomic
from wsidesk.core.workflow.io import dump_workflow, loads_workflow
from wsidesk.core.workflow.model import Workflow

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _ActiveRun:
    record: RunRecord
    workflow: Workflow
    log: EventLog
    cancel: threading.Event = field(default_factory=threading.Event)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    out_of_space: bool = False  # a job failed on a full disk: the run is stored as resumable
    # Result cache: fingerprints of running jobs, and of finished jobs whose results are complete.
    fingerprints: dict[str, Prepared] = field(default_factory=dict)
    complete: dict[str, str] = field(default_factory=dict)


def _engine_facts(outputs: Mapping[str, str]) -> dict[str, Any] | None:
    """A segment job's engine.json (backend, device, precision, agreement, timings), None for other jobs."""
    path = outputs.get("engine")
    if not path:
        return None
    try:
        facts = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return facts if isinstance(facts, dict) else None


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def pid_alive(pid: int | None) -> bool:
    """Whether process `pid` exists (a run whose owner is alive is never taken over)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _path_text(path: Path) -> str:
    """The path as text that the store can hold: a name that is not UTF-8 keeps its bytes as escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def describe_error(error: BaseException) -> str:
    """A one-line reason for a user: our own errors speak for themselves, others get their type."""
    if isinstance(error, WsideskError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class Runner:
    """Runs workflows for any number of profiles on one executor."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        *,
        max_active_profiles: int = 3,
        sink: EventSink | None = None,
        job_functions: Mapping[str, JobFunction] | None = None,
    ) -> None:
        self._store = store
        self._executor = executor
        self._sink = sink
        self._job_functions = dict(job_functions or {})
        self._planner = Planner(workers=executor.max_workers, max_active_profiles=max_active_profiles)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._runs: dict[str, _ActiveRun] = {}
        self._finished: dict[str, RunStatus] = {}  # run_id -> final status
        self._interrupted = False
        self._executor_error: ExecutorLost | None = None
        self._write_errors: set[str] = set()  # store/log write failures already logged
        self._cache = CacheGate(store.layout.root / "cache")

    # -- submitting ---------------------------------------------------------------------------
    def submit(
        self,
        workflow: Workflow,
        *,
        profile: str,
        source: Path | None = None,
        source_text: str | None = None,
    ) -> str:
        """Start a run; an unfinished run of the same file and content whose process died is resumed."""
        text = source_text if source_text is not None else dump_workflow(workflow.with_absolute_paths())
        digest = hashlib.sha256(text.encode()).hexdigest()
        source_str = _path_text(source.resolve()) if source is not None else None
        if source_str is not None:
            previous = self._store.find_resumable(profile, source_str, digest)
            if previous is not None and not pid_alive(previous.owner_pid):
                if (previous.run_dir / "workflow.yaml").is_file():
                    logger.info("resuming run %s of %s", previous.run_id, source_str)
                    return self.resume(previous.run_id, profile=profile)
                self._mark_lost(previous, "starting a fresh run")
        run_id = new_run_id()
        run_dir = self._store.layout.run_dir(profile, run_id)
        # Folder and workflow copy first, the store row last: a run in the store always has both, and
        # a failure part-way leaves nothing behind that a later run would trip over.
        try:
            run_dir.mkdir(parents=True)
            with atomic_write(run_dir / "workflow.yaml") as f:
                f.write(text)
        except OSError as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise StoreError(self._io_message(f"cannot create the run folder {run_dir}", exc)) from exc
        try:
            record = self._store.create_run(
                run_id=run_id,
                profile=profile,
                workflow=workflow.name,
                jobs=[(job.job_id, branch.name) for branch, job in workflow.jobs()],
                source=source_str,
                source_sha256=digest,
                owner_pid=os.getpid(),
            )
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        self._start(record, workflow, done=(), resumed=False)
        return run_id

    def _mark_lost(self, record: RunRecord, then: str) -> None:
        logger.warning(
            "run %s of %r: its folder %s (or its workflow.yaml) is gone; marked lost (failed), %s",
            record.run_id,
            record.workflow,
            record.run_dir,
            then,
        )
        self._store.set_run_status(record.run_id, RunStatus.FAILED, owner_pid=None)

    def _io_message(self, what: str, exc: OSError) -> str:
        if is_disk_full(exc):
            return disk_full_message(self._store.layout.root)
        return f"{what}: {exc.strerror or exc}; make the data folder writable or pass another with --data-dir"

    def _describe(self, error: BaseException) -> str:
        if not isinstance(error, WsideskError) and is_disk_full(error):
            return disk_full_message(self._store.layout.root)
        return describe_error(error)

    def resume(self, run_id: str, *, profile: str) -> str:
        """Continue an interrupted run: succeeded jobs are kept, the rest run again."""
        record = self._store.get_run(profile, run_id)
        with self._lock:
            if run_id in self._runs:
                return run_id
        if record.status not in UNFINISHED_RUN_STATUSES:
            msg = f"run {run_id} already finished ({record.status}); submit the workflow again instead"
            raise WsideskError(msg)
        if not (record.run_dir / "workflow.yaml").is_file():
            self._mark_lost(record, "so it cannot be resumed")
            msg = (
                f"run {run_id} cannot be resumed: its folder {record.run_dir} (or its workflow.yaml) is gone; "
                f"run the workflow again"
            )
            raise StoreError(msg)
        owner = self._store.claim_run(run_id, os.getpid(), alive=pid_alive)
        if owner is not None:
            msg = (
                f"run {run_id} is still running in process {owner}; wait for it to finish, or stop it "
                f"(Ctrl-C) and then resume it"
            )
            raise WsideskError(msg)
        workflow = self._run_workflow(record)
        done = [j.job_id for j in self._store.jobs(run_id) if j.state == JobState.SUCCEEDED]
        self._reopen(record, [j.job_id for _, j in workflow.jobs() if j.job_id not in done])
        self._start(self._store.get_run(profile, run_id), workflow, done=done, resumed=True)
        return run_id

    def retry_branch(self, run_id: str, branch: str, *, profile: str) -> str:
        """Run a finished run's branch again from its first unsuccessful job; the rest is kept."""
        record = self._store.get_run(profile, run_id)
        with self._lock:
            if run_id in self._runs:
                msg = f"run {run_id} is still running; wait for it or cancel it before retrying"
                raise WsideskError(msg)
        workflow = self._run_workflow(record)
        target = next((b for b in workflow.branches if b.name == branch), None)
        if target is None:
            msg = f"run {run_id} has no branch {branch!r}"
            raise WsideskError(msg)
        states = {j.job_id: j.state for j in self._store.jobs(run_id)}
        own = {job.job_id for job in target.jobs}
        retry = [job.job_id for job in target.jobs if states[job.job_id] != JobState.SUCCEEDED]
        if not retry:
            msg = f"branch {branch!r} of run {run_id} has nothing to retry: every job succeeded"
            raise WsideskError(msg)
        for job in target.jobs:
            for dep in job.depends_on:
                if dep not in own and states[dep] != JobState.SUCCEEDED:
                    msg = (
                        f"job {job.job_id} depends on {dep} ({states[dep]}); "
                        f"retry branch {workflow.branch_of(dep)!r} first"
                    )
                    raise WsideskError(msg)
        # Only this branch is planned; its cross-branch dependencies already succeeded.
        jobs = tuple(replace(job, depends_on=tuple(d for d in job.depends_on if d in own)) for job in target.jobs)
        subset = replace(workflow, branches=(replace(target, jobs=jobs),))
        self._reopen(record, retry)
        done = [job_id for job_id in own if job_id not in retry]
        self._start(self._store.get_run(profile, run_id), subset, done=done, resumed=True)
        return run_id

    def _run_workflow(self, record: RunRecord) -> Workflow:
        copy = record.run_dir / "workflow.yaml"
        try:
            text = copy.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"cannot read run {record.run_id}'s copy of its workflow {copy}: {exc}; run the workflow again"
            raise StoreError(msg) from exc
        try:
            # Relative image paths stay relative to the original YAML file.
            return loads_workflow(text, file=record.source or copy)
        except WorkflowError as exc:
            # The message names the original file, but what failed is the run's own copy of it.
            problem = str(exc).replace(record.source, str(copy)) if record.source else str(exc)
            msg = (
                f"run {record.run_id}'s own copy of its workflow, {copy}, is invalid: {problem} "
                f"(the copy is what a resume runs; run the workflow file again instead)"
            )
            raise WorkflowError(msg, file=str(copy), job_id=exc.job_id) from exc

    def _reopen(self, record: RunRecord, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self._store.set_job_state(record.run_id, job_id, JobState.PENDING)
        self._store.set_run_status(record.run_id, RunStatus.RUNNING, owner_pid=os.getpid())

    def _start(self, record: RunRecord, workflow: Workflow, *, done: Iterable[str], resumed: bool) -> None:
        with self._lock:
            self._interrupted = False
            run = _ActiveRun(record, workflow, EventLog(record.run_dir / "events.jsonl"))
            for job in self._store.jobs(record.run_id):
                if job.state == JobState.SUCCEEDED:
                    run.outputs[job.job_id] = dict(job.outputs)
            run.complete.update(self._cache.complete_fingerprints(record.run_id))
            self._runs[record.run_id] = run
            self._planner.forget(record.run_id)  # a resumed or retried run starts over in the planner
            fields: dict[str, Any] = {"resumed": resumed, "done": len(run.outputs)}
            if record.source is not None:  # lets `wsidesk store rebuild` find "the same command" again
                fields["source"] = record.source
            self._emit(run, EventName.RUN_SUBMITTED, fields=fields)
            self._apply(self._planner.submit(record.run_id, record.profile, workflow, done=done))
            self._dispatch()

    # -- control ------------------------------------------------------------------------------
    def cancel_run(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.cancel.set()
                self._apply(self._planner.cancel_run(run_id))

    def cancel_profile(self, profile: str) -> None:
        with self._lock:
            for run in list(self._runs.values()):
                if run.record.profile == profile:
                    run.cancel.set()
            self._apply(self._planner.cancel_profile(profile))

    def interrupt(self) -> None:
        """Stop dispatching; running jobs stop at their next safe point; runs become resumable."""
        with self._lock:
            self._interrupted = True
            for run_id in list(self._runs):
                self._runs[run_id].cancel.set()
                self._apply(self._planner.cancel_run(run_id))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no run is active; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._runs, timeout)

    @property
    def executor_error(self) -> ExecutorLost | None:
        """Why the executor went away (runs were interrupted because of it), else None."""
        with self._lock:
            return self._executor_error

    def is_idle(self) -> bool:
        with self._lock:
            return not self._runs

    def run_status(self, run_id: str) -> RunStatus | None:
        with self._lock:
            return self._finished.get(run_id)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._planner.snapshot()

    # -- dispatch and completion ------------------------------------------------------------------
    def _dispatch(self) -> None:
        if self._interrupted:
            return
        while ready := self._planner.ready():
            for key in ready:
                self._apply(self._planner.started(key))
                try:
                    self._launch(key)
                except Exception as exc:  # noqa: BLE001 - e.g. disk full: the job fails, the run goes on
                    self._fail(key, exc)

    def _launch(self, key: JobKey) -> None:
        run = self._runs[key.run_id]
        workflow = run.workflow
        job = workflow.job(key.job_id)
        branch = workflow.branch_of(key.job_id)
        spec = JobSpec(
            run_id=key.run_id,
            profile=run.record.profile,
            workflow=workflow,
            branch=branch,
            job=job,
            params=workflow.job_params(job),
            image=workflow.image_path(job),
            out_dir=run.record.run_dir / job.job_id,
            inputs={dep: run.outputs.get(dep, {}) for dep in job.depends_on},
            models_dir=self._store.layout.models_dir,
            function=self._job_functions.get(job.type),
        )
        prepared = self._cache.prepare(spec, {dep: run.complete.get(dep) for dep in job.depends_on})
        if (reused := self._cache.reuse(spec, prepared)) is not None:
            self._store.set_job_state(key.run_id, key.job_id, JobState.RUNNING)
            self._store.set_job_state(
                key.run_id, key.job_id, JobState.SUCCEEDED, outputs=reused.outputs, slide=spec.image
            )
            run.outputs[key.job_id] = reused.outputs
            run.complete[key.job_id] = reused.fingerprint
            fields = {
                "source_run": reused.source_run,
                "source_job": reused.source_job,
                "fingerprint": reused.fingerprint,
            }
            self._emit(run, EventName.JOB_REUSED, job_id=key.job_id, branch=branch, fields=fields)
            self._emit(
                run, EventName.JOB_SUCCEEDED, job_id=key.job_id, branch=branch, fields={"outputs": reused.outputs}
            )
            self._apply(self._planner.succeeded(key))
            return
        run.fingerprints[key.job_id] = prepared
        self._store.set_job_state(key.run_id, key.job_id, JobState.RUNNING)
        self._emit(run, EventName.JOB_STARTED, job_id=key.job_id, branch=branch)
        hooks = JobHooks(
            emit=partial(self._emit_from_job, run, branch, key.job_id),
            is_cancelled=run.cancel.is_set,
            checkpoints=StoreCheckpoints(self._store, key.run_id, key.job_id),
        )
        done = Completion(partial(self._on_done, key, spec), partial(self._on_fault, key))
        self._executor.submit(JobTask(spec, hooks), done)

    def _fail(self, key: JobKey, error: BaseException) -> None:
        """Record a running job as failed and tell the planner. Never raises for the store's sake."""
        run = self._runs[key.run_id]
        reason = self._describe(error)
        run.out_of_space |= reason.startswith("disk full:")
        if not isinstance(error, WsideskError) and not is_disk_full(error):
            logger.error("job %s crashed", key.job_id, exc_info=error)
        self._record(self._store.set_job_state, key.run_id, key.job_id, JobState.FAILED, error=reason)
        branch = run.workflow.branch_of(key.job_id)
        self._emit(run, EventName.JOB_FAILED, job_id=key.job_id, branch=branch, fields={"error": reason})
        self._apply(self._planner.failed(key, reason))

    def _record(self, write: Any, *args: Any, **kwargs: Any) -> bool:
        """A store write whose failure must not stop the run from ending (it is logged once per reason)."""
        try:
            try:
                write(*args, **kwargs)
            except Exception as exc:
                if not (self._describe(exc).startswith("disk full:") and self._store.release_reserve()):
                    raise
                write(*args, **kwargs)  # once more, in the space set aside for this
        except Exception as exc:  # noqa: BLE001 - StoreError (disk full...) or anything else: logged
            text = self._describe(exc)
            if text not in self._write_errors:
                self._write_errors.add(text)
                logger.error("%s", text)
            return False
        return True

    def _on_fault(self, key: JobKey, exc: BaseException) -> None:
        """`_on_done` itself raised: end the job (or, failing that, its run) so nobody waits forever."""
        logger.critical("recording the end of job %s failed", key.job_id, exc_info=exc)
        with self._lock:
            run = self._runs.get(key.run_id)
            if run is None:
                return
            try:
                self._apply(self._planner.failed(key, self._describe(exc)))
                self._dispatch()
            except Exception:  # noqa: BLE001 - the planner lost track too: end the run here
                logger.exception("run %s is ended as failed", key.run_id)
                self._planner.forget(key.run_id)
                if key.run_id in self._runs:
                    self._finish(run, RunStatus.FAILED)
            self._changed.notify_all()

    def _on_done(self, key: JobKey, spec: JobSpec, result: Any, error: BaseException | None) -> None:
        with self._lock:
            run = self._runs.get(key.run_id)
            if run is None:
                logger.warning("job %s of run %s reported back after its run ended", key.job_id, key.run_id)
                return
            branch = run.workflow.branch_of(key.job_id)
            if error is None:
                outputs = {str(k): str(v) for k, v in dict(result or {}).items()}
                try:
                    self._store.set_job_state(
                        key.run_id,
                        key.job_id,
                        JobState.SUCCEEDED,
                        outputs=outputs,
                        slide=run.workflow.image_path(run.workflow.job(key.job_id)),
                    )
                except Exception as exc:  # noqa: BLE001 - its success cannot be recorded: it failed
                    error = exc
                else:
                    run.outputs[key.job_id] = outputs
                    prepared = run.fingerprints.pop(key.job_id, None)
                    if prepared and prepared.fingerprint and self._cache.finished(spec, prepared.fingerprint, outputs):
                        run.complete[key.job_id] = prepared.fingerprint.digest
                    self._emit(
                        run, EventName.JOB_SUCCEEDED, job_id=key.job_id, branch=branch, fields={"outputs": outputs}
                    )
                    self._apply(self._planner.succeeded(key))
            if error is None:
                pass
            elif isinstance(error, ExecutorLost):
                # Nothing more can run here: every run stops as interrupted, to be resumed later.
                if self._executor_error is None:
                    self._executor_error = error
                    logger.error("%s", error)
                if not self._interrupted:
                    self.interrupt()
                self._apply(self._planner.cancelled(key))  # its JobCancellation records the job
            elif isinstance(error, JobCancelled) or (run.cancel.is_set() and not isinstance(error, WsideskError)):
                self._apply(self._planner.cancelled(key))
            else:
                self._fail(key, error)
            self._dispatch()
            self._changed.notify_all()

    def _apply(self, changes: Iterable[object]) -> None:
        finished: list[tuple[_ActiveRun, RunStatus]] = []
        for change in changes:
            match change:
                case ProfileQueued(profile=profile, position=position):
                    self._emit_profile(profile, EventName.PROFILE_QUEUED, {"position": position})
                case ProfileActivated(profile=profile):
                    self._emit_profile(profile, EventName.PROFILE_ACTIVATED, {})
                case ProfileReleased(profile=profile):
                    self._emit_profile(profile, EventName.PROFILE_RELEASED, {})
                case JobSkipped(key=key, reason=reason):
                    run = self._runs[key.run_id]
                    self._record(self._store.set_job_state, key.run_id, key.job_id, JobState.SKIPPED, error=reason)
                    self._emit(
                        run,
                        EventName.JOB_SKIPPED,
                        job_id=key.job_id,
                        branch=run.workflow.branch_of(key.job_id),
                        fields={"reason": reason},
                    )
                case JobCancellation(key=key):
                    run = self._runs[key.run_id]
                    # An interrupted job runs again on resume; a cancelled one does not.
                    self._record(
                        self._store.set_job_state,
                        key.run_id,
                        key.job_id,
                        JobState.PENDING if self._interrupted else JobState.CANCELLED,
                    )
                    self._emit(
                        run,
                        EventName.JOB_CANCELLED,
                        job_id=key.job_id,
                        branch=run.workflow.branch_of(key.job_id),
                        fields={"reason": "interrupted" if self._interrupted else "cancelled"},
                    )
                case RunFinished(run_id=run_id, status=status):
                    if self._interrupted and status is RunStatus.CANCELLED:
                        status = RunStatus.INTERRUPTED
                    finished.append((self._runs[run_id], status))
        # Close runs only after every change is logged: profile events of this batch belong to them.
        for run, status in finished:
            self._finish(run, status)

    def _finish(self, run: _ActiveRun, status: RunStatus) -> None:
        """End a run: store, log and summary are best effort (a full disk must not keep it open)."""
        run_id = run.record.run_id
        try:
            if status in (RunStatus.SUCCEEDED, RunStatus.FAILED):  # a retried branch is only part of its run
                states = {job.state for job in self._store.jobs(run_id)}
                if states & {JobState.FAILED, JobState.SKIPPED}:
                    status = RunStatus.FAILED
                elif JobState.CANCELLED in states:
                    status = RunStatus.CANCELLED
            stored = status
            if run.out_of_space and status == RunStatus.FAILED:
                stored = RunStatus.INTERRUPTED  # after space is freed, the same command resumes it
                logger.warning("run %s is saved as interrupted: free space and run the same command again", run_id)
            if not self._record(self._store.set_run_status, run_id, stored, owner_pid=None) and status in (
                RunStatus.SUCCEEDED,
                RunStatus.CANCELLED,
            ):
                status = RunStatus.FAILED  # the store does not know: say so rather than claim success
            self._emit(run, EventName.RUN_FINISHED, fields={"status": status})
            self._record(self._write_summary, run)
        except Exception:  # noqa: BLE001 - reading the store failed: the run still ends
            logger.exception("run %s: recording its end failed", run_id)
        finally:
            run.log.close()
            del self._runs[run_id]
            self._finished[run_id] = status
            self._changed.notify_all()

    def _write_summary(self, run: _ActiveRun) -> None:
        write_json_atomic(run.record.run_dir / "summary.json", self.summary(run.record.profile, run.record.run_id))

    def summary(self, profile: str, run_id: str) -> dict[str, Any]:
        record = self._store.get_run(profile, run_id)
        with self._lock:
            # How it ended, even when the store could not record it (disk full).
            status = self._finished.get(run_id, record.status)
        provenance = self._cache.provenance(run_id)
        return {
            "run_id": run_id,
            "profile": record.profile,
            "workflow": record.workflow,
            "status": status,
            "started": record.created,
            "finished": record.finished,
            "run_dir": str(record.run_dir),
            "jobs": {
                job.job_id: {
                    "branch": job.branch,
                    "state": job.state,
                    "started": job.started,
                    "finished": job.finished,
                    "error": job.error,
                    "outputs": dict(job.outputs),
                    "provenance": provenance.get(job.job_id),
                    "engine": _engine_facts(job.outputs),
                }
                for job in self._store.jobs(run_id)
            },
        }

    # -- events -------------------------------------------------------------------------------
    def _emit(
        self,
        run: _ActiveRun,
        name: EventName,
        *,
        job_id: str | None = None,
        branch: str | None = None,
        fields: Mapping[str, Any] | None = None,
        payload: Any = None,
    ) -> None:
        event = Event(
            name,
            run.record.run_id,
            run.record.profile,
            run.workflow.name,
            branch=branch,
            job_id=job_id,
            fields=fields or {},
            payload=payload,
        )
        self._record(run.log.write, event)
        if self._sink is not None:
            try:
                self._sink(event)
            except Exception:  # a broken display must never break a run
                logger.exception("event sink failed on %s", name)

    def _emit_from_job(
        self, run: _ActiveRun, branch: str, job_id: str, name: str, fields: Mapping[str, Any], payload: Any = None
    ) -> None:
        self._emit(run, event_name(name), job_id=job_id, branch=branch, fields=fields, payload=payload)

    def _emit_profile(self, profile: str, name: EventName, fields: Mapping[str, Any]) -> None:
        for run in self._runs.values():
            if run.record.profile == profile:
                self._emit(run, name, fields=fields)
