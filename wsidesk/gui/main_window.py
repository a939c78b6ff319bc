"""Main window: library (left), viewer and graph editor (centre), layers (right), dashboard (bottom)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from wsidesk.core.errors import WsideskError
from wsidesk.core.scheduler.executors import Executor
from wsidesk.core.scheduler.runner import Runner, pid_alive
from wsidesk.core.slide import is_slide
from wsidesk.core.slide import open_slide as open_slide_file
from wsidesk.core.slide.protocol import looks_grayscale, objective_power
from wsidesk.core.states import JobState, RunStatus
from wsidesk.core.store import Store
from wsidesk.core.workflow.io import loads_workflow
from wsidesk.core.workflow.model import Workflow
from wsidesk.core.workflow.single import segment_workflow
from wsidesk.gui.annotations_panel import AnnotationsPanel, roi_value
from wsidesk.gui.bridges import EventBridge
from wsidesk.gui.dashboard import RunDashboard, StatsPanel
from wsidesk.gui.graph_editor import GraphEditor
from wsidesk.gui.graph_editor.editor import EditorState
from wsidesk.gui.live_results import LiveResults
from wsidesk.gui.panels import LayersPanel, LibraryPanel
from wsidesk.gui.profiles import ProfileSwitcher
from wsidesk.gui.provenance import ProvenancePanel, offer_relink
from wsidesk.gui.results import ResultsWorkbench
from wsidesk.gui.segment_dialog import SegmentDialog, detected_device
from wsidesk.gui.settings_dialog import ExecutorSettings, SettingsDialog
from wsidesk.gui.slide_info import SlideInfoPanel
from wsidesk.gui.status_text import magnification_text, position_text
from wsidesk.gui.viewer import SlideView
from wsidesk.gui.viewer.display_controls import DisplayControls
from wsidesk.gui.viewer.slide_view import ZOOM_STEP

logger = logging.getLogger(__name__)

SLIDE_FILTER = "Slides (*.svs *.ndpi *.mrxs *.tif *.tiff *.scn *.vms *.vmu *.bif *.svslide *.dcm);;All files (*)"
WORKFLOW_FILTER = "Workflows (*.yaml *.yml)"
WORKFLOW_SUFFIXES = (".yaml", ".yml")
MAX_RECENT = 10
HISTORY_RUNS = 50  # runs of earlier sessions listed in the Runs panel, newest first
GRAYSCALE_WARNING = (
    "{name} looks grayscale (all colour channels equal): the segmentation models expect RGB brightfield "
    "(H&E) slides and will likely find no cells on it."
)


@dataclass(slots=True)
class _ProfileView:
    """What a profile had on screen when another profile took over the window."""

    slide: str | None = None
    editor: EditorState | None = None


@dataclass(frozen=True, slots=True)
class Services:
    """What the window works with; built by wsidesk.app."""

    store: Store
    runner: Runner
    executor: Executor  # the GUI's QtExecutor, or a Dask cluster's client
    bridge: EventBridge
    settings: QSettings
    executor_settings: ExecutorSettings = ExecutorSettings()
    executor_warning: str | None = None  # why the chosen executor could not be used


class MainWindow(QMainWindow):
    def __init__(self, services: Services, *, profile: str) -> None:
        super().__init__()
        self.services = services
        self.store, self.runner, self.settings = services.store, services.runner, services.settings
        self.setWindowTitle("wsidesk")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)

        self.viewer = SlideView()
        self.editor = GraphEditor()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.viewer, "Slide")
        self.tabs.addTab(self.editor, "Workflow")
        self.setCentralWidget(self.tabs)

        self.library = LibraryPanel()
        self.layers = LayersPanel(self.viewer)
        self.annotations = AnnotationsPanel(self.viewer, lambda: self.store.layout.profile_dir(self.profiles.current))
        self.display_controls = DisplayControls()
        self.slide_info = SlideInfoPanel()
        self.dashboard = RunDashboard()
        self.stats = StatsPanel(self.runner.snapshot, lambda: self.dashboard.book.tiles_done_total)
        bottom = QTabWidget()
        bottom.addTab(self.dashboard, "Runs")
        bottom.addTab(self.stats, "Scheduler statistics")
        self.provenance = ProvenancePanel(lambda run_id: self.runner.summary(self.profiles.current, run_id))
        bottom.addTab(self.provenance, "Provenance")
        docks = [
            self._dock("Library", self.library, Qt.DockWidgetArea.LeftDockWidgetArea),
            self._dock("Layers", self.layers, Qt.DockWidgetArea.RightDockWidgetArea),
            self._dock("Runs", bottom, Qt.DockWidgetArea.BottomDockWidgetArea),
        ]
        view_dock = self._dock("View", self.display_controls, Qt.DockWidgetArea.RightDockWidgetArea)
        info_dock = self._dock("Slide info", self.slide_info, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(docks[1], info_dock)
        self.splitDockWidget(docks[1], view_dock, Qt.Orientation.Vertical)
        self.tabifyDockWidget(
            docks[1], self._dock("Annotations", self.annotations, Qt.DockWidgetArea.RightDockWidgetArea)
        )
        docks[1].raise_()
        # The slide gets the room; side panels start narrow and the dashboard short.
        self.resizeDocks(docks[:2], [250, 250], Qt.Orientation.Horizontal)
        self.resizeDocks(docks[2:], [260], Qt.Orientation.Vertical)

        self.profiles = ProfileSwitcher(self.store, profile)
        self._shown_profile: str | None = None
        self._profile_views: dict[str, _ProfileView] = {}
        self._grayscale_slide: str | None = None  # the open slide, when it looks grayscale
        self.live = LiveResults(
            self.store,
            viewer=self.viewer,
            editor=self.editor,
            dashboard=self.dashboard,
            library=self.library,
            profile=lambda: self.profiles.current,
            parent=self,
        )
        self.workbench = ResultsWorkbench(self.viewer, self.settings, lambda: self.profiles.current, self)
        self.workbench.message.connect(lambda text: self.statusBar().showMessage(text, 15_000))
        self._results_docks = self.workbench.add_docks(self)
        self.tabifyDockWidget(docks[2], self._results_docks[0])  # the table shares the bottom with Runs
        docks[2].raise_()
        self._build_actions()
        self._build_status_bar()
        self._wire()
        self._restore_window_state()
        self.workbench.update_docks()  # hidden until a result opens, whatever the saved state showed
        self._on_profile_changed(profile)

    # -- construction -------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(
        self,
        text: str,
        slot: Any,
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.open_slide_action = self._action("Open slide…", self._on_open_slide, QKeySequence.StandardKey.Open)
        self.open_workflow_action = self._action("Open workflow…", self._on_open_workflow, "Ctrl+Shift+O")
        self.save_action = self._action("Save workflow", self._on_save, QKeySequence.StandardKey.Save)
        self.save_as_action = self._action("Save workflow as…", self._on_save_as, QKeySequence.StandardKey.SaveAs)
        self.quit_action = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.settings_action = self._action(
            "Settings…",
            self._on_settings,
            QKeySequence.StandardKey.Preferences,
            "Where jobs run: this computer or Dask",
        )
        self.run_action = self._action("Run workflow", self.editor.request_run, "Ctrl+R", "Submit the edited workflow")
        self.segment_action = self._action(
            "Segment this slide…", self._on_segment_slide, "Ctrl+Shift+R", "Choose a model and settings, then segment"
        )
        self.cancel_action = self._action(
            "Cancel this profile's work", lambda: self.runner.cancel_profile(self.profiles.current), "Ctrl+."
        )
        self.zoom_in_action = self._action("Zoom in", lambda: self._zoom(ZOOM_STEP), QKeySequence.StandardKey.ZoomIn)
        self.zoom_out_action = self._action(
            "Zoom out", lambda: self._zoom(1 / ZOOM_STEP), QKeySequence.StandardKey.ZoomOut
        )
        # Plain +/- zoom wherever the focus is in the window (text fields still take them as text).
        zoom_in, zoom_out = QKeySequence.StandardKey.ZoomIn, QKeySequence.StandardKey.ZoomOut
        self.zoom_in_action.setShortcuts([QKeySequence(zoom_in), QKeySequence("+"), QKeySequence("=")])
        self.zoom_out_action.setShortcuts([QKeySequence(zoom_out), QKeySequence("-")])
        self.fit_action = self._action("Zoom to fit", self.viewer.zoom_to_fit, "Ctrl+0")

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([self.open_slide_action, self.open_workflow_action])
        self.recent_menu = file_menu.addMenu("Open recent")
        file_menu.addSeparator()
        file_menu.addActions([self.save_action, self.save_as_action])
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addAction(self.quit_action)
        view_menu = menu.addMenu("&View")
        view_menu.addActions([self.zoom_in_action, self.zoom_out_action, self.fit_action])
        view_menu.addSeparator()
        for dock in self.findChildren(QDockWidget):
            view_menu.addAction(dock.toggleViewAction())
        run_menu = menu.addMenu("&Run")
        run_menu.addActions([self.run_action, self.segment_action, self.cancel_action])
        regions = self.annotations
        menu.addMenu("&Annotations").addActions(
            [
                regions.import_action,
                regions.export_action,
                regions.segment_action,
                regions.undo_action,
                regions.redo_action,
            ]
        )

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("toolbar_main")
        toolbar.addActions([self.open_slide_action, self.open_workflow_action, self.save_action])
        toolbar.addSeparator()
        toolbar.addActions([self.run_action, self.segment_action, self.cancel_action])
        toolbar.addSeparator()
        toolbar.addActions([self.zoom_in_action, self.zoom_out_action, self.fit_action])
        toolbar.addSeparator()
        toolbar.addWidget(self.profiles)
        toolbar.addSeparator()
        toolbar.addWidget(self.workbench.export_button)

    def _zoom(self, factor: float) -> None:
        """Zoom what the centre shows: the slide, or the workflow graph."""
        if self.tabs.currentWidget() is self.editor:
            self.editor.view.zoom_by(factor)
        else:
            self.viewer.zoom_by(factor)

    def _build_status_bar(self) -> None:
        self.mpp_label, self.zoom_label, self.cursor_label = QLabel(), QLabel(), QLabel()
        self.zoom_label.setToolTip("magnification on screen (the scanner's objective power × zoom)")
        self.executor_label = QLabel(self.services.executor_settings.describe())
        warning = self.services.executor_warning
        if warning:
            self.executor_label.setText("jobs: this computer (cluster unreachable)")
            self.executor_label.setStyleSheet("color: #b00020")
            self.executor_label.setToolTip(warning)
            self.statusBar().showMessage(warning, 20_000)
        for label in (self.executor_label, self.cursor_label, self.zoom_label, self.mpp_label):
            self.statusBar().addPermanentWidget(label)

    def _wire(self) -> None:
        # Queued even from the GUI thread: `runner.submit()` emits its first events before it returns,
        # and they must reach LiveResults after `track()` has said which run and workflow they belong to.
        self.services.bridge.event_received.connect(self.live.on_event, Qt.ConnectionType.QueuedConnection)
        self.live.source_changed.connect(self.layers.set_source)
        self.live.result_finished.connect(self.show_result)  # a run finished on the shown slide: open it
        self.live.profile_slots_changed.connect(self._refresh_profile_slots)
        self.viewer.files_dropped.connect(self.open_paths)
        self.viewer.cursor_moved.connect(
            lambda x, y: self.cursor_label.setText(position_text(x, y, getattr(self.viewer.reader, "mpp", None)))
        )
        self.display_controls.display_changed.connect(self.viewer.set_display)
        self.viewer.zoom_changed.connect(self._on_zoom_changed)
        self.viewer.slide_opened.connect(self._on_slide_opened)
        self.viewer.slide_closed.connect(self._on_slide_closed)
        self.viewer.tile_failed.connect(lambda message: self.statusBar().showMessage(message, 5000))
        self.annotations.message.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        self.annotations.segment_requested.connect(self.segment_with_dialog)
        self.library.slide_activated.connect(self.open_slide)
        self.library.result_activated.connect(self.show_result)
        self.library.add_requested.connect(self._on_open_slide)
        self.profiles.profile_changed.connect(self._on_profile_changed)
        self.editor.run_requested.connect(self.submit_workflow)
        self.editor.run_refused.connect(lambda why: self.statusBar().showMessage(why, 8000))
        self.editor.path_changed.connect(lambda path: self._remember_recent(path))
        self.editor.modified_changed.connect(lambda _: self._update_title())
        self.dashboard.cancel_run_requested.connect(self.runner.cancel_run)
        self.dashboard.cancel_profile_requested.connect(self.runner.cancel_profile)
        self.dashboard.resume_run_requested.connect(self.resume_run)
        self.dashboard.retry_branch_requested.connect(self._on_retry_branch)
        self.dashboard.selection_changed.connect(self.provenance.show_run)
        self.provenance.rerun_requested.connect(self.rerun)
        self._slots_timer = QTimer(self)
        self._slots_timer.setInterval(1000)
        self._slots_timer.timeout.connect(self._refresh_profile_slots)
        self._slots_timer.start()

    # -- opening files --------------------------------------------------------------------------------
    @Slot(list)
    def open_paths(self, paths: list[str]) -> None:
        """Slides join the profile's library (the first one opens); a workflow opens in the editor."""
        slides = [p for p in paths if Path(p).suffix.lower() not in WORKFLOW_SUFFIXES and is_slide(p)]
        workflows = [p for p in paths if Path(p).suffix.lower() in WORKFLOW_SUFFIXES]
        rejected = [p for p in paths if p not in slides and p not in workflows]
        # Only slides that really open join the library: the first one in the viewer, the others
        # are opened (headers and a thumbnail level only) and closed again.
        opened: list[Path] = []
        failures: list[str] = []
        for index, path in enumerate(slides):
            resolved = Path(path).resolve()
            why = self._open_first(str(resolved)) if index == 0 else _check_slide(str(resolved))
            if why is None:
                opened.append(resolved)
            else:
                failures.append(why)
        for resolved in opened:
            self.store.add_slide(self.profiles.current, resolved)
        if opened:
            self._reload_library()
        if failures:
            QMessageBox.warning(
                self, "Cannot open slide", "\n\n".join(failures) + "\n\nIt was not added to the library."
            )
        if workflows:
            self.open_workflow(workflows[0])
        if rejected:
            names = ", ".join(Path(p).name for p in rejected)
            QMessageBox.information(
                self,
                "Not opened",
                f"{names}: not a slide OpenSlide can read, nor a workflow (.yaml). Nothing was changed.",
            )

    def open_slide(self, path: str) -> bool:
        why = self._open_first(path)
        if why is not None:
            QMessageBox.warning(self, "Cannot open slide", why)
        return why is None

    def _open_first(self, path: str) -> str | None:
        """Show the slide; why it could not be opened, or None."""
        try:
            self.viewer.open_slide(path)
        except WsideskError as exc:
            return str(exc)
        self.tabs.setCurrentWidget(self.viewer)
        self._remember_recent(path)
        return None

    def open_workflow(self, path: str) -> None:
        try:
            self.editor.load_workflow(path)
        except WsideskError as exc:
            QMessageBox.warning(self, "Cannot open workflow", str(exc))
            return
        self.tabs.setCurrentWidget(self.editor)
        self._remember_recent(path)

    def show_result(self, cells_path: str) -> None:
        """Show a finished segmentation (its cell store, else cells.geojson) in the results workbench."""
        from wsidesk.core.tiling.grid import TilePlan

        for overlay in self.viewer.overlays.values():
            overlay.clear()  # nothing of what was shown before stays beside the result
        try:
            table = self.workbench.open_result(Path(cells_path).parent)
        except (WsideskError, OSError, ValueError) as exc:
            QMessageBox.warning(self, "Cannot show result", f"{cells_path}: {exc}")
            return
        tiles = Path(cells_path).with_name("tiles.json")
        if tiles.exists():
            # The job wrote each tile's final state (done, failed, skipped): shown as they are.
            self.viewer.tile_overlay.set_plan(TilePlan.read_json(tiles))
        self._results_docks[0].raise_()
        self.resizeDocks([self._results_docks[0]], [300], Qt.Orientation.Vertical)  # room for the table
        source = self.live.result_source(str(Path(cells_path)))
        if source is None:  # not listed: name it by its folder (<run>/<job>/cells.geojson)
            source = (Path(cells_path).parent.parent.name, Path(cells_path).parent.name)
        self.live.set_source(source, "finished")
        if not table.note:  # a fallback to the GeoJSON keeps the workbench's longer message
            self.statusBar().showMessage(f"{len(table):,} cells from {cells_path}", 8000)

    @Slot()
    def _on_open_slide(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open slides", self._last_dir(), SLIDE_FILTER)
        if paths:
            self.open_paths(paths)

    @Slot()
    def _on_open_workflow(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open workflow", str(self._workflows_dir()), WORKFLOW_FILTER)
        if path:
            self.open_workflow(path)

    @Slot()
    def _on_save(self) -> None:
        if self.editor.path is None:
            self._on_save_as()
            return
        self._save_to(None)

    @Slot()
    def _on_save_as(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save workflow", str(self._workflows_dir()), WORKFLOW_FILTER)
        if path:
            if Path(path).suffix.lower() not in WORKFLOW_SUFFIXES:
                path += ".yaml"  # Open lists and Recent reopens only .yaml/.yml files
            self._save_to(path)

    def _save_to(self, path: str | None) -> None:
        try:
            saved = self.editor.save(path)
        except WsideskError as exc:
            QMessageBox.warning(self, "Cannot save workflow", str(exc))
            return
        self.statusBar().showMessage(f"saved {saved}", 5000)

    # -- running ----------------------------------------------------------------------------------------
    @Slot(object)
    def submit_workflow(self, workflow: Workflow) -> str | None:
        source = Path(self.editor.path) if self.editor.path and not self.editor.is_modified else None
        if not self._confirm_colour(workflow):
            return None
        try:
            run_id = self.runner.submit(workflow, profile=self.profiles.current, source=source)
        except WsideskError as exc:
            QMessageBox.warning(self, "Cannot run workflow", str(exc))
            return None
        self.live.track(run_id, workflow, in_editor=True)
        self.statusBar().showMessage(f"run {run_id} submitted", 5000)
        return run_id

    @Slot()
    def _on_segment_slide(self) -> str | None:
        return self.segment_with_dialog(None)

    @Slot(list)
    def segment_with_dialog(self, roi: list[str] | None) -> str | None:
        """The Segment dialog for the open slide (only inside the saved regions `roi` names, if given)."""
        path = self.viewer.slide_path
        if path is None:
            self.statusBar().showMessage("open a slide first", 5000)
            return None
        from wsidesk.core.segment.estimate import installed_models
        from wsidesk.core.segment.models import ModelStore, models_root

        try:
            models = installed_models(ModelStore(models_root(self.store.layout.models_dir)))
            profile_dir = self.store.layout.profile_dir(self.profiles.current)
            dialog = SegmentDialog(
                path, models, detected_device=detected_device(), roi=roi, profile_dir=profile_dir, parent=self
            )
        except WsideskError as exc:
            QMessageBox.warning(self, "Cannot segment", str(exc))
            return None
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        params = dialog.params()
        if roi:
            params["roi"] = roi_value(roi)  # the job param is one comma-separated string
        return self.segment_slide(params)

    def segment_slide(self, params: dict[str, Any]) -> str | None:
        """Submit one segment job with `params` on the open slide."""
        path = self.viewer.slide_path
        if path is None:
            return None
        workflow = segment_workflow(Path(path), params)
        if not self._confirm_colour(workflow):
            return None
        try:
            run_id = self.runner.submit(workflow, profile=self.profiles.current)
        except WsideskError as exc:
            QMessageBox.warning(self, "Cannot segment", str(exc))
            return None
        self.live.track(run_id, workflow)
        return run_id

    def _confirm_colour(self, workflow: Workflow) -> bool:
        """Ask before segmenting the open slide when it looks grayscale (models expect RGB brightfield)."""
        slide = self._grayscale_slide
        if slide is None:
            return True
        segments_it = any(
            job.type == "segment" and (image := workflow.image_path(job)) is not None and str(image.resolve()) == slide
            for _, job in workflow.jobs()
        )
        if not segments_it:
            return True
        answer = QMessageBox.question(
            self, "Grayscale slide", GRAYSCALE_WARNING.format(name=Path(slide).name) + "\n\nSegment it anyway?"
        )
        return answer == QMessageBox.StandardButton.Yes

    @Slot(str)
    def resume_run(self, run_id: str) -> str | None:
        """Continue an interrupted run of this profile (finished jobs and tiles are kept)."""
        profile = self.profiles.current
        try:
            record = self.store.get_run(profile, run_id)
            text = (record.run_dir / "workflow.yaml").read_text(encoding="utf-8")
            workflow = loads_workflow(text, file=record.source or record.run_dir / "workflow.yaml")
            self.runner.resume(run_id, profile=profile)
        except (WsideskError, OSError) as exc:
            QMessageBox.warning(self, "Cannot resume", str(exc))
            return None
        self.live.track(run_id, workflow)
        self.statusBar().showMessage(f"run {run_id} resumed", 5000)
        return run_id

    def _load_history(self, profile: str) -> None:
        """The profile's runs from the store: what earlier sessions ran, and what they left unfinished."""
        mine = os.getpid()
        for record in self.store.list_runs(profile)[-HISTORY_RUNS:]:
            if record.run_id in self.dashboard.book.runs:
                continue
            status = record.status
            if status is RunStatus.RUNNING and (record.owner_pid == mine or not pid_alive(record.owner_pid)):
                status = RunStatus.INTERRUPTED  # its process died (or quit) before the run finished
            jobs = [(job.job_id, job.branch, JobState(job.state)) for job in self.store.jobs(record.run_id)]
            self.dashboard.add_history(
                record.run_id, profile=profile, workflow=record.workflow, status=status, jobs=jobs
            )

    @Slot(str, bool)
    def rerun(self, run_id: str, edit: bool) -> str | None:  # noqa: FBT001 - Qt signal argument
        """Open a finished run's workflow (its own copy: the params it ran with) in the editor; run it
        again unless `edit` (then the user changes it and presses Run). Unchanged jobs are reused."""
        profile = self.profiles.current
        try:
            record = self.store.get_run(profile, run_id)
            text = (record.run_dir / "workflow.yaml").read_text(encoding="utf-8")
            workflow = loads_workflow(text, file=record.source or record.run_dir / "workflow.yaml")
        except (WsideskError, OSError) as exc:
            QMessageBox.warning(self, "Cannot re-run", str(exc))
            return None
        self.editor.new_workflow()  # forget the editor's file: this is the run's workflow, not that file
        self.editor.set_workflow(workflow)
        self.tabs.setCurrentWidget(self.editor)
        if edit:
            self.editor.show_message(f"Workflow of run {run_id}: change it, then Run")
            return None
        return self.submit_workflow(workflow)

    @Slot(str, str)
    def _on_retry_branch(self, run_id: str, branch: str) -> None:
        try:
            self.runner.retry_branch(run_id, branch, profile=self.profiles.current)
        except WsideskError as exc:
            QMessageBox.warning(self, "Cannot retry", str(exc))

    @Slot()
    def _on_slide_closed(self, *_: Any) -> None:
        self.slide_info.set_reader(None)
        self.cursor_label.clear()
        self.mpp_label.clear()
        self.zoom_label.clear()

    def _refresh_profile_slots(self) -> None:
        snapshot = self.runner.snapshot()
        self.dashboard.set_profile_slots(snapshot["active_profiles"], snapshot["queued_profiles"])

    @Slot()
    def _on_settings(self) -> None:
        dialog = SettingsDialog(
            ExecutorSettings.load(self.settings, workers=self.services.executor_settings.workers), self
        )
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            dialog.settings().save(self.settings)
            self.statusBar().showMessage(f"saved; from the next start, {dialog.settings().describe()}", 8000)

    # -- profiles, library, results ---------------------------------------------------------------------
    @Slot(str)
    def _on_profile_changed(self, profile: str) -> None:
        """Show only `profile`'s slide, workflow, overlays and runs; the other profile's work goes on."""
        previous, self._shown_profile = self._shown_profile, profile
        self.settings.setValue("last_profile", profile)
        if previous is not None and previous != profile:
            self._profile_views[previous] = _ProfileView(self.viewer.slide_path, self.editor.stash())
            view = self._profile_views.get(profile, _ProfileView())
            slides = {str(p) for p in self.store.slides(profile)}
            if view.slide is None or view.slide not in slides or self._open_first(view.slide) is not None:
                self.viewer.close_slide()
            self.editor.restore(view.editor)
            self.live.restore_editor_states()
            self.tabs.setCurrentWidget(self.viewer)
        self._load_history(profile)
        self.dashboard.set_profile(profile)
        self._reload_library()
        self._reload_recent_menu()
        self._update_title()

    def _reload_library(self) -> None:
        self.library.set_slides(self.store.slides(self.profiles.current), current=self.viewer.slide_path)
        self.live.reload_results()

    @Slot(str)
    def _on_slide_opened(self, path: str) -> None:
        reader = self.viewer.reader
        mpp = getattr(reader, "mpp", None)
        self.mpp_label.setText(f"{mpp:.3f} µm/px" if mpp else "µm/px unknown")
        self.slide_info.set_reader(reader)
        self._on_zoom_changed(self.viewer.scale_factor())
        thumbnail = self.viewer.thumbnail_rgb
        grey = thumbnail is not None and looks_grayscale(thumbnail)
        self._grayscale_slide = str(Path(path).resolve()) if grey else None
        if grey:
            self.statusBar().showMessage(GRAYSCALE_WARNING.format(name=Path(path).name), 30_000)
        offer_relink(self, self.store, self.profiles.current, str(Path(path).resolve()))  # a moved slide's results
        self._reload_library()
        self._update_title()

    @Slot(float)
    def _on_zoom_changed(self, scale: float) -> None:
        reader = self.viewer.reader
        self.zoom_label.setText(magnification_text(scale, objective_power(reader) if reader is not None else None))

    def _update_title(self) -> None:
        parts = ["wsidesk", f"[{self.profiles.current}]"]
        if self.viewer.slide_path:
            parts.append(Path(self.viewer.slide_path).name)
        if self.editor.path:
            parts.append(Path(self.editor.path).name + (" *" if self.editor.is_modified else ""))
        self.setWindowTitle(" — ".join(parts))

    # -- settings ---------------------------------------------------------------------------------------
    def _workflows_dir(self) -> Path:
        folder = self.store.layout.profile_dir(self.profiles.current) / "workflows"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _last_dir(self) -> str:
        recent = self._recent()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def _recent_key(self) -> str:
        return f"recent/{self.profiles.current}"

    def _recent(self) -> list[str]:
        value = self.settings.value(self._recent_key(), [])
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else []

    def _remember_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self._recent() if p != path]
        self.settings.setValue(self._recent_key(), recent[:MAX_RECENT])
        self._reload_recent_menu()
        self._update_title()

    def _reload_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self._recent():
            self.recent_menu.addAction(Path(path).name, lambda p=path: self.open_paths([p]))
        self.recent_menu.setEnabled(bool(self._recent()))

    def _restore_window_state(self) -> None:
        if geometry := self.settings.value("window/geometry"):
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 950)
        if state := self.settings.value("window/state"):
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self.runner.is_idle():
            answer = QMessageBox.question(
                self,
                "Work is running",
                "Runs are still working. Quit now and resume them later?\n\n"
                "Finished tiles are kept; after the next start, select an interrupted run in the Runs panel "
                "and press Resume (or run the same workflow file again).",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        if self.editor.is_modified:
            answer = QMessageBox.question(self, "Unsaved workflow", "The workflow has unsaved changes. Quit anyway?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self._slots_timer.stop()
        self.stats.stop()
        self.viewer.shutdown()
        super().closeEvent(event)

    # -- drag and drop on the whole window ---------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)


def _check_slide(path: str) -> str | None:
    """Why the slide cannot be opened, or None (opened and closed again)."""
    try:
        reader = open_slide_file(path)
        try:
            reader.thumbnail(64)  # headers can be intact while the pixels are not
        finally:
            reader.close()
    except WsideskError as exc:
        return str(exc)
    return None
