"""A results workbench on a shown SlideView with the session demo slide open."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from wsidesk.gui.results import ResultsWorkbench
from wsidesk.gui.viewer import SlideView


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def view(qtbot, demo_slide):
    v = SlideView(loader_threads=1)
    qtbot.addWidget(v)
    v.resize(800, 600)
    v.show()
    qtbot.waitExposed(v)
    v.open_slide(demo_slide.path)
    yield v
    v.close()


@pytest.fixture
def bench(qtbot, view, settings) -> ResultsWorkbench:
    wb = ResultsWorkbench(view, settings, lambda: "alice", view)
    for panel in wb.panels():
        qtbot.addWidget(panel)
    return wb
