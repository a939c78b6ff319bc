"""Events: what happened, as plain frozen values that any thread may emit.

The names and fields are the user-facing contract of ``events.jsonl``. ``EventName`` is a ``StrEnum``,
so a name serialises to exactly the JSON string it always was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from wsidesk.core.states import JobState

if TYPE_CHECKING:
    from wsidesk.core.segment.engine import BatchResult
    from wsidesk.core.tiling.grid import TilePlan
    from wsidesk.core.tiling.tissue import TissueMask


class EventName(StrEnum):
    RUN_SUBMITTED = "run_submitted"
    PROFILE_QUEUED = "profile_queued"
    PROFILE_ACTIVATED = "profile_activated"
    PROFILE_RELEASED = "profile_released"
    JOB_STARTED = "job_started"
    JOB_SUCCEEDED = "job_succeeded"
    JOB_FAILED = "job_failed"
    JOB_SKIPPED = "job_skipped"
    JOB_CANCELLED = "job_cancelled"
    JOB_REUSED = "job_reused"  # a finished result with the same fingerprint was reused; job_succeeded follows
    TILES_PLANNED = "tiles_planned"
    TILE_BATCH_DONE = "tile_batch_done"
    RUN_FINISHED = "run_finished"


EVENT_NAMES = frozenset(EventName)


def event_name(name: str) -> EventName:
    """The EventName of a string; ValueError naming the valid ones for any other."""
    try:
        return EventName(name)
    except ValueError:
        msg = f"unknown event name {name!r}; expected one of {sorted(EVENT_NAMES)}"
        raise ValueError(msg) from None


# The one mapping from a job event to the state it puts the job in.
JOB_EVENT_STATES: Mapping[EventName, JobState] = MappingProxyType(
    {
        EventName.JOB_STARTED: JobState.RUNNING,
        EventName.JOB_SUCCEEDED: JobState.SUCCEEDED,
        EventName.JOB_FAILED: JobState.FAILED,
        EventName.JOB_SKIPPED: JobState.SKIPPED,
        EventName.JOB_CANCELLED: JobState.CANCELLED,
    }
)
PROFILE_EVENTS = frozenset({EventName.PROFILE_QUEUED, EventName.PROFILE_ACTIVATED, EventName.PROFILE_RELEASED})


@dataclass(frozen=True, slots=True)
class TilesPlannedPayload:
    """In-memory payload of ``tiles_planned``: the plan and the tissue mask it was made from."""

    plan: TilePlan
    mask: TissueMask


@dataclass(frozen=True, slots=True)
class Event:
    """One line of ``events.jsonl``; ``payload`` carries in-memory data (e.g. cell polygons) never logged.

    ``payload`` is a :class:`TilesPlannedPayload` on ``tiles_planned``, a ``BatchResult`` (or None) on
    ``tile_batch_done``, and None on every other event.
    """

    event: EventName
    run_id: str
    profile: str
    workflow: str
    branch: str | None = None
    job_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    payload: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", event_name(self.event))
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    @property
    def job_state(self) -> JobState | None:
        """The state a job event puts its job in; None for other events."""
        return JOB_EVENT_STATES.get(self.event)

    @property
    def planned(self) -> TilesPlannedPayload | None:
        """The plan and mask of a ``tiles_planned`` event, when they came with it."""
        payload = self.payload
        return payload if isinstance(payload, TilesPlannedPayload) else None

    @property
    def batch(self) -> BatchResult | None:
        """The batch of a ``tile_batch_done`` event, when it came with it (None after a resume that
        had nothing left to run)."""
        if self.payload is None:
            return None
        from wsidesk.core.segment.engine import BatchResult  # loaded already: the payload is one

        return self.payload if isinstance(self.payload, BatchResult) else None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "ts": self.ts,
            "event": self.event.value,
            "run_id": self.run_id,
            "profile": self.profile,
            "workflow": self.workflow,
        }
        if self.job_id is not None:
            record["branch"] = self.branch
            record["job_id"] = self.job_id
        record.update(self.fields)
        return record


# A sink may be called from any thread; it must not block for long.
EventSink = Callable[[Event], None]
