"""The workbench's docks show only while a result is open, and come back where the user put them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow, QTabBar

from wsidesk.core.cells.store import write_cell_store
from wsidesk.core.export.geojson import write_geojson
from wsidesk.core.segment.cells import Cell
from wsidesk.gui.results import ResultsWorkbench
from wsidesk.gui.viewer import SlideView


@pytest.fixture
def result(tmp_path: Path) -> Path:
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    cells = []
    for k in range(5):
        cx, cy = 200.0 + 60 * k, 300.0
        poly = np.column_stack([cx + 10 * np.cos(angles), cy + 10 * np.sin(angles)])
        bbox = (cx - 10, cy - 10, cx + 10, cy + 10)
        cells.append(Cell(poly, (cx, cy), bbox, tile=0, measurements={"area_um2": 70.0 + k}, id=k + 1))
    folder = tmp_path / "run" / "segment"
    folder.mkdir(parents=True)
    write_geojson(cells, folder / "cells.geojson")
    write_cell_store(cells, folder)
    return folder


def test_docks_hide_until_a_result_opens_and_keep_the_users_layout(qtbot, settings, result, demo_slide):
    window = QMainWindow()
    qtbot.addWidget(window)
    view = SlideView(loader_threads=1)
    window.setCentralWidget(view)
    view.open_slide(demo_slide.path)
    bench = ResultsWorkbench(view, settings, lambda: "alice", window)
    docks = bench.add_docks(window)
    window.show()
    qtbot.waitExposed(window)
    assert not any(d.isVisible() for d in docks)  # empty panels would only puzzle

    bench.open_result(result)
    assert all(d.isVisible() for d in docks)
    plots = docks[3]
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, plots)  # the user moves the plots left
    state = window.saveState()

    view.close_slide()  # the result closes with its slide
    assert not any(d.isVisible() for d in docks)

    # A window state saved with the docks shown does not show them before a result is open...
    window.restoreState(state)
    bench.update_docks()
    assert not any(d.isVisible() for d in docks)
    # ...and the next result brings them back where the user put them.
    view.open_slide(demo_slide.path)
    bench.open_result(result)
    assert all(d.isVisible() for d in docks)
    assert window.dockWidgetArea(plots) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert window.dockWidgetArea(docks[0]) == Qt.DockWidgetArea.BottomDockWidgetArea

    def group_back() -> bool:
        bars = [b for b in window.findChildren(QTabBar) if b.isVisible() and b.count() == 2]
        return any({b.tabText(0), b.tabText(1)} == {"Cell colours", "Classes"} for b in bars)

    qtbot.waitUntil(group_back, timeout=2_000)  # the colour and class docks are tabbed again
    view.shutdown()
