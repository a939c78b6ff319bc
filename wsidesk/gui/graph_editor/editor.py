"""GraphEditor: toolbar palette + canvas + inspector around one WorkflowDocument."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QKeyCombination, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.errors import WorkflowError
from wsidesk.core.workflow import JOB_TYPES, Workflow, load_workflow, save_workflow
from wsidesk.gui.graph_editor.document import WorkflowDocument
from wsidesk.gui.graph_editor.inspector import InspectorPanel
from wsidesk.gui.graph_editor.items import NodeItem
from wsidesk.gui.graph_editor.model import CanvasDraft, first_problem
from wsidesk.gui.graph_editor.scene import GraphView, WorkflowScene

logger = logging.getLogger(__name__)

MESSAGE_MS = 6000
_MESSAGE_STYLE = (
    "QLabel { background: #fff4e5; color: #8a4b00; border: 1px solid #f0b46a; border-radius: 4px; padding: 4px 8px; }"
)


class HistoryAction(QAction):
    """Undo or Redo with a fixed label (the toolbar does not jump); the tooltip names the edit.

    Its own slots receive the stack's signals, so the connections die with the action.
    """

    def __init__(self, verb: str, stack: QUndoStack, parent: QObject) -> None:
        super().__init__(verb, parent)
        self._verb = verb
        undo = verb == "Undo"
        self.triggered.connect(stack.undo if undo else stack.redo)
        (stack.canUndoChanged if undo else stack.canRedoChanged).connect(self.setEnabled)
        (stack.undoTextChanged if undo else stack.redoTextChanged).connect(self._on_text_changed)
        self.setEnabled(stack.canUndo() if undo else stack.canRedo())
        self._on_text_changed(stack.undoText() if undo else stack.redoText())

    def _on_text_changed(self, what: str) -> None:
        self.setToolTip(f"{self._verb} {what.lower()}" if what else self._verb)


@dataclass(frozen=True, slots=True)
class EditorState:
    """A stashed editor: the edited workflow, its file and whether it had unsaved edits."""

    workflow: Workflow
    path: Path | None
    modified: bool = False


class GraphEditor(QWidget):
    """Edits one workflow. Every change is undoable; `is_modified` follows the undo stack."""

    run_requested = Signal(object)  # Workflow
    edit_refused = Signal(str)
    run_refused = Signal(str)
    modified_changed = Signal(bool)
    path_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = WorkflowDocument(self)
        self._path: Path | None = None
        self.scene = WorkflowScene(self.document, self)
        self.view = GraphView(self.scene, self)
        self.inspector = InspectorPanel(self.document, self)

        self.toolbar = QToolBar("Workflow editor", self)
        self.branch_combo = QComboBox()
        self.branch_combo.setMinimumContentsLength(12)
        self.branch_combo.setToolTip("branch that new jobs go to")
        self._build_actions()

        self.message_label = QLabel()
        self.message_label.setStyleSheet(_MESSAGE_STYLE)
        self.message_label.setWordWrap(True)
        self.message_label.hide()
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(self.message_label.hide)
        self.status_label = QLabel()
        self.status_label.setStyleSheet("color: #607080; padding: 2px 6px;")

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(self.inspector)
        splitter.setStretchFactor(0, 1)
        splitter.setSizes([900, 320])
        bottom = QHBoxLayout()
        bottom.addWidget(self.message_label, 1)
        bottom.addWidget(self.status_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toolbar)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)

        self.document.changed.connect(self._on_document_changed)
        self.document.edit_refused.connect(self._on_edit_refused)
        self.document.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self.scene.selectionChanged.connect(self._on_selection_changed)
        self.scene.current_branch_changed.connect(self._on_current_branch_changed)
        self.branch_combo.currentTextChanged.connect(self._on_branch_combo_changed)
        self._on_document_changed()

    # ---- toolbar ----------------------------------------------------------------------------

    def _action(self, text: str, slot: object, *, tip: str = "", keys: Iterable[QKeySequence] = ()) -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip or text)
        action.triggered.connect(slot)
        keys = list(keys)
        if keys:
            action.setShortcuts(keys)
            # Only while the editor has focus, so the main window keeps its own shortcuts.
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)
        return action

    def _build_actions(self) -> None:
        stack = self.document.undo_stack
        tb = self.toolbar
        self.add_job_actions: dict[str, QAction] = {}
        for job_type in JOB_TYPES:
            action = self._action(
                f"+ {job_type.capitalize()}",
                lambda *_, t=job_type: self.add_job(t),
                tip=f"add a {job_type} job to the current branch: {JOB_TYPES[job_type].summary}",
            )
            self.add_job_actions[job_type] = action
            tb.addAction(action)
        tb.addSeparator()
        tb.addWidget(QLabel(" Branch "))
        tb.addWidget(self.branch_combo)
        self.add_branch_action = self._action(
            "+ Branch", lambda *_: self.add_branch(), tip="add an empty branch (lane)"
        )
        self.rename_branch_action = self._action(
            "Rename…", self._on_rename_branch_triggered, tip="rename the current branch"
        )
        self.remove_branch_action = self._action(
            "Remove", self._on_remove_branch_triggered, tip="delete the current branch and its jobs"
        )
        for a in (self.add_branch_action, self.rename_branch_action, self.remove_branch_action):
            tb.addAction(a)
        tb.addSeparator()
        self.delete_action = self._action(
            "Delete", lambda *_: self.delete_selected(), tip="delete the selected jobs and edges (Del)"
        )
        self.undo_action = HistoryAction("Undo", stack, self)
        self.redo_action = HistoryAction("Redo", stack, self)
        self.undo_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Undo)])
        shift_z = QKeyCombination(Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_Z)
        self.redo_action.setShortcuts([QKeySequence(shift_z), QKeySequence(QKeySequence.StandardKey.Redo)])
        for a in (self.undo_action, self.redo_action):
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(a)
        self.fit_action = self._action("Fit", lambda *_: self.view.fit(), tip="show the whole workflow")
        self.run_action = self._action(
            "▶ Run", lambda *_: self.request_run(), tip="submit this workflow to the scheduler"
        )
        for a in (self.delete_action, self.undo_action, self.redo_action, self.fit_action):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.run_action)

    # ---- documents and files ----------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def undo_stack(self) -> QUndoStack:
        return self.document.undo_stack

    @property
    def is_modified(self) -> bool:
        return not self.document.undo_stack.isClean()

    def new_workflow(self, name: str = "Untitled workflow") -> None:
        draft = CanvasDraft(name=name)
        draft.add_branch("branch_1")
        self._path = None
        self._reset(draft)

    def set_workflow(self, wf: Workflow) -> None:
        """Show `wf` (unsaved edits are dropped); relative images resolve against wf.base_dir."""
        self._reset(CanvasDraft.from_workflow(wf))

    def stash(self) -> EditorState:
        """What the editor shows, to bring back with ``restore`` (e.g. after another profile's turn)."""
        return EditorState(self.to_workflow(), self._path, modified=self.is_modified)

    def restore(self, state: EditorState | None) -> None:
        """Show a stashed workflow (its undo history is not kept); None: a new, empty workflow."""
        if state is None:
            self.new_workflow()
            return
        self._path = state.path
        self.set_workflow(state.workflow)
        if state.modified:
            self.undo_stack.resetClean()  # still unsaved: saving or quitting asks as before

    def load_workflow(self, path: str | Path) -> Workflow:
        """Read and validate a YAML file (missing images are allowed: they show on the nodes)."""
        wf = load_workflow(path, check_images=False)
        self._path = Path(path)
        self.set_workflow(wf)
        self.path_changed.emit(str(self._path))
        return wf

    def _reset(self, draft: CanvasDraft) -> None:
        self.scene.clear_job_states()
        self.inspector.show_job(None)
        self.document.reset(draft)
        self.view.fit()

    def to_workflow(self) -> Workflow:
        """The edited workflow (not validated; see `problem()`); `layout:` holds positions."""
        return self.document.draft.to_workflow()

    def problem(self, *, check_images: bool = False) -> str | None:
        """The first thing that makes the workflow invalid, or None."""
        return first_problem(self.to_workflow(), check_images=check_images)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the workflow as YAML (images relative to its folder) and mark it clean.

        Raises WorkflowError when the workflow is invalid (it could not be loaded back).
        """
        target = Path(path) if path is not None else self._path
        if target is None:
            msg = "no file to save to; choose a path"
            raise WorkflowError(msg)
        wf = self.document.draft.to_workflow(base_dir=target.absolute().parent)
        problem = first_problem(wf, check_images=False)
        if problem:
            msg = f"cannot save {target}: {problem}"
            raise WorkflowError(msg, file=str(target))
        save_workflow(wf, target)
        self._path = target
        self.document.undo_stack.setClean()
        self.path_changed.emit(str(target))
        return target

    # ---- editing API (what the toolbar, canvas and tests use) -------------------------------

    @property
    def current_branch(self) -> str | None:
        return self.scene.current_branch

    def set_current_branch(self, name: str) -> None:
        self.document.draft.branch(name)  # KeyError for unknown names
        self.scene.set_current_branch(name)

    def add_branch(self, name: str | None = None) -> str | None:
        created = self.document.add_branch(name)
        if created is not None:
            self.scene.set_current_branch(created)
        return created

    def rename_branch(self, old: str, new: str) -> bool:
        current = self.current_branch == old
        ok = self.document.rename_branch(old, new)
        if ok and current:
            self.scene.set_current_branch(new)
        return ok

    def remove_branch(self, name: str) -> bool:
        return self.document.remove_branch(name)

    def add_job(
        self, job_type: str, branch: str | None = None, *, job_id: str | None = None, image: str | None = None
    ) -> str | None:
        """Add a job at the end of `branch` (default: the current one; a new one if none)."""
        branch = branch or self.current_branch or self.add_branch()
        if branch is None:
            return None
        uid = self.document.add_job(job_type, branch, job_id=job_id, image=image)
        if uid is None:
            return None
        self.select_job(self.document.draft.jobs[uid].job_id)
        return self.document.draft.jobs[uid].job_id

    def remove_jobs(self, job_ids: Iterable[str]) -> bool:
        return self.document.remove_items([self._uid(j) for j in job_ids])

    def connect_jobs(self, dependency: str, job_id: str) -> bool:
        """Make `job_id` wait for `dependency` (what dragging dependency's output port does)."""
        return self.scene.connect_nodes(self.node_item(dependency), self.node_item(job_id), from_output=True)

    def disconnect_jobs(self, dependency: str, job_id: str) -> bool:
        return self.document.disconnect_jobs(self._uid(dependency), self._uid(job_id))

    def move_job(self, job_id: str, x: float, y: float) -> bool:
        """Drop a job's node at scene position (x, y) (top-left), as a mouse drag does."""
        self.node_item(job_id).setPos(x, y)
        return self.scene.commit_moves()

    def set_job_param(self, job_id: str, key: str, value: object | None) -> bool:
        return self.document.edit_job(self._uid(job_id), f"param:{key}", value)

    def delete_selected(self) -> bool:
        return self.scene.delete_selected()

    def select_job(self, job_id: str | None) -> None:
        self.scene.clearSelection()
        if job_id is not None:
            self.node_item(job_id).setSelected(True)

    def selected_job_ids(self) -> list[str]:
        return sorted(n.job_id for n in self.scene.selected_nodes())

    def node_item(self, job_id: str) -> NodeItem:
        return self.scene.nodes[self._uid(job_id)]

    def _uid(self, job_id: str) -> int:
        return self.document.draft.uid_of(job_id)

    # ---- run state --------------------------------------------------------------------------

    def set_job_states(self, states: Mapping[str, str | None]) -> None:
        """Colour nodes by run state (pending, queued, running, succeeded, failed, skipped,
        cancelled, waiting); None clears one job. Unknown job ids are ignored."""
        self.scene.set_job_states(states)

    def clear_job_states(self) -> None:
        self.scene.clear_job_states()

    def request_run(self) -> bool:
        """Emit `run_requested(workflow)` if the workflow is valid, else say why."""
        problem = self.problem(check_images=True)
        if problem:
            self.show_message(f"Cannot run: {problem}")
            self.run_refused.emit(problem)
            return False
        self.run_requested.emit(self.to_workflow())
        return True

    # ---- messages ---------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        self.message_label.setText(text)
        self.message_label.show()
        self._message_timer.start(MESSAGE_MS)

    def message_text(self) -> str:
        return self.message_label.text() if self.message_label.isVisibleTo(self) else ""

    # ---- slots ------------------------------------------------------------------------------

    def _on_edit_refused(self, reason: str) -> None:
        self.show_message(f"Not changed: {reason}")
        self.edit_refused.emit(reason)

    def _on_clean_changed(self, clean: bool) -> None:  # noqa: FBT001 - Qt signal argument
        self.modified_changed.emit(not clean)

    def _on_document_changed(self) -> None:
        draft = self.document.draft
        names = [b.name for b in draft.branches]
        self.branch_combo.blockSignals(True)
        self.branch_combo.clear()
        self.branch_combo.addItems(names)
        if self.current_branch is not None:
            self.branch_combo.setCurrentText(self.current_branch)
        self.branch_combo.blockSignals(False)
        has_branch = bool(names)
        self.rename_branch_action.setEnabled(has_branch)
        self.remove_branch_action.setEnabled(has_branch)
        problem = self.problem(check_images=True)
        counts = f"{len(names)} branches · {len(draft.jobs)} jobs"
        self.status_label.setText(f"{counts} · ✓ ready to run" if problem is None else f"{counts} · ⚠ not runnable yet")
        self.status_label.setToolTip(problem or "")
        self.run_action.setToolTip(problem or "submit this workflow to the scheduler")

    def _on_selection_changed(self) -> None:
        nodes = self.scene.selected_nodes()
        self.inspector.show_job(nodes[0].uid if len(nodes) == 1 else None)

    def _on_current_branch_changed(self, name: str) -> None:
        self.branch_combo.blockSignals(True)
        self.branch_combo.setCurrentText(name)
        self.branch_combo.blockSignals(False)

    def _on_branch_combo_changed(self, name: str) -> None:
        if name:
            self.scene.set_current_branch(name)

    def _on_rename_branch_triggered(self) -> None:
        old = self.current_branch
        if old is None:
            return
        new, ok = QInputDialog.getText(self, "Rename branch", "Branch name:", text=old)
        if ok and new != old:
            self.rename_branch(old, new)

    def _on_remove_branch_triggered(self) -> None:
        if self.current_branch is not None:
            self.remove_branch(self.current_branch)
