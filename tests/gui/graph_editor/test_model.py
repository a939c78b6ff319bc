"""CanvasDraft: where the graph editor draws a workflow draft (its rules are tested in tests/core/workflow)."""

from __future__ import annotations

from pathlib import Path

from wsidesk.core.workflow import Branch, Job, Workflow
from wsidesk.gui.graph_editor.model import NODE_GAP, NODE_W, CanvasDraft, lane_node_y


def two_branches() -> Workflow:
    return Workflow(
        name="wf",
        branches=(
            Branch("a", (Job("a1", "segment", "s/a.svs"), Job("a2", "segment", "s/b.svs"))),
            Branch("b", (Job("b1", "tissue", "s/c.svs"), Job("b2", "export", depends_on=("a1", "b1")))),
        ),
        base_dir=Path("/data/project"),
    )


def test_unplaced_nodes_follow_fifo_order_and_never_overlap() -> None:
    draft = CanvasDraft.from_workflow(two_branches())
    a1, a2 = draft.uid_of("a1"), draft.uid_of("a2")
    draft.positions[a2] = (10.0, 999.0)  # left of a1's end, and off its lane
    shown = draft.display_positions()
    assert shown[a1] == (0.0, lane_node_y(0))
    assert shown[a2] == (NODE_W + NODE_GAP, lane_node_y(0))


def test_added_and_moved_jobs_are_placed_at_the_end_of_their_lane() -> None:
    draft = CanvasDraft.from_workflow(two_branches())
    uid = draft.add_job("tissue", "a", image="s/d.svs")
    assert draft.positions[uid] == (2 * (NODE_W + NODE_GAP), lane_node_y(0))
    draft.move_to_branch(uid, "b")
    assert draft.positions[uid] == (2 * (NODE_W + NODE_GAP), lane_node_y(1))
    draft.remove_branch("a")
    assert draft.positions[uid][1] == lane_node_y(0)  # its lane moved up
