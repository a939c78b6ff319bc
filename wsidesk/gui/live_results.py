"""Routes core events to the views: run dashboard, graph-editor node colours, slide overlays, results list."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from wsidesk.core.events import PROFILE_EVENTS, Event, EventName
from wsidesk.core.store import Store
from wsidesk.core.workflow.model import Workflow
from wsidesk.gui.dashboard import RunDashboard
from wsidesk.gui.graph_editor import GraphEditor
from wsidesk.gui.panels import LibraryPanel
from wsidesk.gui.viewer import SlideView

logger = logging.getLogger(__name__)


class LiveResults(QObject):
    """Applies core events (on the GUI thread) to the views, and lists the open slide's results.

    Overlays follow only runs submitted in this session (``track``): their workflow says which slide
    each job works on.
    """

    profile_slots_changed = Signal()  # a profile was queued, activated or released

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
        self._editor_run: str | None = None

    def track(self, run_id: str, workflow: Workflow, *, in_editor: bool = False) -> None:
        """Follow a run's events on the slide view; ``in_editor``: also colour the editor's nodes."""
        self._run_workflows[run_id] = workflow
        if in_editor:
            self._editor_run = run_id
            self._editor.clear_job_states()

    @Slot(object)
    def on_event(self, event: Event) -> None:
        self._dashboard.on_event(event)
        state = event.job_state
        if event.run_id == self._editor_run and event.job_id and state is not None:
            self._editor.set_job_states({event.job_id: state})
        if event.event in PROFILE_EVENTS:
            self.profile_slots_changed.emit()
        if event.event is EventName.RUN_FINISHED:
            self.reload_results()
        if self._on_open_slide(event):
            self._paint(event)

    def reload_results(self) -> None:
        """Finished segmentations of the open slide in this profile's runs, newest first."""
        slide = self._viewer.slide_path
        results: list[tuple[str, str]] = []
        if slide:
            for seg in self._store.segmentations(self._profile(), Path(slide)):
                if seg.cells.exists():
                    results.append((f"{seg.workflow} · {seg.job_id} · {seg.run_id}", str(seg.cells)))
        self._library.set_results(results)

    def _paint(self, event: Event) -> None:
        viewer = self._viewer
        if event.event is EventName.JOB_STARTED and self._job_type(event) == "segment":
            viewer.cell_overlay.clear()
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
