"""WorkflowDocument: the draft being edited, its undo stack, and the edit operations.

Every edit goes through a command on the undo stack; views listen to `changed` and redraw.
Refused edits emit `edit_refused(reason)` and change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from wsidesk.gui.graph_editor import commands as cmd
from wsidesk.gui.graph_editor.model import CanvasDraft, EditRefused

logger = logging.getLogger(__name__)


class WorkflowDocument(QObject):
    changed = Signal()
    edit_refused = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._draft = CanvasDraft()
        self.undo_stack = QUndoStack(self)

    @property
    def draft(self) -> CanvasDraft:
        """The current draft; read it, never change it (edit through the methods below)."""
        return self._draft

    def reset(self, draft: CanvasDraft) -> None:
        """Start over with `draft`: empty undo history, clean."""
        self._draft = draft
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.changed.emit()

    def _restore(self, draft: CanvasDraft) -> None:
        self._draft = draft
        self.changed.emit()

    def _push(self, make: Callable[[], cmd.DraftCommand]) -> cmd.DraftCommand | None:
        try:
            command = make()
        except EditRefused as exc:
            logger.info("edit refused: %s", exc)
            self.edit_refused.emit(str(exc))
            return None
        self.undo_stack.push(command)
        return command

    # ---- edits; each returns whether it was applied (or what it created) --------------------

    def add_job(self, job_type: str, branch: str, *, job_id: str | None = None, image: str | None = None) -> int | None:
        command = self._push(lambda: cmd.AddJobCommand(self, job_type, branch, job_id=job_id, image=image))
        return None if command is None else command.result

    def remove_items(self, uids: list[int], edges: Sequence[tuple[int, int]] = ()) -> bool:
        if not uids and not edges:
            return False
        return self._push(lambda: cmd.RemoveItemsCommand(self, list(uids), list(edges))) is not None

    def move_jobs(self, drops: Mapping[int, tuple[float, float]]) -> bool:
        if not drops:
            return False
        return self._push(lambda: cmd.MoveJobsCommand(self, dict(drops))) is not None

    def move_to_branch(self, uid: int, branch: str) -> bool:
        return self._push(lambda: cmd.MoveToBranchCommand(self, uid, branch)) is not None

    def connect_jobs(self, dep: int, uid: int) -> bool:
        return self._push(lambda: cmd.ConnectCommand(self, dep, uid)) is not None

    def disconnect_jobs(self, dep: int, uid: int) -> bool:
        return self._push(lambda: cmd.DisconnectCommand(self, dep, uid)) is not None

    def edit_job(self, uid: int, what: str, value: Any) -> bool:
        return self._push(lambda: cmd.EditJobCommand(self, uid, what, value)) is not None

    def edit_workflow(self, what: str, value: Any) -> bool:
        return self._push(lambda: cmd.EditWorkflowCommand(self, what, value)) is not None

    def add_branch(self, name: str | None = None) -> str | None:
        command = self._push(lambda: cmd.AddBranchCommand(self, name))
        return None if command is None else command.result

    def rename_branch(self, old: str, new: str) -> bool:
        if old == new:
            return False
        return self._push(lambda: cmd.RenameBranchCommand(self, old, new)) is not None

    def remove_branch(self, name: str) -> bool:
        return self._push(lambda: cmd.RemoveBranchCommand(self, name)) is not None
