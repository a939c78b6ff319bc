"""Property: any valid workflow survives dump -> load unchanged; its order respects every edge."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wsidesk.core.names import is_safe_name
from wsidesk.core.workflow import (
    JOB_TYPES,
    Branch,
    Job,
    Workflow,
    dump_workflow,
    loads_workflow,
    validate_workflow,
)

SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
# Printable text: names with control characters are refused (they would reach terminals raw).
printable = st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")) | st.just(" ")
names = st.text(printable, min_size=1, max_size=20).filter(lambda s: s.strip() and s.isprintable())
job_ids = st.text(SAFE, min_size=1, max_size=12).filter(is_safe_name)
mpp = st.floats(min_value=0.01, max_value=100) | st.integers(1, 10)
PARAM_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "tile_size": st.integers(1, 4096),
    "padding": st.integers(0, 512),
    "batch_size": st.integers(1, 256),
    "target_mpp": mpp,
    "mpp": mpp,
    "min_tissue": st.floats(0, 1) | st.sampled_from([0, 1]),
    "model": names,
    "device": st.sampled_from(["auto", "cpu", "cuda", "mps"]),
    "format": st.sampled_from(["geojson", "csv"]),
}
TYPE_KEYS = {
    "tissue": ["tile_size", "padding", "target_mpp", "min_tissue", "mpp"],
    "segment": ["tile_size", "padding", "target_mpp", "min_tissue", "mpp", "model", "batch_size", "device"],
    "export": ["format"],
}


def params_for(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: PARAM_VALUES[k] for k in keys})


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    n_jobs = draw(st.integers(1, 12))
    n_branches = draw(st.integers(1, min(4, n_jobs)))
    branch_names = draw(st.lists(names, min_size=n_branches, max_size=n_branches, unique=True))
    ids = draw(st.lists(job_ids, min_size=n_jobs, max_size=n_jobs, unique_by=str.casefold))
    jobs: list[list[Job]] = [[] for _ in range(n_branches)]
    for i, job_id in enumerate(ids):
        # Edges only point from earlier-generated jobs to later ones, so the graph is acyclic.
        branch = i if i < n_branches else draw(st.integers(0, n_branches - 1))
        earlier = ids[:i]
        kind = draw(st.sampled_from(tuple(JOB_TYPES) if earlier else ("tissue", "segment")))
        deps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        if kind == "export" and not deps:
            deps = [earlier[0]]
        image = None if kind == "export" else draw(names)
        jobs[branch].append(
            Job(job_id, kind, image=image, depends_on=tuple(deps), params=draw(params_for(TYPE_KEYS[kind])))
        )
    coords = st.floats(allow_nan=False, allow_infinity=False)
    return Workflow(
        name=draw(names),
        branches=tuple(Branch(n, tuple(js)) for n, js in zip(branch_names, jobs, strict=True)),
        profile=draw(st.none() | job_ids),
        defaults=draw(params_for(list(PARAM_VALUES))),
        layout=draw(st.dictionaries(st.sampled_from(ids), st.tuples(coords, coords))),
    )


@settings(max_examples=150, deadline=None)
@given(workflows())
def test_any_valid_workflow_round_trips_through_yaml(wf: Workflow) -> None:
    validate_workflow(wf, check_images=False)
    assert loads_workflow(dump_workflow(wf), check_images=False) == wf


@settings(max_examples=150, deadline=None)
@given(workflows())
def test_topological_order_respects_every_edge(wf: Workflow) -> None:
    order = wf.topological_order()
    assert sorted(order) == sorted(job.job_id for _, job in wf.jobs())
    position = {job_id: i for i, job_id in enumerate(order)}
    for before, after in wf.graph().edges:
        assert position[before] < position[after]
    assert wf.topological_order() == order  # deterministic
