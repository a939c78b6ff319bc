"""Job and run states: one vocabulary for the planner, the store, events and every display.

They are ``StrEnum``s, so each member *is* its string: the store's TEXT columns, ``summary.json`` and
``events.jsonl`` hold exactly the words they held before, and a state read back from the store as a
plain string compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "pending"
    # QUEUED and WAITING are display states (the graph editor colours nodes with them);
    # the planner and the store never assign them.
    QUEUED = "queued"
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


TERMINAL_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED})
# The states the planner keeps jobs in (and counts in its snapshot), in that order.
SCHEDULED_JOB_STATES = (
    JobState.PENDING,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.SKIPPED,
    JobState.CANCELLED,
)


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"  # shown while the run's profile waits for a slot; never stored
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C or a lost executor: resumable
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        """Work may still start: the run is running or waits for its profile's slot."""
        return self in (RunStatus.RUNNING, RunStatus.WAITING)


UNFINISHED_RUN_STATUSES = (RunStatus.RUNNING, RunStatus.INTERRUPTED)  # stored; the run can be resumed
