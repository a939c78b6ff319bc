"""What a job function receives: its job, params, paths, and ways to report and to stop."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wsidesk.core.errors import JobCancelled

if TYPE_CHECKING:  # jobs are declared before workflows, which validate against them
    from wsidesk.core.workflow.model import Job, Workflow

# emit(event_name, fields, payload): payload is kept in memory only (e.g. cell polygons for the GUI).
Emit = Callable[[str, Mapping[str, Any], Any], None]


class TileCheckpoints(Protocol):
    """Per-tile progress of one job, persisted in the run store so a rerun continues from it."""

    def load(self) -> dict[int, tuple[str, str | None]]:  # tile index -> (state, detail)
        ...

    def save(self, states: Iterable[tuple[int, str, str | None]]) -> None: ...


class MemoryCheckpoints:
    """Checkpoints kept in memory: for jobs run outside a store (tests, one-off calls)."""

    def __init__(self) -> None:
        self._states: dict[int, tuple[str, str | None]] = {}

    def load(self) -> dict[int, tuple[str, str | None]]:
        return dict(self._states)

    def save(self, states: Iterable[tuple[int, str, str | None]]) -> None:
        self._states.update({index: (state, detail) for index, state, detail in states})


@dataclass(frozen=True, slots=True)
class JobContext:
    run_id: str
    profile: str
    workflow: Workflow
    branch: str
    job: Job
    params: Mapping[str, Any]  # workflow defaults merged with the job's params
    image: Path | None  # resolved absolute path of the job's image
    out_dir: Path  # <run>/<job_id>/, created by the runner
    inputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # dep job_id -> its outputs
    emit: Emit = field(default=lambda name, fields, payload=None: None)
    is_cancelled: Callable[[], bool] = field(default=lambda: False)
    checkpoints: TileCheckpoints = field(default_factory=MemoryCheckpoints)
    models_dir: Path | None = None  # <data>/models: where named segmentation models are installed

    def check_cancelled(self) -> None:
        """Call between steps: raises JobCancelled once the run has been cancelled."""
        if self.is_cancelled():
            msg = f"job {self.job.job_id} of run {self.run_id} was cancelled"
            raise JobCancelled(msg)


# A job function returns its outputs: a name ("tiles", "tissue_png", ...) -> file path.
JobFunction = Callable[[JobContext], dict[str, str]]
