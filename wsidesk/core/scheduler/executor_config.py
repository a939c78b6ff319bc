"""Where jobs run, as one value: `ExecutorConfig`, and `make_executor`, which builds what it asks for.

The CLI (`--executor/--workers/--scheduler-address/--cluster-config`), the GUI's saved settings and its
`wsidesk gui` session override all describe the executor with an `ExecutorConfig`; TLS and the connect
timeout of a Dask cluster come from its cluster file (`cluster.yaml`, see `cluster.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wsidesk.core.scheduler.cluster import ClusterConfig, find_cluster_config
from wsidesk.core.scheduler.dask_executor import DaskExecutor
from wsidesk.core.scheduler.executors import EXECUTOR_KINDS, Executor, ThreadExecutor


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """`kind` "local": a thread pool of `workers` jobs at a time (required to build it).

    `kind` "dask": a client of the scheduler at `scheduler_address`, else of the one the cluster file
    names, else of a LocalCluster on 127.0.0.1 with `workers` single-threaded worker processes; `workers`
    also caps the jobs the planner starts (None: the cluster's thread count). `cluster_file` is the
    cluster file to read (timeout, TLS); None: `<data-dir>/cluster.yaml` when it exists.
    """

    kind: str = "local"
    scheduler_address: str | None = None
    workers: int | None = None
    cluster_file: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTOR_KINDS:
            msg = f"unknown executor {self.kind!r}; use one of {', '.join(EXECUTOR_KINDS)}"
            raise ValueError(msg)
        if self.workers is not None and self.workers < 1:
            msg = f"workers must be at least 1, got {self.workers}"
            raise ValueError(msg)
        # An empty address (a blank settings field) means "none given".
        object.__setattr__(self, "scheduler_address", (self.scheduler_address or "").strip() or None)

    def cluster_settings(self, data_dir: Path) -> ClusterConfig:
        """The cluster file's settings: `cluster_file`, else `<data_dir>/cluster.yaml`, else defaults."""
        return find_cluster_config(self.cluster_file, data_dir)

    def describe(self) -> str:
        if self.kind == "local":
            return "jobs: this computer" + (f", {self.workers} at a time" if self.workers is not None else "")
        return f"jobs: Dask {self.scheduler_address or 'local cluster on 127.0.0.1'}"


def make_executor(
    config: ExecutorConfig,
    *,
    cluster: ClusterConfig | None = None,
    event_payloads: bool = True,
) -> Executor:
    """The executor `config` asks for; the CLI and the GUI both build theirs here.

    `cluster`: the cluster file's settings (`config.cluster_settings(data_dir)`; None: defaults) for a
    Dask executor. `event_payloads=False`: events come back without their in-memory payloads (cell
    polygons), for callers that show no live overlay.
    """
    if config.kind == "local":
        if config.workers is None:
            msg = "the local executor needs a number of workers"
            raise ValueError(msg)
        return ThreadExecutor(config.workers)
    settings = cluster or ClusterConfig()
    return DaskExecutor.connect(
        config.scheduler_address or settings.scheduler_address,
        security=settings.security(),
        timeout=settings.timeout,
        max_workers=config.workers,
        payloads=event_payloads,
    )
