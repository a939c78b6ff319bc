"""Status bar magnification and µm position, +/- zoom without focus, and the slide metadata panel."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt

from wsidesk.core.slide import open_slide
from wsidesk.gui.slide_info import SlideInfoPanel
from wsidesk.gui.status_text import magnification_text, position_text


@pytest.fixture
def window(qtbot, tmp_path, open_window, demo_slide):
    win = open_window(workers=1)
    qtbot.waitExposed(win)
    slide = tmp_path / "slide.svs"
    shutil.copy(demo_slide.path, slide)
    assert win.open_slide(str(slide))
    return win


def test_texts():
    assert magnification_text(0.5, 20.0) == "10× (zoom 50.0%)"
    assert magnification_text(0.1, 40.0) == "4.0× (zoom 10.0%)"
    assert magnification_text(0.5, None) == "zoom 50.0%"
    assert position_text(100, 2000, 0.5) == "x 50.0 µm  y 1,000.0 µm  (100, 2,000 px)"
    assert position_text(100, 2000, None) == "x, y 100, 2,000 px"


def test_status_bar_shows_magnification_and_cursor_in_micrometres(window):
    window.viewer.set_scale_factor(1.0)
    assert window.zoom_label.text().startswith("20×")  # the demo slide was scanned at 20×
    window.viewer.set_scale_factor(0.25)
    assert window.zoom_label.text().startswith("5.0×")
    window.viewer.cursor_moved.emit(1000.0, 500.0)
    assert "500.0 µm" in window.cursor_label.text() and "250.0 µm" in window.cursor_label.text()


def test_plus_and_minus_zoom_without_clicking_the_viewer(qtbot, window):
    window.library.setFocus()
    window.activateWindow()
    qtbot.waitUntil(lambda: window.library.hasFocus() or window.isActiveWindow(), timeout=2000)
    assert not window.viewer.hasFocus()
    before = window.viewer.scale_factor()
    qtbot.keyClick(window.library, Qt.Key.Key_Plus)
    assert window.viewer.scale_factor() == pytest.approx(before * 1.5)
    qtbot.keyClick(window.library, Qt.Key.Key_Minus)
    assert window.viewer.scale_factor() == pytest.approx(before)
    window.tabs.setCurrentWidget(window.editor)  # on the Workflow tab they zoom the graph instead
    graph = window.editor.view.zoom()
    qtbot.keyClick(window.library, Qt.Key.Key_Plus)
    assert window.editor.view.zoom() > graph
    assert window.viewer.scale_factor() == pytest.approx(before)


def test_metadata_panel_shows_what_the_slide_file_says(qtbot, demo_slide):
    panel = SlideInfoPanel()
    qtbot.addWidget(panel)
    reader = open_slide(demo_slide.path)
    try:
        panel.set_reader(reader)
        fields = {name: label.text() for name, label in panel.fields.items()}
        w, h = reader.dimensions
        assert fields["Vendor"] == "aperio"
        assert fields["Dimensions"].startswith(f"{w:,} × {h:,} px")
        assert fields["Pixel size"] == "0.5 µm/px"
        assert fields["Objective"] == "20×"
        assert fields["Levels"] == str(len(reader.level_dimensions))
        assert panel.levels.topLevelItemCount() == len(reader.level_dimensions)
        assert panel.levels.topLevelItem(1).text(2) == f"{reader.level_downsamples[1]:.4g}"
        thumb = panel.findChild(type(panel.fields["File"]), "associated_thumbnail")
        assert thumb is not None and not thumb.pixmap().isNull()
        assert panel.properties.topLevelItemCount() == len(reader.properties)
    finally:
        reader.close()
    panel.set_reader(None)
    assert panel.fields["File"].text() == "no slide open"
