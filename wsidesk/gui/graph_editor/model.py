"""Where the graph editor draws a workflow draft: lanes stacked top to bottom, nodes left to right.

The rules of editing live in the Qt-free `wsidesk.core.workflow.draft`; this adds the canvas geometry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from wsidesk.core.states import JobState
from wsidesk.core.workflow.draft import (
    BranchDraft,
    EditRefused,
    JobDraft,
    WorkflowDraft,
    check_job_id,
    check_param,
    first_problem,
)

JOB_STATES = tuple(JobState)

# Canvas geometry in scene units. Lanes are stacked top to bottom in branch order; nodes sit
# on their lane's centre line, left to right in FIFO order.
NODE_W = 200.0
NODE_H = 78.0
NODE_GAP = 88.0
LANE_H = 132.0
LANE_GAP = 12.0
LANE_PITCH = LANE_H + LANE_GAP


def lane_top(index: int) -> float:
    return index * LANE_PITCH


def lane_node_y(index: int) -> float:
    return lane_top(index) + (LANE_H - NODE_H) / 2


class CanvasDraft(WorkflowDraft):
    """A workflow draft with the canvas positions of its nodes."""

    __slots__ = ()

    def display_positions(self) -> dict[int, tuple[float, float]]:
        """Where each node is drawn: on its lane, left to right in FIFO order, never overlapping.

        A stored x is honoured unless it would put a node left of (or on) its predecessor, in
        which case the node is pushed right; stored y is ignored because lanes decide it.
        """
        out: dict[int, tuple[float, float]] = {}
        for i, lane in enumerate(self.branches):
            y = lane_node_y(i)
            cursor = 0.0
            for uid in lane.jobs:
                stored = self.positions.get(uid)
                x = cursor if stored is None else max(stored[0], cursor)
                out[uid] = (x, y)
                cursor = x + NODE_W + NODE_GAP
        return out

    def lane_at(self, y: float) -> int:
        """Index of the lane under scene y (clamped to the first and last lane)."""
        if not self.branches:
            msg = "the workflow has no branches"
            raise EditRefused(msg)
        return min(max(int(math.floor(y / LANE_PITCH)), 0), len(self.branches) - 1)

    def _placed_at_end(self, uid: int) -> None:
        self.positions.pop(uid, None)  # its old place (another lane) must not push it right
        self.positions[uid] = self.display_positions()[uid]

    def _lanes_changed(self) -> None:
        # Lanes decide y; keep stored y on the lane so saved layouts read back the same place.
        for i, lane in enumerate(self.branches):
            for uid in lane.jobs:
                if uid in self.positions:
                    self.positions[uid] = (self.positions[uid][0], lane_node_y(i))

    def move_jobs(self, drops: Mapping[int, tuple[float, float]]) -> None:
        """Drop nodes at scene positions (top-left): the lane under a node's centre becomes its
        branch, and x decides its place in the branch's FIFO order."""
        shown = self.display_positions()
        lanes: list[list[tuple[float, int, int]]] = [[] for _ in self.branches]
        for i, lane in enumerate(self.branches):
            for uid in lane.jobs:
                if uid not in drops:
                    lanes[i].append((shown[uid][0], 0, uid))
        for uid, (x, y) in drops.items():
            i = self.lane_at(y + NODE_H / 2)
            x = max(0.0, float(x))
            # Ties go after the node already there, so a tiny nudge never reorders.
            lanes[i].append((x, 1, uid))
            self.positions[uid] = (x, lane_node_y(i))
        before = [list(lane.jobs) for lane in self.branches]
        for lane, members in zip(self.branches, lanes, strict=True):
            lane.jobs = [uid for _, _, uid in sorted(members, key=lambda m: (m[0], m[1]))]
        if before != [lane.jobs for lane in self.branches]:
            names = ", ".join(sorted(self.jobs[u].job_id for u in drops))
            self.check_acyclic(f"cannot move {names} there")


__all__ = [
    "JOB_STATES",
    "BranchDraft",
    "CanvasDraft",
    "EditRefused",
    "JobDraft",
    "check_job_id",
    "check_param",
    "first_problem",
]
