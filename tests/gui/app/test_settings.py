"""Where the app runs jobs: the settings dialog, the saved choice, Dask from the GUI and its fallback."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from wsidesk.app import build_main_window, shutdown
from wsidesk.core.scheduler.executor_config import ExecutorConfig
from wsidesk.gui.bridges import QtExecutor
from wsidesk.gui.settings_dialog import ExecutorSettings, SettingsDialog


def _window(qtbot, data, **kw):
    win = build_main_window(data, **kw)
    qtbot.addWidget(win)
    return win


def test_settings_dialog_edits_and_saves_where_jobs_run(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    dialog = SettingsDialog(ExecutorSettings.load(settings, workers=2))
    qtbot.addWidget(dialog)
    assert not dialog.address.isEnabled()  # only a Dask cluster has a scheduler address
    dialog.kind.setCurrentIndex(dialog.kind.findData("dask"))
    assert dialog.address.isEnabled()
    dialog.address.setText("  tcp://gpu-head:8786 ")
    dialog.workers.setValue(5)
    dialog.settings().save(settings)
    again = ExecutorSettings.load(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat), workers=2)
    assert again == ExecutorSettings("dask", "tcp://gpu-head:8786", 5)
    assert "gpu-head" in again.describe()


def test_a_hand_broken_settings_file_falls_back_to_this_computer(tmp_path):
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    settings.setValue("executor/kind", "ray")
    assert ExecutorSettings.load(settings, workers=3) == ExecutorSettings("local", "", 3)


def test_the_saved_choice_is_used_at_the_next_start(qtbot, tmp_path):
    data = tmp_path / "data"
    first = _window(qtbot, data)
    ExecutorSettings("local", "", 3).save(first.settings)
    first.close()
    shutdown(first)
    second = _window(qtbot, data)
    try:
        assert isinstance(second.services.executor, QtExecutor)
        assert second.services.executor.max_workers == 3
        assert second.executor_label.text() == "jobs: this computer, 3 at a time"
    finally:
        second.close()
        shutdown(second)


def test_an_unreachable_dask_scheduler_falls_back_to_this_computer_with_a_visible_reason(qtbot, tmp_path):
    pytest.importorskip("distributed")
    data = tmp_path / "data"
    data.mkdir()
    (data / "cluster.yaml").write_text("timeout: 2\n", encoding="utf-8")  # read from the data folder
    win = _window(qtbot, data, workers=2, executor=ExecutorConfig("dask", "tcp://127.0.0.1:9"))
    try:
        assert isinstance(win.services.executor, QtExecutor)
        warning = win.services.executor_warning
        assert warning and "127.0.0.1:9" in warning and "this computer instead" in warning
        assert "unreachable" in win.executor_label.text()
        assert win.executor_label.toolTip() == warning
    finally:
        win.close()
        shutdown(win)


def test_a_segment_run_on_a_local_dask_cluster_paints_cells_live_in_the_gui(qtbot, tmp_path):
    pytest.importorskip("distributed")
    from wsidesk.core.scheduler.dask_executor import DaskExecutor
    from wsidesk.core.slide.demo import write_demo_slide

    slide = write_demo_slide(tmp_path / "small.svs", width=1024, height=768, seed=4).path
    win = _window(qtbot, tmp_path / "data", workers=1, executor=ExecutorConfig("dask"))
    try:
        assert isinstance(win.services.executor, DaskExecutor)
        assert win.services.executor_warning is None
        win.show()
        win.open_paths([str(slide)])
        win.editor.new_workflow(name="cells on dask")
        win.editor.add_job("segment", job_id="cells", image=str(slide))
        for name, value in {"model": "wsidesk_test_nuclei", "tile_size": 256, "padding": 32, "batch_size": 2}.items():
            win.editor.set_job_param("cells", name, value)
        batches: list[int] = []
        win.services.bridge.event_received.connect(
            lambda e: batches.append(win.viewer.cell_overlay.cell_count) if e.event == "tile_batch_done" else None
        )
        run_id = win.submit_workflow(win.editor.to_workflow())
        qtbot.waitUntil(lambda: win.runner.run_status(run_id) is not None, timeout=180_000)
        assert win.runner.run_status(run_id) == "succeeded"
        # Batches from the worker process reached the GUI thread with their cells.
        assert len(batches) >= 2 and batches[-1] > 0
        assert batches == sorted(batches)
        assert win.viewer.tile_overlay.state_counts().get("done", 0) == win.viewer.tile_overlay.plan.tissue
    finally:
        win.editor.undo_stack.setClean()  # nothing to ask about on close
        win.close()
        shutdown(win)
