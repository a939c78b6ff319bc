"""Executors run job tasks on workers; the runner decides what runs when.

Every executor takes the same `JobTask` (jobs/task.py): local ones call `task.run()` on a thread of
this process, the Dask one ships `task.remote_spec()` to a worker. An executor calls
`done(result, error)` exactly once per submitted task, from any thread it likes (a worker thread
here; the GUI thread for the Qt executor), but never from inside `submit`: the runner submits while
holding its lock, and a completion must not re-enter dispatch midway.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from wsidesk.core.jobs.task import JobTask
    from wsidesk.core.scheduler.cluster import ClusterConfig

Done = Callable[[Any, BaseException | None], None]
ExecutorKind = Literal["local", "dask"]
EXECUTOR_KINDS: tuple[str, ...] = ("local", "dask")


class Executor(Protocol):
    max_workers: int

    def submit(self, task: JobTask, done: Done) -> None: ...

    def shutdown(self, *, wait: bool = True) -> None: ...


class ThreadExecutor:
    """Headless executor over concurrent.futures.ThreadPoolExecutor."""

    def __init__(self, max_workers: int) -> None:
        if max_workers < 1:
            msg = f"workers must be at least 1, got {max_workers}"
            raise ValueError(msg)
        self.max_workers = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="wsidesk-job")

    def submit(self, task: JobTask, done: Done) -> None:
        # Not Future.add_done_callback: on a future that already finished it calls back inline.
        def work() -> None:
            try:
                result = task.run()
            except BaseException as exc:  # noqa: BLE001 - reported to the runner, never lost
                done(None, exc)
            else:
                done(result, None)

        self._pool.submit(work)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def make_executor(
    kind: str,
    *,
    workers: int | None,
    cluster: ClusterConfig | None = None,
    scheduler_address: str | None = None,
    event_payloads: bool = True,
) -> Executor:
    """The executor the settings ask for: the CLI and the GUI settings both build theirs here.

    `local`: a thread pool of `workers` (required). `dask`: a client of the scheduler at
    `scheduler_address` (else the one in `cluster`), or of a LocalCluster on 127.0.0.1 with
    `workers` single-threaded worker processes when neither names one; `workers` then caps the jobs
    the planner starts (None: the cluster's thread count). `event_payloads=False`: events come back
    without their in-memory payloads (cell polygons), for callers that show no live overlay.
    """
    if kind == "local":
        if workers is None:
            msg = "the local executor needs a number of workers"
            raise ValueError(msg)
        return ThreadExecutor(workers)
    if kind == "dask":
        from wsidesk.core.scheduler.cluster import ClusterConfig
        from wsidesk.core.scheduler.dask_executor import DaskExecutor

        config = cluster or ClusterConfig()
        return DaskExecutor.connect(
            scheduler_address or config.scheduler_address,
            security=config.security(),
            timeout=config.timeout,
            max_workers=workers,
            payloads=event_payloads,
        )
    msg = f"unknown executor {kind!r}; use one of {', '.join(EXECUTOR_KINDS)}"
    raise ValueError(msg)
