"""Workflow, Branch and Job: immutable values describing a DAG of jobs grouped in branches."""

from __future__ import annotations

import difflib
import errno
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import networkx as nx

from wsidesk.core.errors import ProfileError, WorkflowError
from wsidesk.core.jobs.registry import JOB_TYPES, all_params
from wsidesk.core.names import SAFE_NAME_RULE, is_safe_name
from wsidesk.core.paths import resolve_path
from wsidesk.core.profiles import check_profile_name
from wsidesk.core.values import reduce_frozen, shown
from wsidesk.core.workflow.graph import cycle_text, find_cycle, job_graph, topological_order


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    type: str
    image: str | None = None  # as written in the YAML: relative to the workflow file
    depends_on: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depends_on", tuple(self.depends_on))
        object.__setattr__(self, "params", _frozen_mapping(self.params))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return reduce_frozen(self)  # picklable for Dask workers


@dataclass(frozen=True, slots=True)
class Branch:
    name: str
    jobs: tuple[Job, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", tuple(self.jobs))


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    branches: tuple[Branch, ...]
    profile: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    layout: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # Folder that relative image paths are resolved against (the YAML file's folder).
    base_dir: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        object.__setattr__(self, "defaults", _frozen_mapping(self.defaults))
        layout = {k: (float(v[0]), float(v[1])) for k, v in dict(self.layout).items()}
        object.__setattr__(self, "layout", _frozen_mapping(layout))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return reduce_frozen(self)  # picklable for Dask workers

    def jobs(self) -> Iterator[tuple[Branch, Job]]:
        for branch in self.branches:
            for job in branch.jobs:
                yield branch, job

    def job(self, job_id: str) -> Job:
        for _, job in self.jobs():
            if job.job_id == job_id:
                return job
        msg = f"workflow {shown(self.name)} has no job {shown(job_id)}"
        raise KeyError(msg)

    def branch_of(self, job_id: str) -> str:
        for branch, job in self.jobs():
            if job.job_id == job_id:
                return branch.name
        msg = f"workflow {shown(self.name)} has no job {shown(job_id)}"
        raise KeyError(msg)

    def job_params(self, job: Job) -> dict[str, Any]:
        """Workflow defaults overridden by the job's own params."""
        return {**self.defaults, **job.params}

    def image_path(self, job: Job) -> Path | None:
        return None if job.image is None else resolve_path(job.image, self.base_dir)

    def with_absolute_paths(self) -> Workflow:
        """This workflow with its images and file params (model paths) absolute and canonical, so that a
        copy of it stands alone in another folder (the run folder)."""

        def files(params: Mapping[str, Any], job_type: str | None) -> dict[str, Any]:
            specs = all_params() if job_type is None else {s.name: s for s in JOB_TYPES[job_type].params.specs()}
            return {
                key: str(resolve_path(value, self.base_dir)) if key in specs and specs[key].is_file(value) else value
                for key, value in params.items()
            }

        def absolute(job: Job) -> Job:
            image = None if job.image is None else str(resolve_path(job.image, self.base_dir))
            return replace(job, image=image, params=files(job.params, job.type if job.type in JOB_TYPES else None))

        branches = tuple(replace(b, jobs=tuple(absolute(j) for j in b.jobs)) for b in self.branches)
        return replace(self, branches=branches, defaults=files(self.defaults, None))

    def graph(self) -> nx.DiGraph:
        """The job graph (see `graph.job_graph`)."""
        branches = ((b.name, [j.job_id for j in b.jobs]) for b in self.branches)
        return job_graph(branches, ((dep, job.job_id) for _, job in self.jobs() for dep in job.depends_on))

    def rank(self) -> dict[str, int]:
        """Job id -> its place in branch order, then list order (for stable orders and messages)."""
        return {job.job_id: i for i, (_, job) in enumerate(self.jobs())}

    def topological_order(self) -> list[str]:
        """Job ids, each after everything it waits for; ties keep branch order, then list order."""
        g = self.graph()
        try:
            return topological_order(g, self.rank())
        except nx.NetworkXUnfeasible as exc:
            raise _cycle_error(g, self.rank(), file=None) from exc


def _cycle_error(g: nx.DiGraph, rank: Mapping[str, int], *, file: str | None) -> WorkflowError:
    cycle = find_cycle(g, rank)
    assert cycle is not None  # only called for graphs that are not acyclic
    msg = f"jobs form a cycle: {cycle_text(cycle)}; remove one of its 'depends_on' entries or reorder the branch"
    return _error(msg, file=file, job_id=cycle[0], cycle=cycle)


def _error(
    msg: str,
    *,
    file: str | None,
    job_id: str | None = None,
    cycle: tuple[str, ...] | None = None,
) -> WorkflowError:
    where = f"{file}: " if file else ""
    return WorkflowError(where + msg, file=file, job_id=job_id, cycle=cycle)


def _check_params(
    params: Mapping[str, Any], job_type: str | None, *, where: str, file: str | None, job_id: str | None
) -> None:
    """Params of one job type (None: any type's, as in `defaults`), against the job-type registry."""
    specs = all_params() if job_type is None else {s.name: s for s in JOB_TYPES[job_type].params.specs()}
    for key, value in params.items():
        spec = specs.get(key)
        if spec is None:
            msg = f"{where}: unknown param {shown(key)}; valid params here: {', '.join(sorted(specs))}"
            raise _error(msg, file=file, job_id=job_id)
        if problem := spec.problem(value):
            raise _error(f"{where}: param {shown(key)} {problem}", file=file, job_id=job_id)


def _file_problem(path: Path) -> str | None:
    """Why `path` is not a readable file, or None."""
    try:
        path.stat()
    except FileNotFoundError:
        return "does not exist; fix the path (relative paths start at the workflow's folder)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a loop of symbolic links; point it at the file itself"
        return f"cannot be read ({exc.strerror or exc}); check the path and its permissions"
    if path.is_dir():
        return "is a directory, not a file"
    if not path.is_file():
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "is not readable; check its permissions"
    return None


def _check_files(wf: Workflow, job: Job, *, where: str, file: str | None) -> None:
    """The job's image and every file param (e.g. a model path) exist, relative to the workflow's folder."""
    path = wf.image_path(job)
    if path is not None and (why := _file_problem(path)):
        raise _error(f"{where}: image {str(path)!r} {why}", file=file, job_id=job.job_id)
    kind = JOB_TYPES[job.type]
    for key, value in wf.job_params(job).items():
        spec = kind.spec(key)
        if spec is None or not spec.is_file(value):
            continue
        path = resolve_path(value, wf.base_dir)
        if why := _file_problem(path):
            names = f"; or use one of the names {', '.join(spec.names)}" if spec.names else ""
            msg = f"{where}: {key} {shown(value)} is not a known name, and the file {str(path)!r} {why}{names}"
            raise _error(msg, file=file, job_id=job.job_id)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {shown(close[0])}?" if close else ""


def validate_workflow(wf: Workflow, *, file: str | None = None, check_images: bool = True) -> None:
    """Raise WorkflowError for the first problem found; messages name `file` and the job."""
    if not wf.name.strip():
        raise _error("workflow 'name' is empty; give the workflow a name", file=file)
    if not wf.name.isprintable():
        raise _error(f"workflow 'name' {shown(wf.name)} has control characters; use plain text", file=file)
    if not wf.branches:
        raise _error("workflow has no branches; add at least one under 'dag'", file=file)
    if wf.profile is not None:
        try:
            check_profile_name(wf.profile)
        except ProfileError as exc:
            raise _error(f"profile: {exc}", file=file) from exc
    _check_params(wf.defaults, None, where="defaults", file=file, job_id=None)

    branch_names: set[str] = set()
    seen: dict[str, str] = {}  # casefolded job id -> job id
    for branch in wf.branches:
        if not branch.name.strip():
            raise _error("a branch has an empty name; name every branch under 'dag'", file=file)
        if not branch.name.isprintable():
            # They would reach terminals and logs raw (ESC sequences, fake newlines).
            msg = f"branch name {shown(branch.name)} has control characters; use plain text"
            raise _error(msg, file=file)
        if branch.name in branch_names:
            raise _error(f"branch {shown(branch.name)} appears twice; rename one", file=file)
        branch_names.add(branch.name)
        if not branch.jobs:
            msg = f"branch {shown(branch.name)} has no jobs; add a job or remove the branch"
            raise _error(msg, file=file)
        for job in branch.jobs:
            _check_job_alone(job, branch=branch.name, seen=seen, file=file)

    for branch, job in wf.jobs():
        where = f"job {shown(job.job_id)} in branch {shown(branch.name)}"
        for dep in job.depends_on:
            if dep == job.job_id:
                raise _error(f"{where} depends on itself", file=file, job_id=job.job_id)
            if dep not in seen.values():
                msg = f"{where} depends on unknown job {shown(dep)}{_suggest(dep, seen.values())}"
                raise _error(msg, file=file, job_id=job.job_id)
        if len(set(job.depends_on)) != len(job.depends_on):
            msg = f"{where} lists a job twice in 'depends_on'; list each once"
            raise _error(msg, file=file, job_id=job.job_id)

    g = wf.graph()
    if not nx.is_directed_acyclic_graph(g):
        raise _cycle_error(g, wf.rank(), file=file)

    for job_id, (x, y) in wf.layout.items():
        if job_id not in seen.values():
            msg = f"layout names unknown job {shown(job_id)}{_suggest(job_id, seen.values())}"
            raise _error(msg, file=file, job_id=job_id)
        if not (math.isfinite(x) and math.isfinite(y)):
            msg = f"layout of job {shown(job_id)} must be two finite numbers [x, y]"
            raise _error(msg, file=file, job_id=job_id)

    if check_images:
        for branch, job in wf.jobs():
            _check_files(wf, job, where=f"job {shown(job.job_id)} in branch {shown(branch.name)}", file=file)


def _check_job_alone(job: Job, *, branch: str, seen: dict[str, str], file: str | None) -> None:
    """Checks that need only the job itself (and the ids seen so far)."""
    where = f"job {shown(job.job_id)} in branch {shown(branch)}"
    if not is_safe_name(job.job_id):
        msg = f"{where}: invalid job_id; use {SAFE_NAME_RULE} (it names the job's output folder)"
        raise _error(msg, file=file, job_id=job.job_id)
    folded = job.job_id.casefold()
    if folded in seen:
        # Output folders collide on case-insensitive file systems (macOS, Windows) too.
        same = "appears twice" if seen[folded] == job.job_id else f"clashes with {shown(seen[folded])}"
        msg = f"{where}: job_id {same}; job ids must be unique (ignoring case)"
        raise _error(msg, file=file, job_id=job.job_id)
    seen[folded] = job.job_id
    kind = JOB_TYPES.get(job.type)
    if kind is None:
        msg = f"{where}: unknown type {shown(job.type)}; valid types: {', '.join(JOB_TYPES)}"
        raise _error(msg, file=file, job_id=job.job_id)
    if not kind.takes_image:
        if job.image is not None:
            msg = f"{where}: {job.type} jobs take no 'image'; they {job.type} the jobs in 'depends_on'"
            raise _error(msg, file=file, job_id=job.job_id)
        if not job.depends_on:
            msg = f"{where}: {job.type} jobs need 'depends_on' listing the jobs to {job.type}"
            raise _error(msg, file=file, job_id=job.job_id)
    elif not job.image:
        msg = f"{where}: {job.type} jobs need an 'image' (a slide path)"
        raise _error(msg, file=file, job_id=job.job_id)
    _check_params(job.params, job.type, where=where, file=file, job_id=job.job_id)
