"""GraphEditor: palette, canvas drags, refusals, undo/redo, inspector and YAML round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QComboBox, QToolButton

from wsidesk.core.errors import WorkflowError
from wsidesk.core.workflow import load_workflow
from wsidesk.gui.graph_editor import GraphEditor
from wsidesk.gui.graph_editor.items import STATE_COLOURS, EdgeItem
from wsidesk.gui.graph_editor.model import LANE_PITCH, NODE_W, lane_node_y

EXAMPLE = """\
name: Cell Segmentation Pipeline
defaults: {tile_size: 512}
layout: {job1: [0, 27], job2: [300, 27], job3: [0, 171], job4: [320, 171]}
dag:
  branch_A:
    - {job_id: job1, type: segment, image: slides/a.svs}
    - {job_id: job2, type: segment, image: slides/b.svs, params: {batch_size: 8}}
  branch_B:
    - {job_id: job3, type: tissue, image: slides/c.svs}
    - {job_id: job4, type: export, depends_on: [job1, job3], params: {format: geojson}}
"""


@pytest.fixture
def example(tmp_path: Path) -> Path:
    (tmp_path / "slides").mkdir()
    for name in ("a.svs", "b.svs", "c.svs"):
        (tmp_path / "slides" / name).write_bytes(b"not really a slide")
    path = tmp_path / "wf.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    return path


@pytest.fixture
def editor(qtbot) -> GraphEditor:
    widget = GraphEditor()
    qtbot.addWidget(widget)
    widget.resize(1200, 600)
    return widget


@pytest.fixture
def loaded(editor: GraphEditor, example: Path) -> GraphEditor:
    editor.load_workflow(example)
    return editor


def dep_edges(editor: GraphEditor) -> list[EdgeItem]:
    return [e for e in editor.scene.edges.values() if not e.fifo]


def test_palette_actions_add_branches_and_jobs(editor: GraphEditor) -> None:
    editor.new_workflow()
    editor.add_job_actions["segment"].trigger()
    editor.add_branch_action.trigger()  # becomes the current branch
    editor.add_job_actions["tissue"].trigger()
    editor.add_job_actions["export"].trigger()
    wf = editor.to_workflow()
    assert [b.name for b in wf.branches] == ["branch_1", "branch_2"]
    assert [j.job_id for j in wf.branches[0].jobs] == ["segment1"]
    assert [(j.job_id, j.type) for j in wf.branches[1].jobs] == [("tissue1", "tissue"), ("export1", "export")]
    assert len(editor.scene.nodes) == 3
    assert len(editor.scene.lanes) == 2
    # Jobs of a lane sit on it, left to right in FIFO order.
    t, e = editor.node_item("tissue1").pos(), editor.node_item("export1").pos()
    assert t.y() == e.y() == lane_node_y(1)
    assert e.x() >= t.x() + NODE_W
    assert editor.is_modified


def test_dragging_from_an_output_port_connects_jobs(loaded: GraphEditor, qtbot) -> None:
    loaded.show()
    qtbot.waitExposed(loaded)
    view = loaded.view
    start = view.mapFromScene(loaded.node_item("job2").output_port.scenePos())
    end = view.mapFromScene(loaded.node_item("job4").input_port.scenePos())
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), pos=(start + end) / 2)
    qtbot.mouseMove(view.viewport(), pos=end)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert loaded.to_workflow().job("job4").depends_on == ("job1", "job3", "job2")
    assert len(dep_edges(loaded)) == 3
    loaded.undo_stack.undo()
    assert loaded.to_workflow().job("job4").depends_on == ("job1", "job3")


def test_connection_that_makes_a_cycle_is_refused_with_a_reason(loaded: GraphEditor, qtbot) -> None:
    before = loaded.to_workflow()
    count = loaded.undo_stack.count()
    # job1 -> job4 (depends_on) already; job4 -> job1 would close a cycle.
    with qtbot.waitSignal(loaded.edit_refused) as blocker:
        assert not loaded.connect_jobs("job4", "job1")
    assert "cycle" in blocker.args[0]
    assert "job1" in blocker.args[0] and "job4" in blocker.args[0]
    assert "cycle" in loaded.message_text()
    assert loaded.undo_stack.count() == count
    assert loaded.to_workflow() == before
    assert not loaded.is_modified


def test_cycle_through_fifo_order_is_refused(loaded: GraphEditor) -> None:
    # job3 -> job4 is FIFO order in branch_B, so job3 waiting for job4 is a cycle too.
    assert not loaded.connect_jobs("job4", "job3")
    # And job2 comes after job1 in branch_A: job1 cannot wait for job2.
    assert not loaded.connect_jobs("job2", "job1")
    assert loaded.undo_stack.count() == 0


def test_self_edges_and_duplicates_are_refused(loaded: GraphEditor) -> None:
    assert not loaded.connect_jobs("job1", "job1")
    assert "itself" in loaded.message_text()
    assert not loaded.connect_jobs("job1", "job4")
    assert "already" in loaded.message_text()
    assert loaded.undo_stack.count() == 0


def test_undo_and_redo_add_move_connect_and_param(loaded: GraphEditor) -> None:
    original = loaded.to_workflow()
    loaded.set_current_branch("branch_A")
    new = loaded.add_job("tissue", image="slides/a.svs")
    assert loaded.move_job("job2", 700, lane_node_y(0))
    assert loaded.connect_jobs("job2", "job4")
    assert loaded.set_job_param("job1", "tile_size", 1024)
    edited = loaded.to_workflow()
    assert edited.job(new).type == "tissue"
    assert edited.layout["job2"] == (700, lane_node_y(0))
    # Moving job2 right of the new job reorders branch_A.
    assert [j.job_id for j in edited.branches[0].jobs] == ["job1", new, "job2"]
    assert "job2" in edited.job("job4").depends_on
    assert edited.job("job1").params["tile_size"] == 1024
    shown = loaded.node_item("job2").pos()
    assert shown.x() >= loaded.node_item(new).pos().x() + NODE_W  # pushed right, no overlap

    for _ in range(4):
        loaded.undo_stack.undo()
    assert loaded.to_workflow() == original
    assert not loaded.is_modified
    for _ in range(4):
        loaded.undo_stack.redo()
    assert loaded.to_workflow() == edited
    assert loaded.node_item("job2").pos() == shown


def test_keyboard_shortcuts_undo_and_redo(loaded: GraphEditor, qtbot) -> None:
    with qtbot.waitActive(loaded):
        loaded.show()
        loaded.activateWindow()
    loaded.view.setFocus()
    assert loaded.set_job_param("job1", "padding", 40)
    qtbot.keyClick(loaded.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "padding" not in loaded.to_workflow().job("job1").params
    qtbot.keyClick(loaded.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert loaded.to_workflow().job("job1").params["padding"] == 40


def test_moving_a_node_to_another_lane_changes_its_branch(loaded: GraphEditor) -> None:
    assert loaded.move_job("job2", 700, LANE_PITCH + 20)
    wf = loaded.to_workflow()
    assert [j.job_id for j in wf.branches[1].jobs] == ["job3", "job4", "job2"]
    assert loaded.node_item("job2").pos().y() == lane_node_y(1)
    loaded.undo_stack.undo()
    assert [j.job_id for j in loaded.to_workflow().branches[0].jobs] == ["job1", "job2"]


def test_a_move_that_reorders_into_a_cycle_snaps_back(loaded: GraphEditor) -> None:
    # job4 depends on job3; moving job3 after job4 in branch_B would make job4 run first.
    before = loaded.to_workflow()
    assert not loaded.move_job("job3", 600, lane_node_y(1))
    assert "cycle" in loaded.message_text()
    assert loaded.to_workflow() == before
    assert loaded.node_item("job3").pos().x() == 0
    assert loaded.undo_stack.count() == 0


def test_del_key_deletes_selected_nodes_and_edges(loaded: GraphEditor, qtbot) -> None:
    loaded.show()
    qtbot.waitExposed(loaded)
    loaded.select_job("job3")
    edge = next(e for e in dep_edges(loaded) if e.source.job_id == "job1")
    edge.setSelected(True)
    loaded.view.setFocus()
    qtbot.keyClick(loaded.view, Qt.Key.Key_Delete)
    wf = loaded.to_workflow()
    assert [j.job_id for j in wf.branches[1].jobs] == ["job4"]
    assert wf.job("job4").depends_on == ()
    assert len(loaded.scene.nodes) == 3
    assert dep_edges(loaded) == []
    loaded.undo_stack.undo()
    assert loaded.to_workflow().job("job4").depends_on == ("job1", "job3")
    assert len(dep_edges(loaded)) == 2


def test_loading_an_example_shows_its_nodes_edges_and_lanes(loaded: GraphEditor) -> None:
    assert len(loaded.scene.nodes) == 4
    assert len(dep_edges(loaded)) == 2
    assert sum(e.fifo for e in loaded.scene.edges.values()) == 2
    assert [lane.name for lane in loaded.scene.lanes] == ["branch_A", "branch_B"]
    assert loaded.node_item("job4").pos() == QPointF(320, 171)
    assert loaded.node_item("job4").subtitle == "exports 2 jobs"
    assert loaded.node_item("job1").problems == []
    assert not loaded.is_modified
    assert "ready to run" in loaded.status_label.text()


def test_save_then_load_gives_an_equal_workflow(loaded: GraphEditor, example: Path) -> None:
    original = load_workflow(example)
    out = example.with_name("copy.yaml")
    loaded.save(out)
    assert load_workflow(out) == original
    assert load_workflow(out).layout == original.layout

    loaded.move_job("job3", 40, lane_node_y(1))
    assert loaded.is_modified
    loaded.save(out)
    assert not loaded.is_modified
    assert load_workflow(out).layout["job3"] == (40, lane_node_y(1))
    assert load_workflow(out) == loaded.to_workflow()


def test_saving_elsewhere_keeps_images_pointing_at_the_same_files(loaded: GraphEditor, example: Path) -> None:
    sub = example.parent / "elsewhere"
    sub.mkdir()
    loaded.save(sub / "wf.yaml")
    wf = load_workflow(sub / "wf.yaml")  # checks that the images exist
    assert wf.job("job1").image == "../slides/a.svs"


def test_saving_an_invalid_workflow_raises_and_stays_modified(editor: GraphEditor, tmp_path: Path) -> None:
    editor.new_workflow()
    editor.add_job("export")
    with pytest.raises(WorkflowError, match="depends_on"):
        editor.save(tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()
    assert editor.is_modified


def test_inspector_edits_a_param_through_its_widget(loaded: GraphEditor) -> None:
    loaded.select_job("job2")
    inspector = loaded.inspector
    assert inspector.job_id_edit.text() == "job2"
    row = inspector.param_rows["tile_size"]
    assert not row.checkbox.isChecked()
    assert row.widget.value() == 512  # inherited from the workflow defaults
    row.checkbox.setChecked(True)
    row.widget.setValue(256)
    assert loaded.to_workflow().job("job2").params == {"batch_size": 8, "tile_size": 256}
    assert not inspector.param_rows["format"].checkbox.isVisible()
    # Unticking unsets it again; both edits are undoable.
    inspector.param_rows["batch_size"].checkbox.setChecked(False)
    assert loaded.to_workflow().job("job2").params == {"tile_size": 256}
    loaded.undo_stack.undo()
    assert loaded.to_workflow().job("job2").params == {"batch_size": 8, "tile_size": 256}
    loaded.undo_stack.undo()  # ticking and setting tile_size merged into one entry
    assert loaded.to_workflow().job("job2").params == {"batch_size": 8}


def test_inspector_spin_box_steps_merge_into_one_undo_entry(loaded: GraphEditor) -> None:
    loaded.select_job("job2")
    spin = loaded.inspector.param_rows["batch_size"].widget
    for value in (9, 10, 11):
        spin.setValue(value)
    assert loaded.to_workflow().job("job2").params["batch_size"] == 11
    assert loaded.undo_stack.count() == 1
    loaded.undo_stack.undo()
    assert loaded.to_workflow().job("job2").params["batch_size"] == 8


def test_inspector_export_format_uses_a_combo(loaded: GraphEditor) -> None:
    loaded.select_job("job4")
    combo = loaded.inspector.param_rows["format"].widget
    assert combo.currentText() == "geojson"
    combo.setCurrentText("csv")
    assert loaded.to_workflow().job("job4").params["format"] == "csv"
    assert not loaded.inspector.image_edit.isEnabled()


def test_inspector_segment_precision_uses_a_combo_of_engine_precisions(loaded: GraphEditor) -> None:
    loaded.select_job("job1")
    row = loaded.inspector.param_rows["precision"]
    assert [row.widget.itemText(i) for i in range(row.widget.count())] == ["auto", "fp32", "bf16", "fp16"]
    row.checkbox.setChecked(True)
    row.widget.setCurrentText("bf16")
    assert loaded.to_workflow().job("job1").params["precision"] == "bf16"


def test_inspector_widgets_come_from_the_registry(loaded: GraphEditor, tmp_path: Path) -> None:
    from wsidesk.core.jobs.registry import JOB_TYPES

    loaded.select_job("job1")  # a segment job
    rows = loaded.inspector.param_rows
    shown = [name for name, row in rows.items() if not row.checkbox.isHidden()]
    assert shown == [s.name for s in JOB_TYPES["segment"].params.specs()]
    assert rows["target_mpp"].widget.text() == "the model's"  # decided at run time, and says so
    assert rows["min_cell_area"].widget.suffix() == " µm²"
    assert rows["tile_size"].widget.maximum() == 16384
    # The model: a known name from the list, or a file chosen with the picker.
    model = rows["model"]
    names = model.widget.findChild(QComboBox)
    assert [names.itemText(i) for i in range(names.count())] == list(JOB_TYPES["segment"].spec("model").names)
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"w")
    model.choose_file = lambda: str(weights)
    model.checkbox.setChecked(True)  # ticked, it starts at the inherited default
    assert loaded.to_workflow().job("job1").params["model"] == "brightfield_nuclei"
    model.widget.findChild(QToolButton).click()
    assert loaded.to_workflow().job("job1").params["model"] == str(weights)
    loaded.select_job("job3")  # a tissue job plans at 0.5 µm/px unless told
    assert rows["target_mpp"].widget.value() == 0.5 and rows["target_mpp"].widget.specialValueText() == ""


@pytest.mark.parametrize("bad", ["bad id!", "", "a/b", "..", "JOB1"])
def test_inspector_rejects_invalid_job_ids(loaded: GraphEditor, bad: str) -> None:
    loaded.select_job("job2")
    edit = loaded.inspector.job_id_edit
    edit.setText(bad)
    edit.textEdited.emit(bad)
    assert edit.property("invalid")
    edit.editingFinished.emit()
    assert [j.job_id for _, j in loaded.to_workflow().jobs()] == ["job1", "job2", "job3", "job4"]
    assert edit.property("invalid")
    assert "#d32f2f" in edit.styleSheet()
    assert loaded.undo_stack.count() == 0


def test_inspector_renames_a_job_and_keeps_its_edges(loaded: GraphEditor) -> None:
    loaded.select_job("job1")
    edit = loaded.inspector.job_id_edit
    edit.setText("seg_a.1")
    edit.editingFinished.emit()
    wf = loaded.to_workflow()
    assert wf.job("job4").depends_on == ("seg_a.1", "job3")
    assert wf.layout["seg_a.1"] == (0, 27)
    assert loaded.selected_job_ids() == ["seg_a.1"]


def test_inspector_image_browse_stores_a_relative_path(loaded: GraphEditor, example: Path, monkeypatch) -> None:
    loaded.select_job("job1")
    picked = example.parent / "slides" / "c.svs"
    monkeypatch.setattr(loaded.inspector, "choose_image_file", lambda: str(picked))
    loaded.inspector.browse_button.click()
    assert loaded.to_workflow().job("job1").image == "slides/c.svs"
    # An empty image is refused for a segment job.
    loaded.inspector.image_edit.setText("")
    loaded.inspector.image_edit.editingFinished.emit()
    assert loaded.to_workflow().job("job1").image == "slides/c.svs"
    assert loaded.inspector.image_edit.property("invalid")


def test_changing_type_to_export_drops_image_and_foreign_params(loaded: GraphEditor) -> None:
    loaded.select_job("job2")
    loaded.inspector.type_combo.setCurrentText("export")
    job = loaded.to_workflow().job("job2")
    assert (job.type, job.image, dict(job.params)) == ("export", None, {})
    assert loaded.node_item("job2").problems == ["connect the jobs to export"]
    loaded.undo_stack.undo()
    assert loaded.to_workflow().job("job2").image == "slides/b.svs"


def test_inspector_edits_workflow_name_and_defaults(loaded: GraphEditor) -> None:
    loaded.select_job(None)
    inspector = loaded.inspector
    assert inspector.stack.currentIndex() == 0
    inspector.name_edit.setText("")
    inspector.name_edit.editingFinished.emit()
    assert loaded.to_workflow().name == "Cell Segmentation Pipeline"
    assert inspector.name_edit.property("invalid")
    inspector.name_edit.setText("Renamed")
    inspector.name_edit.editingFinished.emit()
    assert loaded.to_workflow().name == "Renamed"
    inspector.default_rows["device"].checkbox.setChecked(True)
    inspector.default_rows["device"].widget.setCurrentText("cuda")
    assert dict(loaded.to_workflow().defaults) == {"tile_size": 512, "device": "cuda"}


def test_branches_rename_and_remove_are_undoable(loaded: GraphEditor) -> None:
    assert loaded.rename_branch("branch_B", "tissue_then_export")
    assert not loaded.rename_branch("branch_A", "tissue_then_export")  # taken
    assert loaded.remove_branch("branch_A")
    wf = loaded.to_workflow()
    assert [b.name for b in wf.branches] == ["tissue_then_export"]
    assert wf.job("job4").depends_on == ("job3",)
    assert [lane.name for lane in loaded.scene.lanes] == ["tissue_then_export"]
    assert loaded.node_item("job3").pos().y() == lane_node_y(0)
    loaded.undo_stack.undo()
    loaded.undo_stack.undo()
    assert [lane.name for lane in loaded.scene.lanes] == ["branch_A", "branch_B"]


def test_inspector_moves_a_job_to_another_branch(loaded: GraphEditor) -> None:
    loaded.select_job("job2")
    loaded.inspector.branch_combo.setCurrentText("branch_B")
    assert loaded.to_workflow().branch_of("job2") == "branch_B"
    assert [j.job_id for j in loaded.to_workflow().branches[1].jobs] == ["job3", "job4", "job2"]


def test_set_job_states_colours_nodes(loaded: GraphEditor) -> None:
    loaded.set_job_states({"job1": "running", "job2": "failed", "job3": "waiting", "job4": "skipped", "nope": "queued"})
    assert loaded.node_item("job1").fill_colour() == STATE_COLOURS["running"]
    assert loaded.node_item("job2").fill_colour() == STATE_COLOURS["failed"]
    assert loaded.node_item("job3").fill_colour() == STATE_COLOURS["waiting"]
    assert loaded.node_item("job4").opacity() < 1
    loaded.set_job_states({"job1": "succeeded", "job4": None})
    assert loaded.node_item("job1").fill_colour() == STATE_COLOURS["succeeded"]
    assert loaded.node_item("job4").opacity() == 1
    assert loaded.node_item("job4").state is None
    with pytest.raises(ValueError, match="unknown job state"):
        loaded.set_job_states({"job1": "exploded"})


def test_run_emits_the_workflow_or_says_why_not(loaded: GraphEditor, qtbot) -> None:
    with qtbot.waitSignal(loaded.run_requested) as blocker:
        loaded.run_action.trigger()
    assert blocker.args[0] == loaded.to_workflow()
    loaded.add_job("export")
    with qtbot.assertNotEmitted(loaded.run_requested), qtbot.waitSignal(loaded.run_refused):
        loaded.run_action.trigger()
    assert "Cannot run" in loaded.message_text()


def test_modified_flag_follows_the_undo_stack(loaded: GraphEditor, qtbot) -> None:
    with qtbot.waitSignal(loaded.modified_changed) as blocker:
        loaded.set_job_param("job1", "batch_size", 4)
    assert blocker.args == [True]
    with qtbot.waitSignal(loaded.modified_changed) as blocker:
        loaded.undo_stack.undo()
    assert blocker.args == [False]


def test_wheel_zoom_is_clamped(editor: GraphEditor) -> None:
    editor.new_workflow()
    for _ in range(50):
        editor.view.zoom_by(1.5)
    assert editor.view.zoom() == pytest.approx(editor.view.MAX_SCALE)
    for _ in range(50):
        editor.view.zoom_by(0.5)
    assert editor.view.zoom() == pytest.approx(editor.view.MIN_SCALE)
