"""Workflow graph editor: jobs as nodes on branch lanes, dependencies as edges, all undoable."""

from __future__ import annotations

from wsidesk.gui.graph_editor.document import WorkflowDocument
from wsidesk.gui.graph_editor.editor import GraphEditor
from wsidesk.gui.graph_editor.inspector import InspectorPanel
from wsidesk.gui.graph_editor.model import JOB_STATES, CanvasDraft, EditRefused
from wsidesk.gui.graph_editor.scene import GraphView, WorkflowScene

__all__ = [
    "JOB_STATES",
    "EditRefused",
    "GraphEditor",
    "GraphView",
    "InspectorPanel",
    "WorkflowDocument",
    "CanvasDraft",
    "WorkflowScene",
]
