"""Issue 11, "what you see is the truth": overlays, profiles, history and messages in the main window."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from wsidesk.app import build_main_window, shutdown
from wsidesk.core.events import Event
from wsidesk.core.states import JobState, RunStatus
from wsidesk.core.workflow.io import dump_workflow
from wsidesk.gui.dashboard import RunDashboard

SEG_PARAMS = {"model": "wsidesk_test_nuclei", "tile_size": 256, "padding": 32, "batch_size": 2}


@pytest.fixture
def answers(monkeypatch):
    """Message boxes never block: they are recorded, and questions get `answers.reply`."""

    class Answers:
        reply = QMessageBox.StandardButton.Yes
        shown: list[str] = []
        asked: list[str] = []

    rec = Answers()
    rec.shown, rec.asked = [], []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: rec.shown.append(a[2]))
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: rec.shown.append(a[2]))

    def question(*a, **k):
        rec.asked.append(a[2])
        return rec.reply

    monkeypatch.setattr(QMessageBox, "question", question)
    return rec


def make_window(qtbot, data: Path):
    win = build_main_window(data, workers=2)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    return win


@pytest.fixture
def window(qtbot, tmp_path, answers):
    win = make_window(qtbot, tmp_path / "data")
    yield win
    answers.reply = QMessageBox.StandardButton.Yes
    win.close()
    shutdown(win)


@pytest.fixture
def small_slide(tmp_path) -> Path:
    from wsidesk.core.slide.demo import write_demo_slide

    return write_demo_slide(tmp_path / "small.svs", width=1536, height=1024, seed=3).path


def segment_in_editor(window, slide: Path, name: str = "cells wf") -> None:
    window.editor.new_workflow(name=name)
    window.editor.add_job("segment", job_id="cells", image=str(slide))
    for key, value in SEG_PARAMS.items():
        window.editor.set_job_param("cells", key, value)


def wait_finished(qtbot, window, run_id: str) -> None:
    qtbot.waitUntil(lambda: window.runner.run_status(run_id) is not None, timeout=300_000)
    qtbot.waitUntil(lambda: window.dashboard.book.runs[run_id].status is not RunStatus.RUNNING, timeout=5_000)


def test_a_new_segmentation_replaces_the_shown_result_and_the_layers_panel_names_it(qtbot, window, small_slide):
    window.open_paths([str(small_slide)])
    segment_in_editor(window, small_slide)
    first = window.submit_workflow(window.editor.to_workflow())
    wait_finished(qtbot, window, first)
    first_cells = window.dashboard.book.runs[first].jobs["cells"].cells
    # The finished run opened in the results workbench in place of its live cells.
    assert window.workbench.overlay.cell_count == first_cells > 0 and window.viewer.cell_overlay.cell_count == 0
    assert first in window.layers.source_label.text()

    window.editor.set_job_param("cells", "cache", False)  # a new segmentation: computed, not reused
    second = window.submit_workflow(window.editor.to_workflow())
    # The job dispatched inside submit() turns "running" in the graph, and the old cells go at once.
    qtbot.waitUntil(lambda: window.live.source == (second, "cells"), timeout=5_000)
    assert window.editor.node_item("cells").state == JobState.RUNNING
    assert window.viewer.cell_overlay.cell_count < first_cells and window.workbench.overlay.cell_count == 0
    assert second in window.layers.source_label.text() and first not in window.layers.source_label.text()
    wait_finished(qtbot, window, second)
    qtbot.waitUntil(lambda: window.layers.source_label.text().endswith("(succeeded)"), timeout=5_000)
    # Only the new run's cells are on screen: not both sets mixed.
    assert window.workbench.overlay.cell_count == window.dashboard.book.runs[second].jobs["cells"].cells
    assert window.viewer.cell_overlay.cell_count == 0
    assert window.editor.node_item("cells").state == JobState.SUCCEEDED


def test_switching_profile_shows_only_that_profiles_slide_workflow_overlays_and_runs(
    qtbot, window, small_slide, tmp_path
):
    window.open_paths([str(small_slide)])
    segment_in_editor(window, small_slide, name="default's cells")
    window.editor.save(tmp_path / "b1.yaml")
    run_id = window.submit_workflow(window.editor.to_workflow())
    window.profiles.add_profile("alice")

    assert window.viewer.slide_path is None
    assert window.editor.path is None and window.editor.to_workflow().name != "default's cells"
    assert window.windowTitle() == "wsidesk — [alice]"
    assert window.layers.source_label.text() == "No result shown"
    assert window.mpp_label.text() == ""  # nothing of default's slide stays in the status bar
    # default's run streams on; none of its cells reach alice's view, and its run is not listed.
    alice_slide = tmp_path / "alice.svs"
    shutil.copy(small_slide, alice_slide)
    window.open_paths([str(alice_slide)])
    wait_finished(qtbot, window, run_id)
    assert window.viewer.slide_path == str(alice_slide.resolve())
    assert window.viewer.cell_overlay.cell_count == 0
    assert window.dashboard._run_items[run_id].isHidden()

    window.profiles.combo.setCurrentText("default")
    assert window.viewer.slide_path == str(small_slide.resolve())
    assert window.editor.path == tmp_path / "b1.yaml"
    assert window.windowTitle() == "wsidesk — [default] — small.svs — b1.yaml"
    assert not window.dashboard._run_items[run_id].isHidden()
    assert window.editor.node_item("cells").state == JobState.SUCCEEDED


def test_restart_lists_the_profiles_runs_and_resumes_an_interrupted_one(qtbot, tmp_path, answers, small_slide):
    from wsidesk.core.store import Store
    from wsidesk.core.workflow.model import Branch, Job, Workflow

    data = tmp_path / "data"
    workflow = Workflow("tissue wf", (Branch("A", (Job("t", "tissue", image=str(small_slide)),)),))
    store = Store(data)
    # What an earlier session left behind: one run that finished, one whose process died mid-run
    # (pid 2**22 + 1 is above Linux's largest pid_max, so it is never alive).
    for run_id in ("20240101-000000-aaaaaa", "20240102-000000-bbbbbb"):
        record = store.create_run(
            run_id=run_id, profile="default", workflow=workflow.name, jobs=[("t", "A")], owner_pid=2**22 + 1
        )
        record.run_dir.mkdir(parents=True, exist_ok=True)
        (record.run_dir / "workflow.yaml").write_text(dump_workflow(workflow.with_absolute_paths()), encoding="utf-8")
    store.set_run_status("20240101-000000-aaaaaa", RunStatus.FAILED)
    store.close()

    window = make_window(qtbot, data)
    try:
        dash = window.dashboard
        items = dash._run_items
        assert items["20240102-000000-bbbbbb"].text(1) == "interrupted"
        assert items["20240101-000000-aaaaaa"].text(1) == "failed"
        assert dash.tree.indexOfTopLevelItem(items["20240102-000000-bbbbbb"]) == 0  # newest first
        dash.select("20240101-000000-aaaaaa")
        assert not dash.resume_button.isEnabled()
        dash.select("20240102-000000-bbbbbb")
        assert dash.resume_button.isEnabled()
        dash.resume_button.click()
        qtbot.waitUntil(lambda: window.runner.run_status("20240102-000000-bbbbbb") == "succeeded", timeout=60_000)
        qtbot.waitUntil(lambda: items["20240102-000000-bbbbbb"].text(1) == "succeeded", timeout=5_000)
        assert len(dash._run_items) == 2  # resumed in place, not listed twice
    finally:
        window.close()
        shutdown(window)


def test_quitting_with_work_running_asks_and_can_stay(qtbot, window, answers, small_slide):
    window.open_paths([str(small_slide)])
    segment_in_editor(window, small_slide)
    run_id = window.submit_workflow(window.editor.to_workflow())
    answers.reply = QMessageBox.StandardButton.No
    assert not window.close()
    assert window.isVisible() and any("resume" in q.lower() for q in answers.asked)
    window.runner.cancel_run(run_id)
    wait_finished(qtbot, window, run_id)


def test_dashboard_counts_a_waiting_runs_jobs_puts_the_newest_on_top_and_says_cancelling(qtbot):
    dash = RunDashboard()
    qtbot.addWidget(dash)
    dash.set_profile("alice")

    def ev(name, run_id, **fields):
        return Event(name, run_id, "alice", "a workflow with a long name", fields=fields)

    dash.expect("20250101-000000-aaaaaa", profile="alice", workflow="wf1", jobs=[("a", "A")])
    dash.on_event(ev("run_submitted", "20250101-000000-aaaaaa", done=0))
    dash.expect("20250101-000001-bbbbbb", profile="alice", workflow="wf2", jobs=[("a", "A"), ("b", "A"), ("c", "B")])
    dash.on_event(ev("run_submitted", "20250101-000001-bbbbbb", done=0))
    dash.on_event(ev("profile_queued", "20250101-000001-bbbbbb", position=1))
    newest = dash.tree.topLevelItem(0)
    assert newest.data(0, Qt.ItemDataRole.UserRole)[0] == "20250101-000001-bbbbbb"
    assert newest.text(1) == "waiting (#1)" and newest.text(3) == "0/3 jobs"
    assert "20250101-000001-bbbbbb" in newest.toolTip(0) and "wf2" in newest.toolTip(0)
    assert newest.child(0).toolTip(0)
    cancelled = []
    dash.cancel_run_requested.connect(cancelled.append)
    dash.select("20250101-000000-aaaaaa")
    dash.cancel_run_button.click()
    item = dash.tree.topLevelItem(1)
    assert cancelled == ["20250101-000000-aaaaaa"] and item.text(1) == "cancelling…"
    assert item.child(0).text(1) == "cancelling…"  # its pending job too, until it stops
    assert not dash.cancel_run_button.isEnabled()
    dash.on_event(ev("run_finished", "20250101-000000-aaaaaa", status="cancelled"))
    assert item.text(1) == "cancelled"


def test_save_workflow_as_adds_the_yaml_suffix(window, monkeypatch, tmp_path, small_slide):
    window.editor.new_workflow(name="my cells")
    window.editor.add_job("tissue", job_id="t", image=str(small_slide))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "my_cells"), ""))
    window._on_save_as()
    assert (tmp_path / "my_cells.yaml").is_file() and not (tmp_path / "my_cells").exists()
    assert window.editor.path == tmp_path / "my_cells.yaml"


def test_a_slide_that_fails_to_open_is_not_added_to_the_library(window, answers, tmp_path, small_slide):
    bad = tmp_path / "float.tif"
    data = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32)
    tifffile.imwrite(bad, data, tile=(256, 256), metadata=None, photometric="rgb")
    window.open_paths([str(bad)])
    assert window.library.slide_paths() == [] and window.store.slides("default") == []
    assert answers.shown and "unsupported" in answers.shown[0] and "not added" in answers.shown[0]
    # Several at once: the good one joins, the bad one does not.
    window.open_paths([str(small_slide), str(bad)])
    assert window.library.slide_paths() == [str(small_slide.resolve())]


def test_a_grayscale_slide_warns_that_the_model_expects_rgb_brightfield(window, answers, tmp_path):
    gray = tmp_path / "gray.tif"
    data = np.random.default_rng(0).integers(0, 255, (1024, 1024), dtype=np.uint8)
    tifffile.imwrite(gray, data, tile=(256, 256), metadata=None)
    window.open_paths([str(gray)])
    assert window.viewer.slide_path == str(gray.resolve())
    assert "grayscale" in window.statusBar().currentMessage()
    answers.reply = QMessageBox.StandardButton.No
    assert window.segment_slide({}) is None  # what the Segment dialog submits
    assert answers.asked and "RGB brightfield" in answers.asked[0]
    assert window.runner.is_idle()
