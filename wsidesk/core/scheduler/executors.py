"""Executors run job tasks on workers; the runner decides what runs when.

Every executor takes the same `JobTask` (jobs/task.py): local ones call `task.run()` on a thread of
this process, the Dask one ships `task.remote_spec()` to a worker. An executor calls
`done(result, error)` exactly once per submitted task, from any thread it likes (a worker thread
here; the GUI thread for the Qt executor), but never from inside `submit`: the runner submits while
holding its lock, and a completion must not re-enter dispatch midway.

`done` must never fail silently: every executor calls it through `deliver`, which hands an exception
raised by `done` itself to the callback's `fault` handler (the runner's `Completion` has one), so a
run can always end instead of waiting forever on a job whose completion got lost.

Which executor to build, and building it, is `executor_config.py` (`ExecutorConfig`, `make_executor`):
this module stays free of the backends, which import it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from wsidesk.core.jobs.task import JobTask

logger = logging.getLogger(__name__)

Done = Callable[[Any, BaseException | None], None]
ExecutorKind = Literal["local", "dask"]
EXECUTOR_KINDS: tuple[str, ...] = ("local", "dask")


@dataclass(frozen=True, slots=True)
class Completion:
    """A `done` callback with a `fault` handler for exceptions raised by the callback itself."""

    callback: Done
    fault: Callable[[BaseException], None]

    def __call__(self, result: Any, error: BaseException | None) -> None:
        self.callback(result, error)


def deliver(done: Done, result: Any, error: BaseException | None) -> None:
    """Call `done`; if it raises, pass that to its `fault` handler, else log it. Never raises."""
    try:
        done(result, error)
    except BaseException as exc:  # noqa: BLE001 - surfaced below, never lost
        fault = getattr(done, "fault", None)
        if fault is None:
            logger.critical("a job's completion callback failed", exc_info=exc)
            return
        try:
            fault(exc)
        except BaseException:  # noqa: BLE001 - the last resort: at least it is on stderr
            logger.critical("a job's completion callback failed, and so did its fault handler", exc_info=exc)


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
                deliver(done, None, exc)
            else:
                deliver(done, result, None)

        self._pool.submit(work)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
