"""Workflow, Branch and Job: immutable values describing a DAG of jobs grouped in branches."""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import networkx as nx

from wsidesk.core.errors import ProfileError, WorkflowError
from wsidesk.core.profiles import check_profile_name
from wsidesk.core.values import reduce_frozen

JOB_TYPES = ("tissue", "segment", "export")
EXPORT_FORMATS = ("geojson", "csv")


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
        msg = f"workflow {self.name!r} has no job {job_id!r}"
        raise KeyError(msg)

    def branch_of(self, job_id: str) -> str:
        for branch, job in self.jobs():
            if job.job_id == job_id:
                return branch.name
        msg = f"workflow {self.name!r} has no job {job_id!r}"
        raise KeyError(msg)

    def job_params(self, job: Job) -> dict[str, Any]:
        """Workflow defaults overridden by the job's own params."""
        return {**self.defaults, **job.params}

    def image_path(self, job: Job) -> Path | None:
        if job.image is None:
            return None
        path = Path(job.image).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def graph(self) -> nx.DiGraph:
        """Job ids as nodes (attr `branch`); edges run from a job to what must wait for it.

        Each job points to the next job of its branch (edge attr `kind="fifo"`) and to every job
        that names it in `depends_on` (`kind="depends_on"`, which wins when both apply).
        """
        g = nx.DiGraph()
        for branch in self.branches:
            for job in branch.jobs:
                g.add_node(job.job_id, branch=branch.name)
            for before, after in zip(branch.jobs, branch.jobs[1:], strict=False):
                g.add_edge(before.job_id, after.job_id, kind="fifo")
        for _, job in self.jobs():
            for dep in job.depends_on:
                g.add_edge(dep, job.job_id, kind="depends_on")
        return g

    def topological_order(self) -> list[str]:
        """Job ids, each after everything it waits for; ties keep branch order, then list order."""
        g = self.graph()
        rank = {job.job_id: i for i, (_, job) in enumerate(self.jobs())}
        try:
            order = nx.lexicographical_topological_sort(g, key=lambda n: rank.get(n, len(rank)))
            return list(order)
        except nx.NetworkXUnfeasible as exc:
            raise _cycle_error(g, rank, file=None) from exc


def _cycle_error(g: nx.DiGraph, rank: Mapping[str, int], *, file: str | None) -> WorkflowError:
    nodes = [u for u, _ in nx.find_cycle(g)]
    # Start at the earliest job so the message does not depend on where the search began.
    start = min(range(len(nodes)), key=lambda i: rank.get(nodes[i], len(rank)))
    cycle = tuple(nodes[start:] + nodes[:start])
    path = " -> ".join((*cycle, cycle[0]))
    msg = f"jobs form a cycle: {path}; remove one of its 'depends_on' entries or reorder the branch"
    return _error(msg, file=file, job_id=cycle[0], cycle=cycle)


# Known job params and their types, per job type. `defaults:` may use any of them; a job's own
# `params:` may only use those of its type. Shared with the CLI's segmentation options.
_TILING_PARAMS: dict[str, type | tuple[type, ...]] = {
    "tile_size": int,
    "padding": int,
    "target_mpp": (int, float),
    "min_tissue": (int, float),
    "mpp": (int, float),  # overrides the slide's own pixel size
}
PARAM_TYPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "tissue": dict(_TILING_PARAMS),
    "segment": {**_TILING_PARAMS, "model": str, "batch_size": int, "device": str, "precision": str},
    "export": {"format": str},
}


# Params that need more than a type check: name -> (test, what the value must be).
_PARAM_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "tile_size": (lambda v: v > 0, "a positive integer"),
    "batch_size": (lambda v: v > 0, "a positive integer"),
    "padding": (lambda v: v >= 0, "an integer >= 0"),
    "min_tissue": (lambda v: 0 <= v <= 1, "a number between 0 and 1"),
    "target_mpp": (lambda v: math.isfinite(v) and v > 0, "a positive number (µm per pixel)"),
    "mpp": (lambda v: math.isfinite(v) and v > 0, "a positive number (µm per pixel)"),
    "format": (lambda v: v in EXPORT_FORMATS, f"one of {', '.join(EXPORT_FORMATS)}"),
}
# Job ids name output folders (<run>/<job_id>/), so they must be safe path components.
_JOB_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _error(
    msg: str,
    *,
    file: str | None,
    job_id: str | None = None,
    cycle: tuple[str, ...] | None = None,
) -> WorkflowError:
    where = f"{file}: " if file else ""
    return WorkflowError(where + msg, file=file, job_id=job_id, cycle=cycle)


def _type_names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    if float in types:
        types = tuple(t for t in types if t is not int)  # "a number" covers integers
    names = {int: "an integer", float: "a number", str: "a string"}
    return " or ".join(names.get(t, f"a {t.__name__}") for t in types)


def _check_params(
    params: Mapping[str, Any],
    allowed: Mapping[str, type | tuple[type, ...]],
    *,
    where: str,
    file: str | None,
    job_id: str | None,
) -> None:
    for key, value in params.items():
        if key not in allowed:
            valid = ", ".join(sorted(allowed))
            msg = f"{where}: unknown param {key!r}; valid params here: {valid}"
            raise _error(msg, file=file, job_id=job_id)
        types = allowed[key]
        # bool subclasses int, but `tile_size: true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, types):
            msg = f"{where}: param {key!r} must be {_type_names(types)}, not {type(value).__name__} {value!r}"
            raise _error(msg, file=file, job_id=job_id)
        if key in _PARAM_RULES:
            ok, what = _PARAM_RULES[key]
            if not ok(value):
                msg = f"{where}: param {key!r} must be {what}, got {value!r}"
                raise _error(msg, file=file, job_id=job_id)


