"""QThreadPool executor: jobs run on pool threads, `done` is delivered on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from wsidesk.core.scheduler.executors import Done


class _Relay(QObject):
    """Lives on the GUI thread. Pool threads emit `finished`; Qt queues the call to `_on_finished`."""

    finished = Signal(object, object, object)  # done, result, error

    def __init__(self) -> None:
        super().__init__()
        self.pending = 0
        self.finished.connect(self._on_finished)

    @Slot(object, object, object)
    def _on_finished(self, done: Done, result: Any, error: BaseException | None) -> None:
        self.pending -= 1
        done(result, error)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], done: Done, relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._done = done
        self._relay = relay

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the runner, never lost
            self._relay.finished.emit(self._done, None, exc)
        else:
            self._relay.finished.emit(self._done, result, None)


class QtExecutor:
    """Executor over a private QThreadPool; create and use it on the GUI thread."""

    def __init__(self, max_workers: int) -> None:
        if max_workers < 1:
            msg = f"workers must be at least 1, got {max_workers}"
            raise ValueError(msg)
        self.max_workers = max_workers
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(max_workers)
        self._relay = _Relay()

    @property
    def pending(self) -> int:
        """Submitted callables whose `done` has not been delivered yet."""
        return self._relay.pending

    def submit(self, fn: Callable[[], Any], done: Done) -> None:
        self._relay.pending += 1
        self._pool.start(_Task(fn, done, self._relay))

    def shutdown(self, *, wait: bool = True) -> None:
        if not wait:
            self._pool.clear()
        self._pool.waitForDone()
