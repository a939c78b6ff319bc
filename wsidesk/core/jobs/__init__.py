"""Job types: each maps to a function taking a JobContext and returning its output files."""

from __future__ import annotations

from wsidesk.core.errors import JobError
from wsidesk.core.jobs.context import JobContext, JobFunction
from wsidesk.core.jobs.task import JobHooks, JobSpec, JobTask, run_job


def job_function(job_type: str) -> JobFunction:
    """The function that runs jobs of `job_type` (imported lazily: segmentation pulls in torch)."""
    if job_type == "tissue":
        from wsidesk.core.jobs.tissue import run_tissue_job

        return run_tissue_job
    if job_type == "segment":
        from wsidesk.core.jobs.segment import run_segment_job

        return run_segment_job
    if job_type == "export":
        from wsidesk.core.jobs.export import run_export_job

        return run_export_job
    msg = f"job type {job_type!r} cannot run in this version of wsidesk"
    raise JobError(msg)


__all__ = ["JobContext", "JobFunction", "JobHooks", "JobSpec", "JobTask", "job_function", "run_job"]
