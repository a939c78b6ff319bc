"""Python's cyclic garbage collector, run on the GUI thread only.

Left automatic, the collector runs in whichever thread allocates when a threshold is crossed, usually a
job's worker thread. When the garbage it finds holds a Qt object (a closed window's widgets in a
reference cycle), that object is destroyed on the worker thread: Qt's destructor locks the object's
connection mutex and waits for the GIL, while the GUI thread holds the GIL and waits for that mutex
destroying a neighbour (py-spy's native stacks of a hung test run). pyqtgraph's collector disables the
automatic one and runs the same generational thresholds from a GUI-thread timer instead.
"""

from __future__ import annotations

import gc

_collector: object | None = None


def collect_on_gui_thread(interval_s: float = 0.5) -> None:
    """From now on, garbage cycles are collected every `interval_s` on the calling (GUI) thread; once per process."""
    global _collector  # noqa: PLW0603 - one collector per process, however many windows open
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=interval_s)
    gc.disable()  # again, should anything have enabled it since
