"""Routes core events to the views: run dashboard, graph-editor node colours, slide overlays, results list."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from wsidesk.core.events import PROFILE_EVENTS, Event, EventName
from wsidesk.core.states import JobState
from wsidesk.core.store import Store
from wsidesk.core.workflow.model import Workflow
from wsidesk.gui.dashboard import RunDashboard
from wsidesk.gui.graph_editor import GraphEditor
from wsidesk.gui.panels import LibraryPanel
from wsidesk.gui.viewer import SlideView

logger = logging.getLogger(__name__)

# Job types whose events draw on the slide (tissue mask, tile grid, cells).
PAINTING_JOB_TYPES = frozenset({"tissue", "segment"})


class LiveResults(QObject):
    """Applies core events (on the GUI thread) to the views, and lists the open slide's results.

    Overlays follow only runs submitted or resumed in this session (``track``): their workflow says
    which slide each job works on. What the overlays show always belongs to one (run, job), the
    *source*: a job that starts on the open slide replaces it; events of any other job, or of another
    profile's run, never reach the view or the editor.
    """

    profile_slots_changed = Signal()  # a profile was queued, activated or released
    source_changed = Signal(str)  # a sentence naming what the overlays show
    result_finished = Signal(str)  # the shown job succeeded: its cells.geojson, for the results workbench

    def __init__(
        self,
        store: Store,
        *,
        viewer: SlideView,
        editor: GraphEditor,
        dashboard: RunDashboard,
        library: LibraryPanel,
        profile: Callable[[], str],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._viewer = viewer
        self._editor = editor
        self._dashboard = dashboard
        self._library = library
        self._profile = profile
        self._run_workflows: dict[str, Workflow] = {}  # run_id -> workflow, to place events on slides
        self._editor_runs: dict[str, str] = {}  # profile -> the run its editor's nodes show
        self._source: tuple[str, str] | None = None  # (run_id, job_id) the overlays show
        self._source_state = ""
        self._results: dict[str, tuple[str, str]] = {}  # cells.geojson -> (run_id, job_id)
        viewer.slide_opened.connect(lambda _: self.set_source(None))
        viewer.slide_closed.connect(lambda _: self.set_source(None))

    # -- what is followed and shown ------------------------------------------------------------------
    def track(self, run_id: str, workflow: Workflow, *, in_editor: bool = False) -> None:
        """Follow a run's events on the slide view; ``in_editor``: also colour the editor's nodes.

        Call it right after submitting: events are delivered queued, so none is handled before this.
        """
        self._run_workflows[run_id] = workflow
        self._dashboard.expect(
            run_id,
            profile=self._profile(),
            workflow=workflow.name,
            jobs=[(job.job_id, branch.name) for branch, job in workflow.jobs()],
        )
        if in_editor:
            self._editor_runs[self._profile()] = run_id
            self._editor.clear_job_states()
            self.restore_editor_states()

    def restore_editor_states(self) -> None:
        """Colour the editor's nodes with what the profile's editor run has reported so far."""
        run = self._dashboard.book.runs.get(self._editor_runs.get(self._profile(), ""))
        if run is not None:
            self._editor.set_job_states({job.job_id: job.state for job in run.jobs.values()})

    @property
    def source(self) -> tuple[str, str] | None:
        """The (run_id, job_id) whose tissue, tiles and cells the overlays show, or None."""
        return self._source

    def set_source(self, source: tuple[str, str] | None, state: str = "") -> None:
        """Say the overlays now belong to ``source`` (the caller has cleared or filled them)."""
        self._source, self._source_state = source, state
        self.source_changed.emit(self.source_text())

    def source_text(self) -> str:
        if self._source is None:
            return "No result shown"
        run_id, job_id = self._source
        workflow = self._run_workflows.get(run_id)
        name = f"{workflow.name} · " if workflow else ""
        state = f" ({self._source_state})" if self._source_state else ""
        return f"Showing {name}job {job_id} · run {run_id}{state}"

    def result_source(self, cells_path: str) -> tuple[str, str] | None:
        """The (run_id, job_id) that wrote a listed result."""
        return self._results.get(cells_path)

    # -- events ---------------------------------------------------------------------------------------
    @Slot(object)
    def on_event(self, event: Event) -> None:
        self._dashboard.on_event(event)
        if event.event in PROFILE_EVENTS:
            self.profile_slots_changed.emit()
        if event.profile != self._profile():
            return  # another profile's run: only the dashboard (which hides it) keeps count
        state = event.job_state
        if event.run_id == self._editor_runs.get(event.profile) and event.job_id and state is not None:
            self._editor.set_job_states({event.job_id: state})
        if event.event is EventName.RUN_FINISHED:
            self.reload_results()
        if self._on_open_slide(event):
            self._paint(event)

    def reload_results(self) -> None:
        """Finished segmentations of the open slide in this profile's runs, newest first."""
        slide = self._viewer.slide_path
        results: list[tuple[str, str]] = []
        self._results.clear()
        if slide:
            for seg in self._store.segmentations(self._profile(), Path(slide)):
                if seg.cells.exists():
                    results.append((f"{seg.workflow} · {seg.job_id} · {seg.run_id}", str(seg.cells)))
                    self._results[str(seg.cells)] = (seg.run_id, seg.job_id)
        self._library.set_results(results)

    def _paint(self, event: Event) -> None:
        viewer = self._viewer
        key = (event.run_id, event.job_id or "")
        if event.event is EventName.JOB_STARTED:
            if self._job_type(event) in PAINTING_JOB_TYPES:
                # A new job on this slide replaces whatever was shown: never two results mixed.
                for overlay in viewer.overlays.values():
                    overlay.clear()
                self.set_source(key, "running")
            return
        if key != self._source:
            return
        if (state := event.job_state) is not None:
            cells = event.fields.get("outputs", {}).get("cells") if state is JobState.SUCCEEDED else None
            if cells:
                # Opened now, in this call, in place of the live layer: no frame shows other cells between.
                self.result_finished.emit(str(cells))
            self.set_source(key, str(state))
        elif (planned := event.planned) is not None:
            viewer.tile_overlay.set_plan(planned.plan)
            viewer.tissue_overlay.set_mask(planned.mask)
        elif (batch := event.batch) is not None:
            viewer.cell_overlay.add_cells(batch.cells)
            states = dict.fromkeys(batch.tile_indices, "done")
            states.update(dict.fromkeys(batch.failed, "failed"))
            viewer.tile_overlay.set_tile_states(states)

    def _job_type(self, event: Event) -> str | None:
        workflow = self._run_workflows.get(event.run_id)
        return workflow.job(event.job_id).type if workflow and event.job_id else None

    def _on_open_slide(self, event: Event) -> bool:
        """Whether the event is about a job on the slide shown in the viewer."""
        workflow = self._run_workflows.get(event.run_id)
        if workflow is None or event.job_id is None or self._viewer.slide_path is None:
            return False
        image = workflow.image_path(workflow.job(event.job_id))
        return image is not None and image.resolve() == Path(self._viewer.slide_path).resolve()
