"""Undo commands. Each holds the draft before and after its edit; undo/redo swap them in.

Snapshots (not inverse operations) keep undo exact for every edit, including the ones that
touch several things at once (deleting a node drops its edges and shifts its branch).
Constructing a command performs the edit on a copy and raises EditRefused when it is refused,
so a refused edit never reaches the undo stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QUndoCommand

if TYPE_CHECKING:
    from wsidesk.gui.graph_editor.document import WorkflowDocument
    from wsidesk.gui.graph_editor.model import CanvasDraft

_MERGE_ID = 0x57_44  # commands with a merge key compress with the previous one of the same key


class DraftCommand(QUndoCommand):
    """Base: `edit` mutates a copy of the document's draft; refusals propagate as EditRefused."""

    def __init__(
        self,
        document: WorkflowDocument,
        text: str,
        edit: Callable[[CanvasDraft], Any],
        *,
        merge_key: tuple[Any, ...] | None = None,
    ) -> None:
        super().__init__(text)
        self._document = document
        self.before = document.draft
        after = self.before.copy()
        self.result = edit(after)
        self.after = after
        self.merge_key = merge_key

    def redo(self) -> None:
        self._document._restore(self.after)  # noqa: SLF001 - the document's command hook

    def undo(self) -> None:
        self._document._restore(self.before)  # noqa: SLF001

    def id(self) -> int:  # noqa: A003 - Qt's name
        return _MERGE_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, DraftCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        return True


class AddJobCommand(DraftCommand):
    def __init__(
        self,
        document: WorkflowDocument,
        job_type: str,
        branch: str,
        *,
        job_id: str | None = None,
        image: str | None = None,
    ) -> None:
        super().__init__(
            document, f"Add {job_type} job", lambda d: d.add_job(job_type, branch, job_id=job_id, image=image)
        )


class RemoveItemsCommand(DraftCommand):
    """Delete jobs and depends_on edges (as (dependency uid, dependent uid)) together."""

    def __init__(self, document: WorkflowDocument, uids: list[int], edges: list[tuple[int, int]]) -> None:
        def edit(d: CanvasDraft) -> None:
            for dep, uid in edges:
                if uid not in uids and dep not in uids:
                    d.disconnect(dep, uid)
            d.remove_jobs(uids)

        what = [f"{len(uids)} job(s)"] * bool(uids) + [f"{len(edges)} edge(s)"] * bool(edges)
        super().__init__(document, "Delete " + " and ".join(what), edit)


class MoveJobsCommand(DraftCommand):
    def __init__(self, document: WorkflowDocument, drops: Mapping[int, tuple[float, float]]) -> None:
        super().__init__(document, f"Move {len(drops)} job(s)", lambda d: d.move_jobs(drops))


class MoveToBranchCommand(DraftCommand):
    def __init__(self, document: WorkflowDocument, uid: int, branch: str) -> None:
        super().__init__(document, f"Move job to {branch}", lambda d: d.move_to_branch(uid, branch))


class ConnectCommand(DraftCommand):
    def __init__(self, document: WorkflowDocument, dep: int, uid: int) -> None:
        super().__init__(document, "Connect jobs", lambda d: d.connect(dep, uid))


class DisconnectCommand(DraftCommand):
    def __init__(self, document: WorkflowDocument, dep: int, uid: int) -> None:
        super().__init__(document, "Disconnect jobs", lambda d: d.disconnect(dep, uid))


class EditJobCommand(DraftCommand):
    """Change one field of a job: 'job_id', 'type', 'image' or 'param:<name>'.

    Repeated edits of the same field (spin box steps) merge into one undo entry.
    """

    def __init__(self, document: WorkflowDocument, uid: int, what: str, value: Any) -> None:
        def edit(d: CanvasDraft) -> None:
            if what == "job_id":
                d.set_job_id(uid, value)
            elif what == "type":
                d.set_job_type(uid, value)
            elif what == "image":
                d.set_image(uid, value)
            elif what.startswith("param:"):
                d.set_param(uid, what.removeprefix("param:"), value)
            else:
                msg = f"unknown job field {what!r}"
                raise ValueError(msg)

        label = what.removeprefix("param:")
        super().__init__(document, f"Edit {label}", edit, merge_key=("job", uid, what))


class EditWorkflowCommand(DraftCommand):
    """Change the workflow name ('name') or one default ('default:<name>')."""

    def __init__(self, document: WorkflowDocument, what: str, value: Any) -> None:
        def edit(d: CanvasDraft) -> None:
            if what == "name":
                d.set_name(value)
            elif what.startswith("default:"):
                d.set_default(what.removeprefix("default:"), value)
            else:
                msg = f"unknown workflow field {what!r}"
                raise ValueError(msg)

        super().__init__(document, f"Edit workflow {what.removeprefix('default:')}", edit, merge_key=("workflow", what))


class AddBranchCommand(DraftCommand):
    def __init__(self, document: WorkflowDocument, name: str | None = None) -> None:
        super().__init__(document, "Add branch", lambda d: d.add_branch(name))


class RenameBranchCommand(DraftCommand):
    def __init__(self, document: WorkflowDocument, old: str, new: str) -> None:
        super().__init__(document, f"Rename branch {old}", lambda d: d.rename_branch(old, new))


class RemoveBranchCommand(DraftCommand):
    def __init__(self, document: WorkflowDocument, name: str) -> None:
        super().__init__(document, f"Delete branch {name}", lambda d: d.remove_branch(name))
