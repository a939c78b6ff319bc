"""Reused jobs in the Runs panel, the Provenance panel, Re-run and Re-run with changes (offscreen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from wsidesk.core.workflow.model import Branch, Job, Workflow
from wsidesk.gui.dashboard.run_dashboard import REUSED_COLOUR


@pytest.fixture
def window(open_window):
    win = open_window(size=(1400, 900))
    yield win
    assert win.messages == []  # no warning along the way


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> Path:
    from wsidesk.core.slide.demo import write_demo_slide

    return Path(write_demo_slide(tmp_path_factory.mktemp("prov") / "s.svs", width=512, height=384, seed=4).path)


def run_and_wait(qtbot, window, workflow: Workflow) -> str:
    run_id = window.submit_workflow(workflow)
    assert run_id is not None
    qtbot.waitUntil(lambda: window.runner.run_status(run_id) is not None, timeout=60_000)
    qtbot.waitUntil(lambda: window.dashboard.book.runs[run_id].status == "succeeded", timeout=10_000)
    return run_id


def test_reused_jobs_show_distinctly_with_their_provenance_and_rerun(qtbot, window, slide):
    wf = Workflow(
        name="prov",
        branches=(Branch("b", (Job("tissue", "tissue", str(slide)), Job("table", "export", depends_on=("tissue",)))),),
    )
    first = run_and_wait(qtbot, window, wf)
    second = run_and_wait(qtbot, window, wf)
    dash = window.dashboard
    item = dash._job_items[(second, "tissue")]
    assert item.text(1) == "reused" and item.foreground(1).color().name() == REUSED_COLOUR
    assert dash._job_items[(first, "tissue")].text(1) == "succeeded"

    dash.select(second, "tissue")
    panel = window.provenance
    assert panel.run_id == second and "2 reused" in panel.header.text()
    job = panel.tree.topLevelItem(0)
    rows = {job.child(i).text(0): job.child(i).text(1) for i in range(job.childCount())}
    assert job.text(1) == "reused" and rows["reused from"] == f"run {first}, job tissue"
    assert len(rows["fingerprint"]) == 64 and rows["slide"].startswith(str(slide))
    assert panel.rerun_button.isEnabled()

    runs = set(window.dashboard.book.runs)
    panel.rerun_edit_button.click()  # opens the run's workflow in the editor, runs nothing
    assert set(window.dashboard.book.runs) == runs
    assert window.tabs.currentWidget() is window.editor
    assert [j.job_id for _, j in window.editor.to_workflow().jobs()] == ["tissue", "table"]

    panel.rerun_button.click()  # one click: the same workflow runs again, every job reused
    (third,) = set(window.dashboard.book.runs) - runs
    qtbot.waitUntil(lambda: window.dashboard.book.runs[third].status == "succeeded", timeout=30_000)
    assert all(j.reused_from == second for j in window.dashboard.book.runs[third].jobs.values())


def test_opening_a_moved_slide_offers_to_relink_its_results(qtbot, window, slide, tmp_path, monkeypatch):
    from wsidesk.core.cache import ResultCache
    from wsidesk.core.cache.moved import moved_results

    original = tmp_path / "old" / "slide.svs"
    original.parent.mkdir()
    original.write_bytes(slide.read_bytes())
    run_and_wait(qtbot, window, Workflow(name="m", branches=(Branch("b", (Job("t", "tissue", str(original)),)),)))
    moved = tmp_path / "new" / "renamed.svs"
    moved.parent.mkdir()
    original.rename(moved)
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    window.open_paths([str(moved)])
    assert len(asked) == 1 and str(original) in asked[0]
    assert moved.resolve() in window.store.slides("default")
    cache = ResultCache(window.store.layout.root / "cache")
    assert moved_results(window.store, cache, "default", moved) == []  # relinked: nothing left to offer
    cache.close()
