"""Executors run job tasks on workers; the runner decides what runs when.

Every executor takes the same `JobTask` (jobs/task.py): local ones call `task.run()` on a thread of
this process, the Dask one ships `task.remote_spec()` to a worker. An executor calls
`done(result, error)` exactly once per submitted task, from any thread it likes (a worker thread
here; the GUI thread for the Qt executor), but never from inside `submit`: the runner submits while
holding its lock, and a completion must not re-enter dispatch midway.

Which executor to build, and building it, is `executor_config.py` (`ExecutorConfig`, `make_executor`):
this module stays free of the backends, which import it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from wsidesk.core.jobs.task import JobTask

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
