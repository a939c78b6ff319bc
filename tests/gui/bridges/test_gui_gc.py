"""Garbage cycles holding Qt objects are freed on the GUI thread, never on a job's thread."""

from __future__ import annotations

import gc
import threading
import time
import weakref

from PySide6.QtCore import QObject

from wsidesk.app import build_main_window, shutdown
from wsidesk.gui.bridges.gui_gc import FULL_EVERY_S, collect_on_gui_thread


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
        kept = [[] for _ in range(2000)]  # past the first threshold (the worker's lists are gone again)
        qtbot.waitUntil(lambda: bool(freed_on), timeout=5000)
        assert len(kept) == 2000
        assert freed_on == [threading.main_thread()]
    finally:
        win.close()
        shutdown(win)


def test_full_collections_run_at_most_once_per_period_however_much_is_allocated(qtbot):
    collector = collect_on_gui_thread()
    full: list[float] = []

    def count_full(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(time.monotonic())

    kept: list[list[list[int]]] = []

    def allocate_and_check(times: int) -> None:
        for _ in range(times):  # each round is past the first threshold, rounds add up past the others
            kept.append([[] for _ in range(1000)])
            collector.check()

    gc.callbacks.append(count_full)
    try:
        collector.last_full = time.monotonic()  # as if one had just run
        allocate_and_check(300)
        assert full == []
        collector.last_full -= FULL_EVERY_S
        allocate_and_check(300)
        assert len(full) == 1
    finally:
        gc.callbacks.remove(count_full)
