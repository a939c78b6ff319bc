"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, TypeVar  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:
    from wsidesk.core.slide.demo import DemoTruth

REPO_ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.01) -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail naming `what` after `timeout` s.

    For waits on other threads and processes; Qt tests use `qtbot.waitUntil` (it keeps the event loop running).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., object]:
    """`wait_until(predicate, timeout=..., what=...)`: poll with a deadline instead of sleeping."""
    return wait_until


@pytest.fixture(scope="session")
def demo_slide(tmp_path_factory: pytest.TempPathFactory) -> DemoTruth:
    """A 4096x3072 synthetic H&E slide (Aperio SVS, mpp 0.5, seed 1), written once per session.

    `.path` is the slide, `.truth_path` its ground truth (see `wsidesk.core.slide.demo.load_truth`).
    """
    from wsidesk.core.slide.demo import write_demo_slide

    out = tmp_path_factory.mktemp("demo_slide") / "demo.svs"
    return write_demo_slide(out, width=4096, height=3072, mpp=0.5, seed=1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real test data folder ($WSIDESK_TEST_DATA or <repo>/../shared/data); skips when absent."""
    env = os.environ.get("WSIDESK_TEST_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (set WSIDESK_TEST_DATA)")
    return path


def _local_cluster(*, processes: bool):
    pytest.importorskip("distributed")
    from wsidesk.core.scheduler.dask_executor import start_local_cluster

    cluster = start_local_cluster(2, processes=processes, threads_per_worker=2)
    yield cluster
    cluster.close()


@pytest.fixture(scope="session")
def dask_threads_cluster():
    """An in-process Dask LocalCluster: 2 workers x 2 threads in this process (inproc, no ports)."""
    yield from _local_cluster(processes=False)


@pytest.fixture(scope="session")
def dask_processes_cluster():
    """A Dask LocalCluster with 2 worker processes x 2 threads on 127.0.0.1."""
    yield from _local_cluster(processes=True)
