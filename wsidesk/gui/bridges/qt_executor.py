"""QThreadPool executor: job tasks run on pool threads, `done` is delivered on the GUI thread."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from wsidesk.core.scheduler.executors import Done, deliver

if TYPE_CHECKING:
    from wsidesk.core.jobs.task import JobTask


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
        deliver(done, result, error)  # an exception in `done` reaches the runner, not Qt's excepthook


JOB_NICE = 10  # CPU priority of job threads, below the GUI thread's 0


def _yield_to_gui() -> None:
    """Lower this pool thread's CPU priority (per thread on Linux, inherited by threads it starts):
    with inference on every core, the GUI thread still gets one when it wakes up to paint."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICE)
        except OSError:  # not permitted here: jobs just run at normal priority
            pass


class _Task(QRunnable):
    def __init__(self, task: JobTask, done: Done, relay: _Relay) -> None:
        super().__init__()
        self._task = task
        self._done = done
        self._relay = relay

    def run(self) -> None:
        _yield_to_gui()
        try:
            result = self._task.run()
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
        """Submitted tasks whose `done` has not been delivered yet."""
        return self._relay.pending

    def submit(self, task: JobTask, done: Done) -> None:
        self._relay.pending += 1
        self._pool.start(_Task(task, done, self._relay))

    def shutdown(self, *, wait: bool = True) -> None:
        if not wait:
            self._pool.clear()
        self._pool.waitForDone()
