"""Drawing, editing, undo and saving regions on the slide view (pytest-qt, offscreen)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from wsidesk.core.annotations import Annotation, AnnotationError, AnnotationStore, write_annotations
from wsidesk.core.slide.reader import ArrayReader
from wsidesk.gui.annotations_panel import AnnotationsPanel

W, H = 2000, 1500


@pytest.fixture
def panel(qtbot, view, tmp_path: Path) -> AnnotationsPanel:
    p = AnnotationsPanel(view, lambda: tmp_path / "profiles" / "default")
    qtbot.addWidget(p)
    image = np.full((H, W, 3), 235, dtype=np.uint8)
    view.set_reader(ArrayReader(image, path=str(tmp_path / "s.svs")))
    view.zoom_to_fit()
    return p


def at(view, x: float, y: float) -> QPoint:
    return view.map_from_level0(QPointF(x, y)).toPoint()


def drag(view, points: list[tuple[float, float]]) -> None:
    vp = view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(view, *points[0]))
    for x, y in points[1:]:
        QTest.mouseMove(vp, at(view, x, y))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(view, *points[-1]))


def only(panel: AnnotationsPanel) -> Annotation:
    (a,) = panel.model.annotations()
    return a


def test_rectangle_is_drawn_undone_redone_and_saved_for_the_slide(panel, view, tmp_path: Path) -> None:
    panel.tool.set_tool("rectangle")
    drag(view, [(200, 300), (500, 500), (800, 700)])
    a = only(panel)
    x0, y0, x1, y1 = a.geometry.bounds
    assert (x0, y0, x1, y1) == pytest.approx((200, 300, 800, 700), abs=3)  # one screen px is 2.5 level-0 px
    assert panel.tool.tool == "select" and panel.model.selected == a.id
    assert panel.list.count() == 1 and panel.list.item(0).text() == "Region 1"
    panel.undo_action.trigger()
    assert panel.model.annotations() == [] and panel.list.count() == 0
    panel.redo_action.trigger()
    assert only(panel).id == a.id
    panel.flush()
    saved = AnnotationStore(tmp_path / "profiles" / "default").load(tmp_path / "s.svs")
    assert [s.id for s in saved] == [a.id]


def test_ellipse_and_polygon_tools(panel, view) -> None:
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_E)  # QuPath's key for the ellipse tool
    assert panel.tool.tool == "ellipse" and panel.tool_buttons.checkedButton().objectName() == "tool_ellipse"
    drag(view, [(100, 100), (500, 300)])
    ellipse = panel.model.annotations()[0].geometry
    assert ellipse.area == pytest.approx(np.pi * 200 * 100, rel=0.02)
    panel.tool.set_tool("polygon")
    vp = view.viewport()
    for x, y in [(1000, 200), (1400, 200), (1400, 600)]:
        QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(view, x, y))
    QTest.mouseMove(vp, at(view, 1000, 600))
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(view, 1000, 600))
    QTest.mouseDClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(view, 1000, 600))
    polygon = panel.model.annotations()[1].geometry
    assert len(polygon.exterior.coords) == 5  # four vertices, closed
    assert polygon.area == pytest.approx(400 * 400, rel=0.03)


def test_self_intersecting_freehand_is_repaired_with_a_note(panel, view, qtbot) -> None:
    panel.tool.set_tool("freehand")
    figure_eight = [(300, 300), (700, 700), (700, 300), (300, 700), (300, 310)]
    with qtbot.waitSignal(panel.message) as note:
        drag(view, figure_eight)
    assert "make_valid" in note.args[0]
    a = only(panel)
    assert a.geometry.is_valid and a.geometry.area > 50_000


def test_regions_outside_the_slide_or_without_area_are_refused(panel, view, qtbot) -> None:
    panel.tool.set_tool("rectangle")
    with qtbot.waitSignal(panel.message) as refused:
        drag(view, [(-700, -600), (-300, -300)])
    assert "outside the slide" in refused.args[0]
    panel.tool.set_tool("rectangle")
    with qtbot.waitSignal(panel.message) as refused:
        drag(view, [(400, 400), (400, 400)])
    assert "zero area" in refused.args[0]
    assert panel.model.annotations() == []


def test_move_and_vertex_edit_are_undoable(panel, view) -> None:
    panel.tool.set_tool("rectangle")
    drag(view, [(200, 200), (600, 600)])
    before = only(panel).geometry
    drag(view, [(400, 400), (500, 450), (600, 500)])  # inside: moves it by (200, 100)
    moved = only(panel).geometry
    assert moved.bounds == pytest.approx((400, 300, 800, 700), abs=3)
    drag(view, [moved.bounds[2:], (1000, 900)])  # the bottom-right vertex handle
    edited = only(panel).geometry
    assert edited.bounds[2:] == pytest.approx((1000, 900), abs=3) and edited.area > moved.area
    panel.undo_action.trigger()
    assert shapely.equals(only(panel).geometry, moved)
    panel.undo_action.trigger()
    assert shapely.equals(only(panel).geometry, before)


def test_delete_rename_and_recolour(panel, view, qtbot) -> None:
    panel.tool.set_tool("rectangle")
    drag(view, [(200, 200), (600, 600)])
    a = only(panel)
    panel.list.item(0).setText("Tumour")
    assert only(panel).name == "Tumour"
    panel.model.replace(only(panel).recoloured((1, 2, 3)), "Recolour")
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_Delete)
    assert panel.model.annotations() == []
    panel.undo_action.trigger()
    restored = only(panel)
    assert (restored.id, restored.name, restored.color) == (a.id, "Tumour", (1, 2, 3))
    panel.undo_action.trigger()
    panel.undo_action.trigger()
    assert only(panel).name == "Region 1"
    with qtbot.waitSignal(panel.segment_requested) as asked:
        panel.segment_button.click()
    assert asked.args[0] == ["Region 1"]


def test_regions_are_saved_when_the_slide_closes_and_come_back_when_it_opens(panel, view, tmp_path: Path) -> None:
    panel.tool.set_tool("rectangle")
    drag(view, [(200, 200), (600, 600)])
    a = only(panel)
    reader = view.reader
    view.close_slide()  # saves at once
    assert panel.model.annotations() == []
    image = np.full((H, W, 3), 235, dtype=np.uint8)
    view.set_reader(ArrayReader(image, path=reader.path))
    assert only(panel).id == a.id
    assert panel.model.undo_stack.count() == 0  # opening a slide is not an edit


def test_import_and_export_qupath_geojson(panel, view, tmp_path: Path) -> None:
    holed = shapely.Polygon([(0, 0), (900, 0), (900, 900), (0, 900)], holes=[[(300, 300), (600, 300), (600, 600)]])
    source = write_annotations(
        [Annotation("T", holed, properties={"classification": {"name": "Tumor", "color": [200, 0, 0]}})],
        tmp_path / "in.geojson",
    )
    assert panel.import_geojson(source) == 1
    out = json.loads(panel.export_geojson(tmp_path / "out.geojson").read_text())
    feature = out["features"][0]
    assert feature["properties"]["classification"]["name"] == "Tumor"
    assert len(feature["geometry"]["coordinates"]) == 2  # exterior and hole
    panel.undo_action.trigger()  # an import is one step
    assert panel.model.annotations() == []
    cells = tmp_path / "cells.geojson"
    cells.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [out["features"][0] | {"properties": {"objectType": "detection"}}],
            }
        )
    )
    with pytest.raises(AnnotationError, match="found 1 detection"):
        panel.import_geojson(cells)
