"""Qt adapters over the core: the QThreadPool executor and the event bridge."""

from wsidesk.gui.bridges.event_bridge import EventBridge
from wsidesk.gui.bridges.qt_executor import QtExecutor

__all__ = ["EventBridge", "QtExecutor"]
