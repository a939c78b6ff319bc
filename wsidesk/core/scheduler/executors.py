"""Executors run job callables on workers; the runner decides what runs when.

An executor calls `done(result, error)` once per submitted callable, from any thread it likes
(a worker thread here; the GUI thread for the Qt executor), but never from inside `submit`: the
runner submits while holding its lock, and a completion must not re-enter dispatch midway.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

Done = Callable[[Any, BaseException | None], None]


class Executor(Protocol):
    max_workers: int

    def submit(self, fn: Callable[[], Any], done: Done) -> None: ...

    def shutdown(self, *, wait: bool = True) -> None: ...


class ThreadExecutor:
    """Headless executor over concurrent.futures.ThreadPoolExecutor."""

    def __init__(self, max_workers: int) -> None:
        if max_workers < 1:
            msg = f"workers must be at least 1, got {max_workers}"
            raise ValueError(msg)
        self.max_workers = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="wsidesk-job")

    def submit(self, fn: Callable[[], Any], done: Done) -> None:
        # Not Future.add_done_callback: on a future that already finished it calls back inline.
        def task() -> None:
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - reported to the runner, never lost
                done(None, exc)
            else:
                done(result, None)

        self._pool.submit(task)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
