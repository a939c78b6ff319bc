"""The results workbench: table <-> slide selection, sorting, filtering, brushing, colours, classes, exports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QItemSelectionModel, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from wsidesk.core.cells.classes import ClassRule, load_rules
from wsidesk.core.cells.store import STORE_NAME, write_cell_store
from wsidesk.core.export.geojson import read_geojson, write_geojson
from wsidesk.core.segment.cells import Cell
from wsidesk.gui.results import ResultsWorkbench
from wsidesk.gui.results.colours import BY_CLASS, colormap_lut, lut_index

GRID = 20  # GRID x GRID cells
SPACING = 150.0


def make_cells() -> list[Cell]:
    rng = np.random.default_rng(7)
    cells = []
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    for k in range(GRID * GRID):
        cx, cy = 300.0 + SPACING * (k % GRID), 200.0 + SPACING * (k // GRID)
        r = 8.0 + (k % 7) * 2.0
        poly = np.column_stack([cx + r * np.cos(angles), cy + r * np.sin(angles)])
        area = float(np.pi * (r * 0.5) ** 2)
        cells.append(
            Cell(
                polygon=poly,
                centroid=(cx, cy),
                bbox=(cx - r, cy - r, cx + r, cy + r),
                tile=0,
                measurements={
                    "area_um2": area,
                    "perimeter_um": float(2 * np.pi * r * 0.5),
                    "hematoxylin_od_mean": float(rng.uniform(0.0, 1.0)),
                },
                id=k + 1,
            )
        )
    return cells


@pytest.fixture
def result(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "segment"
    folder.mkdir(parents=True)
    cells = make_cells()
    write_geojson(cells, folder / "cells.geojson")
    write_cell_store(cells, folder)
    return folder


SOURCE = make_cells()
AREA = np.array([c.measurements["area_um2"] for c in SOURCE])
HEMA = np.array([c.measurements["hematoxylin_od_mean"] for c in SOURCE])
IDS = np.array([c.id for c in SOURCE])


def test_open_result_fills_the_table_from_the_store(bench, result):
    messages = []
    bench.message.connect(messages.append)
    table = bench.open_result(result)
    model = bench.table.model
    assert table.note == ""
    assert "cell store" in messages[-1]
    assert model.rowCount() == GRID * GRID
    assert model.column_names[:3] == ["id", "x", "y"] and model.column_names[-1] == "class"
    col = model.column_names.index("area_um2")
    for row in (0, 17, 399):
        cell = int(model.rows[row])
        assert model.data(model.index(row, 0)) == str(IDS[cell])
        assert float(model.data(model.index(row, col))) == float(f"{AREA[cell]:.4g}")


def test_missing_or_damaged_store_falls_back_to_the_geojson_and_says_so(bench, result):
    messages = []
    bench.message.connect(messages.append)
    (result / STORE_NAME).write_bytes(b"not a store at all")
    table = bench.open_result(result)
    assert len(table) == GRID * GRID
    assert "GeoJSON" in messages[-1] and STORE_NAME in messages[-1]
    (result / STORE_NAME).unlink()
    bench.open_result(result)
    assert "no cell store" in messages[-1]
    assert bench.table.model.rowCount() == GRID * GRID


def test_sorting_a_column_orders_the_rows_by_its_values(bench, result):
    bench.open_result(result)
    model = bench.table.model
    col = model.column_names.index("hematoxylin_od_mean")
    bench.table.view.sortByColumn(col, Qt.SortOrder.DescendingOrder)
    shown = bench.results.values("hematoxylin_od_mean")[model.rows]
    assert np.array_equal(shown, np.sort(HEMA)[::-1])
    bench.table.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert np.array_equal(bench.results.values("id")[model.rows], np.sort(IDS))


def test_filter_expression_limits_table_and_slide_and_bad_ones_say_where(bench, result):
    bench.open_result(result)
    table = bench.table
    table.filter_edit.setText("area_um2 > 100 and hematoxylin_od_mean > 0.3")
    table.filter_edit.returnPressed.emit()
    expected = np.flatnonzero((AREA > 100) & (HEMA > 0.3))
    assert 0 < len(expected) < GRID * GRID
    assert np.array_equal(np.sort(table.model.rows), expected)
    assert np.array_equal(np.flatnonzero(bench.overlay._visible), expected)
    assert f"{len(expected):,} of 400" in table.count.text()
    table.filter_edit.setText("area_um2 >> 3")
    table.filter_edit.returnPressed.emit()
    assert not table.error.isHidden()
    assert "position" in table.error.text() and "hematoxylin_od_mean" in table.error.text()
    assert table.model.rowCount() == len(expected)  # the last good filter stays
    table.filter_edit.setText("aera_um2 > 3")
    table.filter_edit.returnPressed.emit()
    assert "aera_um2" in table.error.text() and "area_um2" in table.error.text()


def test_selecting_rows_selects_and_centres_the_cells_on_the_slide(bench, result, view):
    bench.open_result(result)
    tv = bench.table.view
    tv.selectionModel().select(
        bench.table.model.index(123, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    cell = int(bench.table.model.rows[123])
    assert bench.results.selection.tolist() == [cell]
    assert bench.overlay._selected[cell]
    centre = view.visible_scene_rect().center()
    x, y = SOURCE[cell].centroid
    tol = 1.5 / view.scale_factor()  # within a screen pixel or so
    assert abs(centre.x() - x) < tol and abs(centre.y() - y) < tol
    assert bench.table.current_label.text().endswith(f"id {IDS[cell]}")


def test_clicking_a_cell_on_the_slide_selects_its_row_and_shows_its_values(qtbot, bench, result, view):
    bench.open_result(result)
    view.set_scale_factor(1.0)
    cell = 57
    x, y = SOURCE[cell].centroid
    view.center_on(x, y)
    pos = view.map_from_level0(QPointF(x + 3, y + 2)).toPoint()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert bench.results.selection.tolist() == [cell]
    rows = {i.row() for i in bench.table.view.selectionModel().selectedRows()}
    assert rows == {int(bench.table.model.row_of(np.array([cell]))[0])}
    values = {
        bench.table.values.item(r, 0).text(): bench.table.values.item(r, 1).text()
        for r in range(bench.table.values.rowCount())
    }
    assert values["id"] == str(IDS[cell])
    assert float(values["area_um2"]) == float(f"{AREA[cell]:.4g}")
    # a click on glass clears the selection
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.map_from_level0(QPointF(x + 70, y)).toPoint())
    assert len(bench.results.selection) == 0


def _drag(view, start: QPointF, end: QPointF, modifier: Qt.KeyboardModifier, via: list[QPointF] = ()) -> None:
    vp = view.viewport()
    points = [start, *via, end]
    press = QMouseEvent(
        QEvent.Type.MouseButtonPress, start, start, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton, modifier
    )
    QApplication.sendEvent(vp, press)
    for p in points[1:]:
        move = QMouseEvent(QEvent.Type.MouseMove, p, p, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, modifier)
        QApplication.sendEvent(vp, move)
    release = QMouseEvent(
        QEvent.Type.MouseButtonRelease, end, end, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton, modifier
    )
    QApplication.sendEvent(vp, release)


def test_shift_drag_rectangle_and_ctrl_drag_lasso_select_the_cells_inside(bench, result, view):
    bench.open_result(result)
    view.set_scale_factor(0.25)
    view.center_on(1000, 800)
    a, b = QPointF(500, 300), QPointF(1300, 1000)  # level-0
    _drag(view, view.map_from_level0(a), view.map_from_level0(b), Qt.KeyboardModifier.ShiftModifier)
    cx = np.array([c.centroid[0] for c in SOURCE])
    cy = np.array([c.centroid[1] for c in SOURCE])
    inside = np.flatnonzero((cx >= a.x()) & (cx <= b.x()) & (cy >= a.y()) & (cy <= b.y()))
    assert len(inside) > 4
    assert np.array_equal(bench.results.selection, inside)
    assert len(bench.table.view.selectionModel().selectedRows()) == len(inside)
    # a triangle lasso: only centroids under the diagonal
    tri = [QPointF(500, 300), QPointF(1300, 1000), QPointF(500, 1000)]
    _drag(
        view,
        view.map_from_level0(tri[0]),
        view.map_from_level0(tri[2]),
        Qt.KeyboardModifier.ControlModifier,
        [view.map_from_level0(tri[1])],
    )
    under = inside[(cy[inside] - 300) / 700 > (cx[inside] - 500) / 800]
    assert 0 < len(bench.results.selection) < len(inside)
    assert set(bench.results.selection.tolist()) <= set(inside.tolist())
    assert set(under.tolist()) - set(bench.results.selection.tolist()) <= {
        int(i) for i in inside if abs((cy[i] - 300) / 700 - (cx[i] - 500) / 800) < 0.02
    }


def test_histogram_range_brushes_the_table_and_the_slide(qtbot, bench, result):
    bench.open_result(result)
    plots = bench.plots
    plots.column.setCurrentText("hematoxylin_od_mean")
    plots.show_range(0.2, 0.5)
    expected = np.flatnonzero((HEMA >= 0.2) & (HEMA <= 0.5))
    assert np.array_equal(np.sort(bench.table.model.rows), expected)
    assert np.array_equal(np.flatnonzero(bench.overlay._visible), expected)
    # brushing and the filter combine
    bench.results.set_filter("area_um2 > 100")
    assert np.array_equal(np.sort(bench.table.model.rows), np.flatnonzero((HEMA >= 0.2) & (HEMA <= 0.5) & (AREA > 100)))
    summary = {
        plots.summary.item(r, 0).text(): plots.summary.item(r, 1).text() for r in range(plots.summary.rowCount())
    }
    assert summary["all shown"] == f"{int(((HEMA >= 0.2) & (HEMA <= 0.5) & (AREA > 100)).sum()):,}"
    plots.clear_range.click()
    assert np.array_equal(np.sort(bench.table.model.rows), np.flatnonzero(AREA > 100))


def test_colour_by_measurement_uses_the_colormap_polygons_and_zoomed_out(bench, result, view, qtbot):
    bench.open_result(result)
    bench.colours.by.setCurrentText("area_um2")
    spec = bench.results.spec
    assert spec.by == "area_um2" and spec.lo < spec.hi
    keys = lut_index(AREA, spec.lo, spec.hi)
    assert np.array_equal(bench.results.colours.keys, keys)
    lut = colormap_lut(spec.colormap)
    # zoomed out, each bin holds one cell here: its pixel is the colour of that cell's value
    image = bench.overlay.density_image()
    b = bench.overlay._bin
    for cell in (0, 33, 250):
        x, y = SOURCE[cell].centroid
        px = image.pixelColor(int(x // b), int(y // b))
        alpha = px.alphaF()
        # premultiplied storage, read back un-premultiplied
        assert alpha > 0.3
        assert np.allclose([px.red(), px.green(), px.blue()], lut[keys[cell]], atol=3)
    assert "area_um2" in bench.colours.legend.pixmap().toImage().text() or bench.colours.legend.pixmap().width() == 240


def test_classes_apply_live_count_save_with_the_result_and_colour_the_cells(bench, result):
    bench.open_result(result)
    rules = [
        ClassRule("Big dark", "#c83232", "area_um2 > 100 and hematoxylin_od_mean > 0.5"),
        ClassRule("Big", "#3264c8", "area_um2 > 100"),
    ]
    bench.classes.set_rules(rules)
    big_dark = (AREA > 100) & (HEMA > 0.5)
    big = (AREA > 100) & ~big_dark
    counts = bench.results.class_counts()
    assert counts == {"": int((~(big_dark | big)).sum()), "Big dark": int(big_dark.sum()), "Big": int(big.sum())}
    assert bench.classes.rules_table.item(0, 3).text() == f"{int(big_dark.sum()):,}"
    assert load_rules(result / "classes.yaml") == rules
    bench.colours.by.setCurrentText(BY_CLASS)
    palette = bench.results.colours.palette
    keys = bench.results.colours.keys
    assert palette[keys[int(np.flatnonzero(big_dark)[0])]].name() == "#c83232"
    # a bad rule: error shown, classes kept
    bench.classes.rules_table.item(1, 2).setText("area_um2 >")
    assert bench.classes.apply() is False
    assert "Big" in bench.classes.error.text() and "position" in bench.classes.error.text()
    assert bench.results.class_counts()["Big"] == int(big.sum())
    # reopening applies the saved rules
    bench.open_result(result)
    assert bench.results.class_counts()["Big dark"] == int(big_dark.sum())
    assert bench.classes.rules_table.rowCount() == 2


def test_exports_write_the_source_numbers(bench, result, tmp_path):
    bench.open_result(result)
    bench.classes.set_rules([ClassRule("Big", "#3264c8", "area_um2 > 100")])
    bench.results.select(np.array([3, 10, 200]))
    out = bench.export("geojson_selected", tmp_path / "sel.geojson")
    cells = read_geojson(out)
    assert [c.id for c in cells] == [4, 11, 201]
    for c in cells:
        src = SOURCE[c.id - 1]
        assert abs(c.measurements["area_um2"] - src.measurements["area_um2"]) < 1e-6
        assert np.allclose(c.polygon, np.round(src.polygon, 2))
    features = json.loads(out.read_text())["features"]
    named = [(f["properties"].get("classification") or {}).get("name") for f in features]
    assert named == ["Big" if AREA[i] > 100 else None for i in (3, 10, 200)]
    assert any(named), "the selection includes a classified cell"
    bench.results.set_filter("hematoxylin_od_mean > 0.5")
    out = bench.export("csv_shown", tmp_path / "shown.csv")
    rows = list(csv.DictReader(out.open()))
    assert [int(r["id"]) for r in rows] == IDS[HEMA > 0.5].tolist()
    assert np.allclose([float(r["hematoxylin_od_mean"]) for r in rows], HEMA[HEMA > 0.5], atol=1e-6)
    assert {r["class"] for r in rows} <= {"Big", ""}
    out = bench.export("summary", tmp_path / "summary.csv")
    summary = list(csv.DictReader(out.open()))
    assert summary[0]["scope"] == "slide" and int(summary[0]["count"]) == GRID * GRID
    assert (
        float(summary[0]["area_um2_mean"]) == np.round(AREA.mean(), 6)
        or abs(float(summary[0]["area_um2_mean"]) - AREA.mean()) < 1e-5
    )
    png = bench.export("png", tmp_path / "view.png")
    assert png.stat().st_size > 1000


def test_view_state_is_kept_per_profile(qtbot, view, settings, result):
    first = ResultsWorkbench(view, settings, lambda: "alice", view)
    first.open_result(result)
    first.colours.by.setCurrentText("hematoxylin_od_mean")
    first.colours.opacity.setValue(40)
    again = ResultsWorkbench(view, settings, lambda: "alice", view)
    again.open_result(result)
    assert again.results.spec.by == "hematoxylin_od_mean"
    assert abs(again.results.spec.fill_opacity - 0.4) < 1e-9
    other = ResultsWorkbench(view, settings, lambda: "bob", view)
    other.open_result(result)
    assert other.results.spec.by == "single colour"
    for wb in (first, again, other):
        for panel in wb.panels():
            panel.deleteLater()


def test_sorting_keeps_the_selected_cells_selected(bench, result):
    bench.open_result(result)
    bench.results.select(np.array([5, 77]))
    model = bench.table.model
    bench.table.view.sortByColumn(model.column_names.index("hematoxylin_od_mean"), Qt.SortOrder.AscendingOrder)
    rows = sorted(i.row() for i in bench.table.view.selectionModel().selectedRows())
    assert sorted(model.rows[rows].tolist()) == [5, 77]


def test_closing_the_slide_or_a_new_job_clearing_the_layers_closes_the_result(bench, result, view):
    bench.open_result(result)
    bench.results.select(np.array([1]))
    view.close_slide()  # clears every layer, as LiveResults does when a new job starts
    assert bench.results.table is None
    assert bench.table.model.rowCount() == 0 and bench.overlay.cell_count == 0
    assert bench.table.count.text() == "0 of 0 cells"
    assert bench.plots.summary.rowCount() == 0
    bench.pick(10, 10)  # nothing to pick, nothing breaks
    assert len(bench.results.selection) == 0


def test_cell_exports_run_off_the_gui_thread_and_report_back(qtbot, bench, result, tmp_path, monkeypatch):
    import threading

    import wsidesk.gui.results.workbench as workbench_module

    warnings: list[str] = []
    monkeypatch.setattr(workbench_module.QMessageBox, "warning", lambda *a, **k: warnings.append(a[2]))
    threads: list[int] = []
    real_export = workbench_module.export_cells

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real_export(*args, **kwargs)

    monkeypatch.setattr(workbench_module, "export_cells", spy)
    bench.open_result(result)
    with qtbot.waitSignal(bench.export_finished, timeout=30_000) as done:
        bench.export_in_background("geojson_all", tmp_path / "all.geojson")
        assert not bench.export_button.isEnabled()  # one export at a time
    assert done.args == [str(tmp_path / "all.geojson"), ""]
    assert threads and threads[0] != threading.get_ident()
    assert bench.export_button.isEnabled() and not warnings
    cells = read_geojson(tmp_path / "all.geojson")
    assert [c.id for c in cells] == IDS.tolist()
    assert np.allclose([c.measurements["area_um2"] for c in cells], AREA)
    # Nothing selected: refused at once, said in a warning, nothing written.
    with qtbot.waitSignal(bench.export_finished, timeout=1_000) as refused:
        bench.export_in_background("geojson_selected", tmp_path / "sel.geojson")
    assert "no cells are selected" in refused.args[1] and warnings and not (tmp_path / "sel.geojson").exists()
    assert bench.export_button.isEnabled()