def _check_image(wf: Workflow, job: Job, *, where: str, file: str | None) -> None:
    path = wf.image_path(job)
    assert path is not None  # callers only pass jobs with an image
    if not path.exists():
        why = "does not exist; fix the path (relative paths start at the workflow's folder)"
    elif path.is_dir():
        why = "is a directory, not a slide file"
    elif not path.is_file():
        why = "is not a regular file"
    elif not os.access(path, os.R_OK):
        why = "is not readable; check its permissions"
    else:
        return
    raise _error(f"{where}: image {str(path)!r} {why}", file=file, job_id=job.job_id)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def validate_workflow(wf: Workflow, *, file: str | None = None, check_images: bool = True) -> None:
    """Raise WorkflowError for the first problem found; messages name `file` and the job."""
    if not wf.name.strip():
        raise _error("workflow 'name' is empty; give the workflow a name", file=file)
    if not wf.branches:
        raise _error("workflow has no branches; add at least one under 'dag'", file=file)
    if wf.profile is not None:
        try:
            check_profile_name(wf.profile)
        except ProfileError as exc:
            raise _error(f"profile: {exc}", file=file) from exc
    all_params = {k: t for types in PARAM_TYPES.values() for k, t in types.items()}
    _check_params(wf.defaults, all_params, where="defaults", file=file, job_id=None)

    branch_names: set[str] = set()
    seen: dict[str, str] = {}  # casefolded job id -> job id
    for branch in wf.branches:
        if not branch.name.strip():
            raise _error("a branch has an empty name; name every branch under 'dag'", file=file)
        if branch.name in branch_names:
            raise _error(f"branch {branch.name!r} appears twice; rename one", file=file)
        branch_names.add(branch.name)
        if not branch.jobs:
            msg = f"branch {branch.name!r} has no jobs; add a job or remove the branch"
            raise _error(msg, file=file)
        for job in branch.jobs:
            _check_job_alone(job, branch=branch.name, seen=seen, file=file)

    for branch, job in wf.jobs():
        where = f"job {job.job_id!r} in branch {branch.name!r}"
        for dep in job.depends_on:
            if dep == job.job_id:
                raise _error(f"{where} depends on itself", file=file, job_id=job.job_id)
            if dep not in seen.values():
                msg = f"{where} depends on unknown job {dep!r}{_suggest(dep, seen.values())}"
                raise _error(msg, file=file, job_id=job.job_id)
        if len(set(job.depends_on)) != len(job.depends_on):
            msg = f"{where} lists a job twice in 'depends_on'; list each once"
            raise _error(msg, file=file, job_id=job.job_id)

    g = wf.graph()
    if not nx.is_directed_acyclic_graph(g):
        rank = {job.job_id: i for i, (_, job) in enumerate(wf.jobs())}
        raise _cycle_error(g, rank, file=file)

    for job_id, (x, y) in wf.layout.items():
        if job_id not in seen.values():
            msg = f"layout names unknown job {job_id!r}{_suggest(job_id, seen.values())}"
            raise _error(msg, file=file, job_id=job_id)
        if not (math.isfinite(x) and math.isfinite(y)):
            msg = f"layout of job {job_id!r} must be two finite numbers [x, y]"
            raise _error(msg, file=file, job_id=job_id)

    if check_images:
        for branch, job in wf.jobs():
            if job.image is not None:
                where = f"job {job.job_id!r} in branch {branch.name!r}"
                _check_image(wf, job, where=where, file=file)


def _check_job_alone(job: Job, *, branch: str, seen: dict[str, str], file: str | None) -> None:
    """Checks that need only the job itself (and the ids seen so far)."""
    where = f"job {job.job_id!r} in branch {branch!r}"
    if not _JOB_ID.fullmatch(job.job_id) or job.job_id in {".", ".."}:
        msg = f"{where}: invalid job_id; use 1-64 of A-Z a-z 0-9 _ . - (it names the job's output folder)"
        raise _error(msg, file=file, job_id=job.job_id)
    folded = job.job_id.casefold()
    if folded in seen:
        # Output folders collide on case-insensitive file systems (macOS, Windows) too.
        same = "appears twice" if seen[folded] == job.job_id else f"clashes with {seen[folded]!r}"
        msg = f"{where}: job_id {same}; job ids must be unique (ignoring case)"
        raise _error(msg, file=file, job_id=job.job_id)
    seen[folded] = job.job_id
    if job.type not in JOB_TYPES:
        msg = f"{where}: unknown type {job.type!r}; valid types: {', '.join(JOB_TYPES)}"
        raise _error(msg, file=file, job_id=job.job_id)
    if job.type == "export":
        if job.image is not None:
            msg = f"{where}: export jobs take no 'image'; they export the jobs in 'depends_on'"
            raise _error(msg, file=file, job_id=job.job_id)
        if not job.depends_on:
            msg = f"{where}: export jobs need 'depends_on' listing the jobs to export"
            raise _error(msg, file=file, job_id=job.job_id)
    elif not job.image:
        msg = f"{where}: {job.type} jobs need an 'image' (a slide path)"
        raise _error(msg, file=file, job_id=job.job_id)
    _check_params(job.params, PARAM_TYPES[job.type], where=where, file=file, job_id=job.job_id)
