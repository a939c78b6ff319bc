"""The main window wired to a real store, runner and QThreadPool executor (offscreen)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication


@pytest.fixture
def window(open_window):
    return open_window()


@pytest.fixture
def slide(demo_slide, tmp_path) -> Path:
    copy = tmp_path / "slide.svs"
    shutil.copy(demo_slide.path, copy)
    return copy


def drop(widget, paths: list[str]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
    pos = QPointF(20, 20)
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    for event in (
        QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, buttons, mods),
        QDragMoveEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, buttons, mods),
        QDropEvent(pos, Qt.DropAction.CopyAction, mime, buttons, mods),
    ):
        QApplication.sendEvent(widget, event)


def test_dropping_a_slide_adds_it_to_the_profile_library_and_opens_it(window, slide):
    drop(window.viewer.viewport(), [str(slide)])
    assert window.viewer.slide_path == str(slide.resolve())
    assert window.library.slide_paths() == [str(slide.resolve())]
    assert window.store.slides("default") == [slide.resolve()]
    assert "0.500 µm/px" in window.mpp_label.text()


def test_dropping_a_workflow_opens_it_in_the_editor(window, slide, tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: dropped\ndag:\n  A:\n    - {{job_id: a, type: tissue, image: {slide.name}}}\n")
    drop(window, [str(wf)])
    assert window.editor.to_workflow().name == "dropped"
    assert window.tabs.currentWidget() is window.editor


def test_dropping_junk_shows_a_message_and_changes_nothing(window, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    drop(window.viewer.viewport(), [str(junk)])
    assert window.viewer.slide_path is None
    assert window.library.slide_paths() == []
    assert window.messages and "notes.txt" in window.messages[0]


def test_profiles_see_only_their_own_slides(window, slide, tmp_path):
    window.open_paths([str(slide)])
    window.profiles.add_profile("alice")
    assert window.profiles.current == "alice"
    assert window.library.slide_paths() == []
    other = tmp_path / "other.svs"
    shutil.copy(slide, other)
    window.open_paths([str(other)])
    assert window.library.slide_paths() == [str(other.resolve())]
    window.profiles.combo.setCurrentText("default")
    assert window.library.slide_paths() == [str(slide.resolve())]


def test_tissue_run_from_the_gui_paints_plan_and_colours_nodes(qtbot, window, slide):
    window.open_paths([str(slide)])
    window.editor.new_workflow(name="gui run")
    window.editor.add_job("tissue", job_id="t", image=str(slide))
    run_id = window.submit_workflow(window.editor.to_workflow())
    qtbot.waitUntil(lambda: window.runner.run_status(run_id) == "succeeded", timeout=60_000)
    qtbot.waitUntil(lambda: window.viewer.tile_overlay.plan is not None, timeout=5_000)
    assert window.viewer.tissue_overlay.mask is not None
    assert window.dashboard.book.runs[run_id].jobs["t"].state == "succeeded"
    assert window.editor.node_item("t").state == "succeeded"


def test_segment_run_paints_cells_live_before_the_job_finishes(qtbot, window, tmp_path):
    from wsidesk.core.slide.demo import write_demo_slide

    slide = write_demo_slide(tmp_path / "small.svs", width=1536, height=1024, seed=3).path
    window.open_paths([str(slide)])
    window.editor.new_workflow(name="live cells")
    window.editor.add_job("segment", job_id="cells", image=str(slide))
    for name, value in {"model": "wsidesk_test_nuclei", "tile_size": 256, "padding": 32, "batch_size": 2}.items():
        window.editor.set_job_param("cells", name, value)
    seen: list[tuple[int, str]] = []  # (cells on screen, job state) as each batch arrives

    def record(event):
        if event.event == "tile_batch_done" and event.payload is not None:
            seen.append(
                (window.viewer.cell_overlay.cell_count, window.dashboard.book.runs[event.run_id].jobs["cells"].state)
            )

    window.services.bridge.event_received.connect(record)  # after the window's own handler
    run_id = window.submit_workflow(window.editor.to_workflow())
    qtbot.waitUntil(lambda: window.runner.run_status(run_id) is not None, timeout=300_000)
    assert window.runner.run_status(run_id) == "succeeded"
    assert len(seen) > 2
    assert any(cells > 0 and state == "running" for cells, state in seen), "cells appear while the job runs"
    counts = [cells for cells, _ in seen]
    assert counts == sorted(counts)
    plan = window.viewer.tile_overlay.plan
    assert window.viewer.tile_overlay.state_counts().get("done", 0) == plan.tissue
    # The finished result is listed for the open slide and can be shown again from disk.
    qtbot.waitUntil(lambda: window.library.results.count() == 1, timeout=5_000)
    window.viewer.cell_overlay.clear()
    window.show_result(window.library.results.item(0).data(Qt.ItemDataRole.UserRole))
    assert window.workbench.overlay.cell_count == counts[-1]  # the results workbench shows it
    assert window.workbench.table.model.rowCount() == counts[-1]
