"""The job types wsidesk knows: one registry that validation, the CLI, the editor and the README read.

Adding a job type is one module under `wsidesk/core/jobs/` that defines its params class, its run
function and its `JobType`, plus its name in `JOB_TYPES` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from wsidesk.core.jobs.export import EXPORT
from wsidesk.core.jobs.params import JobParams, JobType, ParamSpec
from wsidesk.core.jobs.segment import SEGMENT
from wsidesk.core.jobs.tissue import TISSUE

JOB_TYPES: Mapping[str, JobType] = MappingProxyType({t.name: t for t in (TISSUE, SEGMENT, EXPORT)})


def job_type(name: str) -> JobType | None:
    return JOB_TYPES.get(name)


def all_params() -> dict[str, ParamSpec]:
    """Every param of every job type by name (what a workflow's `defaults` may set)."""
    out: dict[str, ParamSpec] = {}
    for t in JOB_TYPES.values():
        for spec in t.params.specs():
            out.setdefault(spec.name, spec)
    common = {spec.name for spec in JobParams.specs()}  # last, as in each job type's own specs()
    return {n: s for n, s in out.items() if n not in common} | {n: s for n, s in out.items() if n in common}


def param_problem(name: str, value: Any, *, job_type_name: str | None = None) -> str | None:
    """Why `value` is not valid for param `name` (of that job type, else of any), or None."""
    specs = all_params() if job_type_name is None else {s.name: s for s in JOB_TYPES[job_type_name].params.specs()}
    spec = specs.get(name)
    if spec is None:
        return f"unknown param {name!r}; valid params here: {', '.join(sorted(specs))}"
    return spec.problem(value)


def params_table() -> str:
    """The README's params table (Markdown), one row per param and job type it belongs to."""
    rows = ["| param | job types | type | default | valid values | what it does |", "|---|---|---|---|---|---|"]
    for name, spec in all_params().items():
        types = ", ".join(f"`{t.name}`" for t in JOB_TYPES.values() if t.spec(name) is not None)
        defaults = {t.name: s.shown_default for t in JOB_TYPES.values() if (s := t.spec(name)) is not None}
        if len(set(defaults.values())) == 1:
            default = next(iter(defaults.values()))
        else:
            default = "; ".join(f"{value} ({job})" for job, value in defaults.items())
        rows.append(
            f"| `{name}` (`{spec.option}`) | {types} | {spec.type.__name__} | {default} | {spec.rule()} | {spec.help} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # `python -m wsidesk.core.jobs.registry` prints the README's table
    print(params_table(), end="")
