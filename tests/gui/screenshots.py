"""Screenshots of the app for a human to look at: `python tests/gui/screenshots.py OUT_DIR`.

Runs the real app offscreen (or under Xvfb with DISPLAY set) on a demo slide with the bundled test
model, and saves: the viewer with live cells mid-run, the graph editor with two branches, and the
run dashboard with its statistics.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(out: Path) -> None:
    from PySide6.QtWidgets import QApplication

    from wsidesk.app import build_main_window, shutdown
    from wsidesk.core.slide.demo import write_demo_slide
    from wsidesk.core.workflow.io import save_workflow

    app = QApplication.instance() or QApplication([])
    out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="wsidesk-shots-"))
    slide = write_demo_slide(data / "demo.svs", width=3072, height=2048, seed=5).path
    window = build_main_window(data / "data", workers=2)
    window.resize(1600, 1000)
    window.show()
    window.open_paths([str(slide)])

    editor = window.editor
    editor.new_workflow(name="Demo: tissue and cells")
    editor.rename_branch("branch_1", "tissue")
    editor.add_job("tissue", branch="tissue", job_id="tissue", image=str(slide))
    editor.add_branch("cells")
    editor.add_job("segment", branch="cells", job_id="cells", image=str(slide))
    editor.add_job("export", branch="cells", job_id="table")
    editor.connect_jobs("tissue", "cells")
    editor.connect_jobs("cells", "table")
    for name, value in {"model": "wsidesk_test_nuclei", "tile_size": 256, "padding": 32, "batch_size": 2}.items():
        editor.set_job_param("cells", name, value)
    editor.set_job_param("table", "format", "csv")
    save_workflow(editor.to_workflow(), data / "demo.yaml")

    def pump(seconds: float, until=lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            app.processEvents()
            time.sleep(0.01)

    run_id = window.submit_workflow(editor.to_workflow())
    window.tabs.setCurrentWidget(window.viewer)
    window.viewer.zoom_to_fit()
    # Mid-run: some batches painted, the job still running.
    pump(240, until=lambda: window.viewer.cell_overlay.cell_count > 150)
    pump(0.3)
    window.grab().save(str(out / "viewer_live.png"))
    if app.platformName() == "xcb":  # what the X server shows, not the widget's own rendering
        app.primaryScreen().grabWindow(0).save(str(out / "screen_live.png"))
    window.viewer.set_scale_factor(0.6)
    window.viewer.center_on(1500, 1000)
    pump(1.5)
    window.viewer.grab().save(str(out / "viewer_live_zoomed.png"))
    window.tabs.setCurrentWidget(editor)
    pump(0.5)
    window.grab().save(str(out / "graph_editor.png"))
    pump(600, until=lambda: window.runner.run_status(run_id) is not None)
    window.dashboard.select(run_id, "cells")
    window.stats.sample()
    pump(0.5)
    window.dashboard.parentWidget().grab().save(str(out / "dashboard.png"))
    window.stats.grab().save(str(out / "statistics.png"))
    print(f"run {run_id}: {window.runner.run_status(run_id)}; screenshots in {out}")
    editor.undo_stack.setClean()  # nothing to ask about on close
    window.close()
    shutdown(window)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots"))
