"""One error tree for everything wsidesk reports to a user."""

from __future__ import annotations


class WsideskError(Exception):
    """Base of every error wsidesk raises on purpose; its message is meant for the user."""


class SlideError(WsideskError):
    """A slide cannot be opened or read."""


class WorkflowError(WsideskError):
    """A workflow file or graph is invalid."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        job_id: str | None = None,
        cycle: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.job_id = job_id
        self.cycle = cycle


class ProfileError(WsideskError):
    """A profile name is invalid, unknown, or not allowed to see something."""


class StoreError(WsideskError):
    """The run store (SQLite database or data folder) cannot be used."""


class ModelError(WsideskError):
    """A segmentation model is missing, corrupt or cannot run."""


class JobError(WsideskError):
    """A job failed for a reason it could explain."""


class JobCancelled(WsideskError):
    """A job stopped at a safe point because its run was cancelled."""


class ExecutorLost(WsideskError):
    """The executor itself went away (e.g. the Dask scheduler): runs stop as interrupted, resumable."""
