"""Garbage cycles holding Qt objects are freed on the GUI thread, never on a job's thread."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtCore import QObject

from wsidesk.app import build_main_window, shutdown


def test_a_qt_object_in_a_cycle_is_collected_on_the_gui_thread_not_where_python_allocates(qtbot, tmp_path):
    win = build_main_window(tmp_path / "data")
    qtbot.addWidget(win)
    try:
        assert not gc.isenabled()
        freed_on: list[threading.Thread] = []
        node = QObject()
        node.me = node  # a cycle: only the cyclic collector frees it
        weakref.finalize(node, lambda: freed_on.append(threading.current_thread()))
        del node
        # Enough container allocations on another thread to cross every automatic collection threshold.
        worker = threading.Thread(target=lambda: [[] for _ in range(50_000)])
        worker.start()
        worker.join()
        assert freed_on == []
        qtbot.waitUntil(lambda: bool(freed_on), timeout=5000)
        assert freed_on == [threading.main_thread()]
    finally:
        win.close()
        shutdown(win)
