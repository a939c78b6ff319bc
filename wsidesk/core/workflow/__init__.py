"""Workflows: a DAG of jobs grouped in FIFO branches, read from and written to YAML."""

from __future__ import annotations

from wsidesk.core.jobs.registry import JOB_TYPES
from wsidesk.core.workflow.io import dump_workflow, load_workflow, loads_workflow, save_workflow
from wsidesk.core.workflow.model import Branch, Job, Workflow, validate_workflow

__all__ = [
    "JOB_TYPES",
    "Branch",
    "Job",
    "Workflow",
    "dump_workflow",
    "load_workflow",
    "loads_workflow",
    "save_workflow",
    "validate_workflow",
]
