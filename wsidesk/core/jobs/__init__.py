"""Job types: each module declares its params class and run function; registry.py lists them."""

from __future__ import annotations

from wsidesk.core.errors import JobError
from wsidesk.core.jobs.context import JobContext, JobFunction
from wsidesk.core.jobs.task import JobHooks, JobSpec, JobTask, run_job


def job_function(job_type: str) -> JobFunction:
    """The function that runs jobs of `job_type`."""
    from wsidesk.core.jobs.registry import JOB_TYPES

    if job_type not in JOB_TYPES:
        msg = f"job type {job_type!r} cannot run in this version of wsidesk"
        raise JobError(msg)
    return JOB_TYPES[job_type].run


__all__ = ["JobContext", "JobFunction", "JobHooks", "JobSpec", "JobTask", "job_function", "run_job"]
