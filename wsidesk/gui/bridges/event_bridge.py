"""The one bridge from core events (any thread) to Qt signals (GUI thread)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from wsidesk.core.events import Event


class EventBridge(QObject):
    """Callable EventSink: core code calls it from worker threads; slots run queued on the GUI thread."""

    event_received = Signal(object)  # wsidesk.core.events.Event

    def __call__(self, event: Event) -> None:
        self.event_received.emit(event)
