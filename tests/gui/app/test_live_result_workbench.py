"""A segmentation run from the app opens in the results workbench when it finishes on the shown slide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsidesk.core.cells.store import write_cell_store
from wsidesk.core.events import Event, EventName
from wsidesk.core.export.geojson import write_geojson
from wsidesk.core.segment.cells import Cell
from wsidesk.core.slide.demo import write_demo_slide
from wsidesk.core.workflow.model import Branch, Job, Workflow

SEG_PARAMS = {"model": "wsidesk_test_nuclei", "tile_size": 256, "padding": 32, "batch_size": 2}


@pytest.fixture
def window(open_window):
    return open_window()


def submit_segmentation(window, slide) -> str:
    window.editor.new_workflow(name="cells")
    window.editor.add_job("segment", job_id="cells", image=str(slide))
    for name, value in SEG_PARAMS.items():
        window.editor.set_job_param("cells", name, value)
    return window.submit_workflow(window.editor.to_workflow())


def wait_finished(qtbot, window, run_id: str) -> None:
    qtbot.waitUntil(lambda: window.runner.run_status(run_id) is not None, timeout=300_000)
    qtbot.waitUntil(lambda: window.dashboard.book.runs[run_id].status != "running", timeout=5_000)


def test_the_finished_run_replaces_the_live_cells_with_the_workbench_at_once(qtbot, window, tmp_path):
    slide = write_demo_slide(tmp_path / "small.svs", width=768, height=512, seed=3).path
    window.open_paths([str(slide)])
    assert not any(dock.isVisible() for dock in window._results_docks)  # nothing open: no empty panels
    on_screen: list[tuple[int, int]] = []  # (live cells, workbench cells) right after the result opened
    window.live.result_finished.connect(
        lambda _: on_screen.append((window.viewer.cell_overlay.cell_count, window.workbench.overlay.cell_count))
    )  # connected after the window's own slot: runs once it has opened the result
    run_id = submit_segmentation(window, slide)
    wait_finished(qtbot, window, run_id)
    assert window.runner.run_status(run_id) == "succeeded" and not window.messages
    cells = window.dashboard.book.runs[run_id].jobs["cells"].cells
    assert cells > 0
    # In the same call that opened it, the live layer was already empty: no frame shows both sets.
    assert on_screen == [(0, cells)]
    assert window.workbench.table.model.rowCount() == cells
    assert window.workbench.results.folder is not None and window.workbench.results.folder.parent.name == run_id
    assert all(dock.isVisible() for dock in window._results_docks)
    assert run_id in window.layers.source_label.text()
    assert window.layers.source_label.text().endswith("(succeeded)")
    plan = window.viewer.tile_overlay.plan
    assert plan is not None and window.viewer.tile_overlay.state_counts().get("done", 0) == plan.tissue


def finished_job_events(run_id: str, profile: str, cells: Path) -> list[Event]:
    """What a segment job that succeeded reports: started, then succeeded with its outputs."""
    job = {"branch": "b", "job_id": "cells"}
    return [
        Event(EventName.JOB_STARTED, run_id, profile, "cells", **job),
        Event(EventName.JOB_SUCCEEDED, run_id, profile, "cells", **job, fields={"outputs": {"cells": str(cells)}}),
    ]


def test_only_a_run_of_this_profile_on_the_shown_slide_opens(window, tmp_path):
    shown = write_demo_slide(tmp_path / "shown.svs", width=512, height=512, seed=3).path
    other = write_demo_slide(tmp_path / "other.svs", width=512, height=512, seed=4).path
    folder = tmp_path / "run" / "cells"
    folder.mkdir(parents=True)
    cell = Cell(
        np.array([[10.0, 10.0], [30.0, 10.0], [30.0, 30.0]]),
        (23.3, 16.7),
        (10, 10, 30, 30),
        0,
        {"area_um2": 50.0},
        id=1,
    )
    write_geojson([cell], folder / "cells.geojson")
    write_cell_store([cell], folder)
    window.open_paths([str(shown)])
    for run_id, slide in (("on-other-slide", other), ("on-shown-slide", shown)):
        job = Job("cells", "segment", str(slide))
        window.live.track(run_id, Workflow("cells", (Branch("b", (job,)),)))
    for event in finished_job_events("on-shown-slide", "alice", folder / "cells.geojson"):
        window.live.on_event(event)  # another profile's run on this very slide
    for event in finished_job_events("on-other-slide", "default", folder / "cells.geojson"):
        window.live.on_event(event)
    assert window.workbench.results.table is None and not window.messages
    assert not any(dock.isVisible() for dock in window._results_docks)
    for event in finished_job_events("on-shown-slide", "default", folder / "cells.geojson"):
        window.live.on_event(event)
    assert window.workbench.overlay.cell_count == 1 and window.workbench.results.folder == folder
    assert all(dock.isVisible() for dock in window._results_docks)
