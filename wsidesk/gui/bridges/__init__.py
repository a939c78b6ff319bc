"""Qt adapters over the core: the QThreadPool executor, the event bridge, garbage collection on the GUI thread."""

from wsidesk.gui.bridges.event_bridge import EventBridge
from wsidesk.gui.bridges.gui_gc import collect_on_gui_thread
from wsidesk.gui.bridges.qt_executor import QtExecutor

__all__ = ["EventBridge", "QtExecutor", "collect_on_gui_thread"]
