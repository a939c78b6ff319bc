"""Events: what happened, as plain frozen values that any thread may emit.

The names and fields are the user-facing contract of ``events.jsonl``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

EVENT_NAMES = frozenset(
    {
        "run_submitted",
        "profile_queued",
        "profile_activated",
        "profile_released",
        "job_started",
        "job_succeeded",
        "job_failed",
        "job_skipped",
        "job_cancelled",
        "tiles_planned",
        "tile_batch_done",
        "run_finished",
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of ``events.jsonl``; ``payload`` carries in-memory data (e.g. cell polygons) never logged."""

    event: str
    run_id: str
    profile: str
    workflow: str
    branch: str | None = None
    job_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    payload: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.event not in EVENT_NAMES:
            msg = f"unknown event name {self.event!r}; expected one of {sorted(EVENT_NAMES)}"
            raise ValueError(msg)
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "ts": self.ts,
            "event": self.event,
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
