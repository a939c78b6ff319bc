"""A shown 800x600 SlideView, closed after the test (its loader threads joined)."""

from __future__ import annotations

import pytest

from wsidesk.gui.viewer import SlideView


@pytest.fixture
def view(qtbot):
    v = SlideView(loader_threads=2)
    qtbot.addWidget(v)
    v.resize(800, 600)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.close()
