"""ExecutorConfig: one description of where jobs run, for the CLI, the GUI settings and make_executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsidesk.core.scheduler.cluster import ClusterConfig
from wsidesk.core.scheduler.executor_config import ExecutorConfig, make_executor
from wsidesk.core.scheduler.executors import ThreadExecutor


def test_config_rejects_unknown_kinds_and_zero_workers() -> None:
    with pytest.raises(ValueError, match="unknown executor 'ray'; use one of local, dask"):
        ExecutorConfig("ray")
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        ExecutorConfig("local", workers=0)


def test_a_blank_scheduler_address_means_none() -> None:
    assert ExecutorConfig("dask", "  ").scheduler_address is None
    assert ExecutorConfig("dask", " tcp://gpu-head:8786 ").scheduler_address == "tcp://gpu-head:8786"
    assert ExecutorConfig("dask", "") == ExecutorConfig("dask")


def test_describe_says_where_jobs_run() -> None:
    assert ExecutorConfig("local", workers=3).describe() == "jobs: this computer, 3 at a time"
    assert ExecutorConfig("dask", "tcp://gpu-head:8786").describe() == "jobs: Dask tcp://gpu-head:8786"
    assert ExecutorConfig("dask").describe() == "jobs: Dask local cluster on 127.0.0.1"


def test_cluster_settings_come_from_the_given_file_else_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert ExecutorConfig("dask").cluster_settings(data) == ClusterConfig()
    (data / "cluster.yaml").write_text("scheduler_address: tcp://head:8786\ntimeout: 3\n", encoding="utf-8")
    assert ExecutorConfig("dask").cluster_settings(data) == ClusterConfig("tcp://head:8786", 3.0)
    other = tmp_path / "other.yaml"
    other.write_text("timeout: 7\n", encoding="utf-8")
    assert ExecutorConfig("dask", cluster_file=other).cluster_settings(data) == ClusterConfig(None, 7.0)


def test_make_executor_builds_a_thread_pool_for_local() -> None:
    executor = make_executor(ExecutorConfig("local", workers=2))
    try:
        assert isinstance(executor, ThreadExecutor) and executor.max_workers == 2
    finally:
        executor.shutdown()
    with pytest.raises(ValueError, match="needs a number of workers"):
        make_executor(ExecutorConfig("local"))
