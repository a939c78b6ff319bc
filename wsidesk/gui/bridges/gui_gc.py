"""Python's cyclic garbage collector, run on the GUI thread only.

Left automatic, the collector runs in whichever thread allocates when a threshold is crossed, usually a
job's worker thread. When the garbage it finds holds a Qt object (a closed window's widgets in a
reference cycle), that object is destroyed on the worker thread: Qt's destructor locks the object's
connection mutex and waits for the GIL, while the GUI thread holds the GIL and waits for that mutex
destroying a neighbour (py-spy's native stacks of a hung test run). So the automatic collector is off
and a GUI-thread timer collects with the same generational thresholds (pyqtgraph's GarbageCollector
does this too). A full collection walks every live object (~0.1 s per 500,000 cells held by a running
job, the GUI frozen meanwhile), and CPython only runs one when long-lived objects grew by a quarter,
which Python cannot see: here it runs at most once per FULL_EVERY_S.
"""

from __future__ import annotations

import gc
import time

FULL_EVERY_S = 300.0


class GuiThreadCollector:
    """Collects on a QTimer of the thread that creates it (the GUI thread)."""

    def __init__(self, interval_s: float = 0.5) -> None:
        from PySide6.QtCore import QTimer

        self.thresholds = gc.get_threshold()
        self.last_full = time.monotonic()
        self.timer = QTimer()
        self.timer.setInterval(round(interval_s * 1000))
        self.timer.timeout.connect(self.check)
        gc.disable()
        self.timer.start()

    def check(self) -> None:
        gen0, gen1, gen2 = gc.get_count()
        if gen0 <= self.thresholds[0]:
            return
        if gen1 <= self.thresholds[1]:
            gc.collect(0)
        elif gen2 <= self.thresholds[2] or time.monotonic() - self.last_full < FULL_EVERY_S:
            gc.collect(1)
        else:
            gc.collect(2)
            self.last_full = time.monotonic()


_collector: GuiThreadCollector | None = None


def collect_on_gui_thread() -> GuiThreadCollector:
    """From now on, garbage cycles are collected on the calling (GUI) thread only; once per process."""
    global _collector  # noqa: PLW0603 - one collector per process, however many windows open
    if _collector is None:
        _collector = GuiThreadCollector()
    gc.disable()  # again, should anything have enabled it since
    return _collector
