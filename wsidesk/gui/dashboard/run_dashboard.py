"""Runs of the current profile: progress per run, job and tile; logs; cancel and retry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.events import Event
from wsidesk.core.progress import JobProgress, ProgressBook, RunProgress, format_eta
from wsidesk.core.states import JobState, RunStatus

STATE_COLOURS: dict[str, str] = {
    JobState.PENDING: "#9e9e9e",
    JobState.RUNNING: "#e0a800",
    JobState.SUCCEEDED: "#2e7d32",
    JobState.FAILED: "#c62828",
    JobState.SKIPPED: "#b0b0b0",
    JobState.CANCELLED: "#757575",
    RunStatus.WAITING: "#4fa3e0",
    RunStatus.INTERRUPTED: "#757575",
}
REUSED_COLOUR = "#00838f"  # a job satisfied from the result cache: finished, but nothing was computed
COLUMNS = ("Run / job", "State", "Progress", "Tiles", "Cells", "Rate", "ETA")


class RunDashboard(QWidget):
    """Fed with core events (on the GUI thread); shows only the current profile's runs."""

    cancel_run_requested = Signal(str)
    cancel_profile_requested = Signal(str)
    resume_run_requested = Signal(str)  # run_id of an interrupted run
    retry_branch_requested = Signal(str, str)  # run_id, branch
    selection_changed = Signal(str, str)  # run_id, job_id ("" for a run row)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.book = ProgressBook()
        self._profile = "default"
        self._run_items: dict[str, QTreeWidgetItem] = {}
        self._job_items: dict[tuple[str, str], QTreeWidgetItem] = {}
        self._bars: dict[tuple[str, str], QProgressBar] = {}

        self.profiles_label = QLabel()
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setColumnWidth(0, 260)
        self.tree.setColumnWidth(2, 160)
        self.tree.setUniformRowHeights(True)
        self.tree.currentItemChanged.connect(self._on_selection_changed)
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setPlaceholderText("Select a job to see its log and errors")
        self.cancel_run_button = QPushButton("Cancel run")
        self.cancel_profile_button = QPushButton("Cancel all of this profile's work")
        self.retry_button = QPushButton("Retry branch")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue an interrupted run: finished jobs and tiles are kept")
        self.cancel_run_button.clicked.connect(self._on_cancel_run_clicked)
        self.cancel_profile_button.clicked.connect(self._on_cancel_profile_clicked)
        self.retry_button.clicked.connect(self._on_retry_clicked)
        self.resume_button.clicked.connect(self._on_resume_clicked)

        buttons = QHBoxLayout()
        buttons.addWidget(self.profiles_label, 1)
        for button in (self.resume_button, self.cancel_run_button, self.retry_button, self.cancel_profile_button):
            buttons.addWidget(button)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.tree)
        split.addWidget(self.log)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(split, 1)
        self._update_buttons()

    # -- inputs ---------------------------------------------------------------------------------
    def set_profile(self, profile: str) -> None:
        self._profile = profile
        for run_id, item in self._run_items.items():
            item.setHidden(self.book.runs[run_id].profile != profile)
        self._update_buttons()

    def set_profile_slots(self, active: list[str], queued: list[str]) -> None:
        queue = ", ".join(f"{p} (#{i})" for i, p in enumerate(queued, start=1)) or "none"
        self.profiles_label.setText(f"Active profiles: {', '.join(active) or 'none'} · Waiting: {queue}")

    def expect(self, run_id: str, *, profile: str, workflow: str, jobs: Iterable[tuple[str, str]]) -> None:
        """Show a submitted run with all its jobs before its events arrive (a waiting run counts them)."""
        run = self.book.expect(run_id, profile=profile, workflow=workflow, jobs=jobs)
        self._show_run(run)
        for job in run.jobs.values():
            self._show_job(run, job)

    def add_history(
        self, run_id: str, *, profile: str, workflow: str, status: RunStatus, jobs: Iterable[tuple[str, str, JobState]]
    ) -> None:
        """Show a run from an earlier session as the store last recorded it (no-op if already shown)."""
        if run_id in self.book.runs:
            return
        jobs = list(jobs)
        run = self.book.expect(
            run_id,
            profile=profile,
            workflow=workflow,
            jobs=[(job_id, branch) for job_id, branch, _ in jobs],
            status=status,
            states={job_id: state for job_id, _, state in jobs},
        )
        self._show_run(run)
        for job in run.jobs.values():
            self._show_job(run, job)

    def mark_cancelling(self, run_id: str) -> None:
        """Say "cancelling…" until the run's last job reaches a safe point (up to one batch)."""
        if (run := self.book.cancel_requested(run_id)) is not None:
            self._show_run(run)
            for job in run.jobs.values():
                self._show_job(run, job)

    @Slot(object)
    def on_event(self, event: Event) -> None:
        run = self.book.apply(event)
        self._show_run(run)
        if event.job_id is not None:
            self._show_job(run, run.jobs[event.job_id])
            if self._selected() == (run.run_id, event.job_id):
                self._show_log(run.jobs[event.job_id])

    # -- rendering ------------------------------------------------------------------------------
    def _show_run(self, run: RunProgress) -> None:
        item = self._run_items.get(run.run_id)
        if item is None:
            item = QTreeWidgetItem()
            item.setData(0, Qt.ItemDataRole.UserRole, (run.run_id, None))
            # Newest first: run ids start with their time, so sorting them keeps history in order.
            row = sum(1 for other in self._run_items if other > run.run_id)
            self.tree.insertTopLevelItem(row, item)
            item.setExpanded(run.status.is_active)
            self._run_items[run.run_id] = item
            item.setHidden(run.profile != self._profile)
            if row == 0:
                self.tree.scrollToItem(item)
        item.setText(0, f"{run.workflow}  [{run.run_id}]")
        item.setToolTip(0, f"{run.workflow}\nrun {run.run_id}\nprofile {run.profile}")
        _set_state(item, run.state_text, run.status)
        item.setText(3, f"{run.done_jobs}/{len(run.jobs)} jobs")
        self._update_buttons()

    def _show_job(self, run: RunProgress, job: JobProgress) -> None:
        key = (run.run_id, job.job_id)
        item = self._job_items.get(key)
        if item is None:
            item = QTreeWidgetItem(self._run_items[run.run_id])
            item.setData(0, Qt.ItemDataRole.UserRole, key)
            self._job_items[key] = item
            bar = QProgressBar()
            bar.setTextVisible(True)
            bar.setMaximumHeight(16)
            self._bars[key] = bar
            self.tree.setItemWidget(item, 2, bar)
        item.setText(0, f"{job.branch} / {job.job_id}")
        item.setToolTip(0, f"branch {job.branch}, job {job.job_id}")
        cancelling = run.cancelling and job.state in (JobState.RUNNING, JobState.PENDING)
        _set_state(item, "cancelling…" if cancelling else job.state, job.state)
        if job.reused_from and job.state is JobState.SUCCEEDED:
            item.setText(1, "reused")
            item.setForeground(1, QBrush(QColor(REUSED_COLOUR)))
            item.setToolTip(1, f"reused the finished result of run {job.reused_from}: nothing was recomputed")
        bar = self._bars[key]
        bar.setMaximum(max(job.tiles_total, 1))
        bar.setValue(bar.maximum() if job.state is JobState.SUCCEEDED else job.tiles_done)
        if job.tiles_done or job.last_batch:  # a segmentation streaming batches
            item.setText(3, f"{job.tiles_done}/{job.tiles_total}")
        else:  # planned only (a tissue job) or not started
            item.setText(3, f"{job.tiles_total} planned" if job.tiles_total else "")
        item.setText(4, f"{job.cells:,}" if job.cells else "")
        running = job.state is JobState.RUNNING
        item.setText(5, f"{job.rate:.1f} tiles/s" if running and job.rate else "")
        item.setText(6, format_eta(job.eta) if running else "")

    def _show_log(self, job: JobProgress) -> None:
        self.log.setPlainText("\n".join(job.log))

    # -- selection and controls -------------------------------------------------------------------
    def _selected(self) -> tuple[str, str | None] | None:
        item = self.tree.currentItem()
        if item is None:
            return None
        selected: tuple[str, str | None] = item.data(0, Qt.ItemDataRole.UserRole)
        return selected

    def select(self, run_id: str, job_id: str | None = None) -> None:
        item = self._run_items[run_id] if job_id is None else self._job_items[(run_id, job_id)]
        self.tree.setCurrentItem(item)

    @Slot()
    def _on_selection_changed(self, *_: Any) -> None:
        selected = self._selected()
        if selected and selected[1] is not None:
            self._show_log(self.book.runs[selected[0]].jobs[selected[1]])
        else:
            self.log.clear()
        self._update_buttons()
        if selected:
            self.selection_changed.emit(selected[0], selected[1] or "")

    def _update_buttons(self) -> None:
        selected = self._selected()
        run = self.book.runs.get(selected[0]) if selected else None
        job = run.jobs.get(selected[1]) if run and selected and selected[1] else None
        self.cancel_run_button.setEnabled(bool(run and run.status.is_active and not run.cancelling))
        self.resume_button.setEnabled(bool(run and run.status is RunStatus.INTERRUPTED))
        self.retry_button.setEnabled(
            bool(
                run
                and job
                and run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
                and job.state is not JobState.SUCCEEDED
            )
        )
        self.cancel_profile_button.setEnabled(
            any(r.profile == self._profile and r.status.is_active for r in self.book.runs.values())
        )

    @Slot()
    def _on_cancel_run_clicked(self) -> None:
        if selected := self._selected():
            self.mark_cancelling(selected[0])
            self.cancel_run_requested.emit(selected[0])

    @Slot()
    def _on_cancel_profile_clicked(self) -> None:
        for run in list(self.book.runs.values()):
            if run.profile == self._profile:
                self.mark_cancelling(run.run_id)
        self.cancel_profile_requested.emit(self._profile)

    @Slot()
    def _on_resume_clicked(self) -> None:
        if selected := self._selected():
            self.resume_run_requested.emit(selected[0])

    @Slot()
    def _on_retry_clicked(self) -> None:
        selected = self._selected()
        if selected and selected[1]:
            self.retry_branch_requested.emit(selected[0], self.book.runs[selected[0]].jobs[selected[1]].branch)


def _set_state(item: QTreeWidgetItem, text: str, state: str) -> None:
    item.setText(1, str(text))
    item.setForeground(1, QBrush(QColor(STATE_COLOURS.get(state, "#000000"))))
