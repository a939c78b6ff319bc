"""Editable draft of a workflow: plain mutable data plus the edit operations the graph editor offers.

Every rule (cycles, unique ids, lane order, params) is checked here, Qt-free and testable without a
scene; where nodes are drawn is the editor's business (gui/graph_editor/model.py). Jobs carry a stable
`uid`, so renaming a job keeps its edges, its canvas item and its selection. Drafts are copied before
each edit and never changed once published.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import networkx as nx

from wsidesk.core.errors import WorkflowError
from wsidesk.core.jobs.registry import JOB_TYPES, all_params
from wsidesk.core.names import SAFE_NAME_RULE, is_safe_name
from wsidesk.core.paths import resolve_path
from wsidesk.core.workflow.graph import cycle_text, find_cycle, job_graph
from wsidesk.core.workflow.model import Branch, Job, Workflow, validate_workflow


class EditRefused(Exception):
    """An edit would make the workflow inconsistent; its message says why, for the user."""


def check_job_id(job_id: str) -> str | None:
    """Why `job_id` is not a valid job id, or None."""
    if not is_safe_name(job_id):
        return f"job ids are {SAFE_NAME_RULE} (they name the job's output folder)"
    return None


def check_param(key: str, value: Any) -> str | None:
    """Why `value` is not valid for param `key` (of any job type), or None."""
    spec = all_params().get(key)
    if spec is None:
        return f"unknown param {key!r}"
    problem = spec.problem(value)
    return None if problem is None else f"param {key!r} {problem}"


@dataclass(slots=True)
class JobDraft:
    uid: int
    job_id: str
    type: str
    image: str | None = None
    depends_on: list[int] = field(default_factory=list)  # uids, in YAML order
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BranchDraft:
    name: str
    jobs: list[int] = field(default_factory=list)  # uids in FIFO order


@dataclass(slots=True)
class WorkflowDraft:
    name: str = "Untitled workflow"
    profile: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    branches: list[BranchDraft] = field(default_factory=list)
    jobs: dict[int, JobDraft] = field(default_factory=dict)
    # Positions the user chose (or the file gave); jobs without one are placed automatically.
    positions: dict[int, tuple[float, float]] = field(default_factory=dict)
    base_dir: Path | None = None
    next_uid: int = 1

    # ---- conversion -------------------------------------------------------------------------

    @classmethod
    def from_workflow(cls, wf: Workflow) -> Self:
        draft = cls(name=wf.name, profile=wf.profile, defaults=dict(wf.defaults), base_dir=wf.base_dir)
        ids: dict[str, int] = {}
        for branch in wf.branches:
            lane = BranchDraft(branch.name)
            for job in branch.jobs:
                uid = draft._new_uid()
                ids[job.job_id] = uid
                draft.jobs[uid] = JobDraft(uid, job.job_id, job.type, job.image, params=dict(job.params))
                lane.jobs.append(uid)
            draft.branches.append(lane)
        for _, job in wf.jobs():
            # An unvalidated workflow may name unknown jobs; the editor cannot draw those.
            draft.jobs[ids[job.job_id]].depends_on = [ids[d] for d in job.depends_on if d in ids]
        for job_id, pos in wf.layout.items():
            if job_id in ids:
                draft.positions[ids[job_id]] = (float(pos[0]), float(pos[1]))
        return draft

    def to_workflow(self, *, base_dir: Path | None = None) -> Workflow:
        """The draft as a core Workflow; with `base_dir`, relative images are rebased onto it."""
        target = self.base_dir if base_dir is None else Path(base_dir).absolute()
        branches = []
        layout: dict[str, tuple[float, float]] = {}
        for lane in self.branches:
            jobs = []
            for uid in lane.jobs:
                job = self.jobs[uid]
                deps = tuple(self.jobs[d].job_id for d in job.depends_on)
                image = self._rebased(job.image, target)
                jobs.append(Job(job.job_id, job.type, image, deps, dict(job.params)))
                if uid in self.positions:
                    layout[job.job_id] = self.positions[uid]
            branches.append(Branch(lane.name, tuple(jobs)))
        return Workflow(
            name=self.name,
            branches=tuple(branches),
            profile=self.profile,
            defaults=dict(self.defaults),
            layout=layout,
            base_dir=target,
        )

    def _rebased(self, image: str | None, target: Path | None) -> str | None:
        if image is None or target is None or self.base_dir == target:
            return image
        path = Path(image).expanduser()
        if path.is_absolute():
            # Picked before the workflow had a folder: relative once saved next to it.
            if self.base_dir is None and path.is_relative_to(target):
                return path.relative_to(target).as_posix()
            return image
        source = self.base_dir if self.base_dir is not None else Path.cwd()
        absolute = Path(os.path.normpath(source / path))
        try:
            return Path(os.path.relpath(absolute, target)).as_posix()
        except ValueError:  # another drive on Windows
            return str(absolute)

    def copy(self) -> Self:
        return copy.deepcopy(self)

    # ---- queries ----------------------------------------------------------------------------

    def _new_uid(self) -> int:
        uid = self.next_uid
        self.next_uid += 1
        return uid

    def uid_of(self, job_id: str) -> int:
        for uid, job in self.jobs.items():
            if job.job_id == job_id:
                return uid
        msg = f"no job {job_id!r} in workflow {self.name!r}"
        raise KeyError(msg)

    def branch(self, name: str) -> BranchDraft:
        for lane in self.branches:
            if lane.name == name:
                return lane
        msg = f"no branch {name!r} in workflow {self.name!r}"
        raise KeyError(msg)

    def branch_index(self, name: str) -> int:
        return self.branches.index(self.branch(name))

    def lane_of(self, uid: int) -> int:
        for i, lane in enumerate(self.branches):
            if uid in lane.jobs:
                return i
        msg = f"job uid {uid} is in no branch"
        raise KeyError(msg)

    def edges(self) -> Iterator[tuple[int, int]]:
        """depends_on edges as (dependency uid, dependent uid)."""
        for uid, job in self.jobs.items():
            for dep in job.depends_on:
                yield dep, uid

    def fifo_edges(self) -> Iterator[tuple[int, int]]:
        for lane in self.branches:
            yield from zip(lane.jobs, lane.jobs[1:], strict=False)

    def graph(self) -> nx.DiGraph:
        """The job graph, as `Workflow.graph()` builds it."""
        ids = {uid: job.job_id for uid, job in self.jobs.items()}
        lanes = ((lane.name, [ids[u] for u in lane.jobs]) for lane in self.branches)
        return job_graph(lanes, ((ids[a], ids[b]) for a, b in self.edges()))

    def check_acyclic(self, what: str) -> None:
        cycle = find_cycle(self.graph())
        if cycle is not None:
            msg = f"{what}: it would make a cycle {cycle_text(cycle)}"
            raise EditRefused(msg)

    def unique_job_id(self, prefix: str) -> str:
        taken = {job.job_id.casefold() for job in self.jobs.values()}
        n = 1
        while f"{prefix}{n}".casefold() in taken:
            n += 1
        return f"{prefix}{n}"

    def unique_branch_name(self, prefix: str = "branch_") -> str:
        taken = {lane.name for lane in self.branches}
        n = 1
        while f"{prefix}{n}" in taken:
            n += 1
        return f"{prefix}{n}"

    def job_problems(self, uid: int) -> list[str]:
        """What stops this job from being valid on its own (shown on its node)."""
        job = self.jobs[uid]
        problems = []
        if not JOB_TYPES[job.type].takes_image:
            if not job.depends_on:
                problems.append(f"connect the jobs to {job.type}")
        elif not job.image:
            problems.append("needs an image")
        elif not resolve_path(job.image, self.base_dir).is_file():
            problems.append("image not found")
        return problems

    # ---- edits (each raises EditRefused and leaves the draft untouched when refused) ---------

    def set_name(self, name: str) -> None:
        if not name.strip():
            msg = "the workflow needs a name"
            raise EditRefused(msg)
        self.name = name

    def set_default(self, key: str, value: Any | None) -> None:
        if value is None:
            self.defaults.pop(key, None)
            return
        why = check_param(key, value)
        if why:
            raise EditRefused(f"default {key!r}: {why}")
        self.defaults[key] = value

    def _check_branch_name(self, name: str) -> None:
        if not name.strip():
            msg = "a branch needs a name"
            raise EditRefused(msg)
        if any(lane.name == name for lane in self.branches):
            msg = f"there is already a branch called {name!r}"
            raise EditRefused(msg)

    def add_branch(self, name: str | None = None) -> str:
        name = self.unique_branch_name() if name is None else name
        self._check_branch_name(name)
        self.branches.append(BranchDraft(name))
        return name

    def rename_branch(self, old: str, new: str) -> None:
        lane = self.branch(old)
        if new == old:
            return
        self._check_branch_name(new)
        lane.name = new

    def remove_branch(self, name: str) -> None:
        lane = self.branch(name)
        self.remove_jobs(list(lane.jobs))
        self.branches.remove(lane)
        self._lanes_changed()

    # Where jobs are drawn is the editor's: it overrides these two to keep `positions` in step.
    def _placed_at_end(self, uid: int) -> None:
        """Job `uid` was just appended to its branch."""

    def _lanes_changed(self) -> None:
        """Branches were added, removed or reordered."""

    def add_job(self, job_type: str, branch: str, *, job_id: str | None = None, image: str | None = None) -> int:
        if job_type not in JOB_TYPES:
            msg = f"unknown job type {job_type!r}; use one of {', '.join(JOB_TYPES)}"
            raise EditRefused(msg)
        lane = self.branch(branch)
        job_id = self.unique_job_id(job_type) if job_id is None else job_id
        self._check_new_job_id(job_id, uid=None)
        uid = self._new_uid()
        self.jobs[uid] = JobDraft(uid, job_id, job_type, image if JOB_TYPES[job_type].takes_image else None)
        lane.jobs.append(uid)
        self._placed_at_end(uid)
        return uid

    def _check_new_job_id(self, job_id: str, *, uid: int | None) -> None:
        why = check_job_id(job_id)
        if why:
            raise EditRefused(f"invalid job id {job_id!r}: {why}")
        for other in self.jobs.values():
            if other.uid != uid and other.job_id.casefold() == job_id.casefold():
                msg = f"job id {job_id!r} is taken by another job (ids ignore case)"
                raise EditRefused(msg)

    def remove_jobs(self, uids: list[int]) -> None:
        gone = set(uids)
        for lane in self.branches:
            lane.jobs = [u for u in lane.jobs if u not in gone]
        for uid in gone:
            self.jobs.pop(uid, None)
            self.positions.pop(uid, None)
        for job in self.jobs.values():
            job.depends_on = [d for d in job.depends_on if d not in gone]

    def connect(self, dep: int, uid: int) -> None:
        """Make job `uid` depend on job `dep`."""
        a, b = self.jobs[dep].job_id, self.jobs[uid].job_id
        if dep == uid:
            msg = f"cannot connect {a} to itself"
            raise EditRefused(msg)
        if dep in self.jobs[uid].depends_on:
            msg = f"{b} already depends on {a}"
            raise EditRefused(msg)
        self.jobs[uid].depends_on.append(dep)
        self.check_acyclic(f"cannot make {b} depend on {a}")

    def disconnect(self, dep: int, uid: int) -> None:
        if dep not in self.jobs[uid].depends_on:
            a, b = self.jobs[dep].job_id, self.jobs[uid].job_id
            msg = f"{b} does not depend on {a}"
            raise EditRefused(msg)
        self.jobs[uid].depends_on.remove(dep)

    def set_job_id(self, uid: int, job_id: str) -> None:
        if self.jobs[uid].job_id == job_id:
            return
        self._check_new_job_id(job_id, uid=uid)
        self.jobs[uid].job_id = job_id

    def set_job_type(self, uid: int, job_type: str) -> None:
        if job_type not in JOB_TYPES:
            msg = f"unknown job type {job_type!r}; use one of {', '.join(JOB_TYPES)}"
            raise EditRefused(msg)
        job = self.jobs[uid]
        job.type = job_type
        # Keep only what the new type accepts, so the job stays loadable.
        kind = JOB_TYPES[job_type]
        job.params = {k: v for k, v in job.params.items() if kind.spec(k) is not None}
        if not kind.takes_image:
            job.image = None

    def set_image(self, uid: int, image: str | None) -> None:
        job = self.jobs[uid]
        image = image.strip() if image else None
        takes_image = JOB_TYPES[job.type].takes_image
        if not takes_image and image:
            msg = f"{job.type} jobs take no image; they {job.type} the jobs they depend on"
            raise EditRefused(msg)
        if takes_image and not image:
            msg = f"{job.type} jobs need an image (a slide path)"
            raise EditRefused(msg)
        job.image = image

    def set_param(self, uid: int, key: str, value: Any | None) -> None:
        job = self.jobs[uid]
        if value is None:
            job.params.pop(key, None)
            return
        if JOB_TYPES[job.type].spec(key) is None:
            valid = ", ".join(sorted(s.name for s in JOB_TYPES[job.type].params.specs()))
            msg = f"{job.type} jobs take no param {key!r}; valid params: {valid}"
            raise EditRefused(msg)
        why = check_param(key, value)
        if why:
            raise EditRefused(f"{job.job_id}: {why}")
        job.params[key] = value

    def move_to_branch(self, uid: int, branch: str) -> None:
        """Append a job to the end of another branch."""
        target = self.branch(branch)
        source = self.branches[self.lane_of(uid)]
        if source is target:
            return
        source.jobs.remove(uid)
        target.jobs.append(uid)
        self._placed_at_end(uid)
        self.check_acyclic(f"cannot move {self.jobs[uid].job_id} to branch {branch!r}")


def first_problem(wf: Workflow, *, check_images: bool) -> str | None:
    """The first validation problem of `wf`, or None."""
    try:
        validate_workflow(wf, check_images=check_images)
    except WorkflowError as exc:
        return str(exc)
    return None


__all__ = [
    "BranchDraft",
    "EditRefused",
    "JobDraft",
    "WorkflowDraft",
    "check_job_id",
    "check_param",
    "first_problem",
]
