"""One suite for every executor: headless threads, the GUI's QThreadPool, and Dask (a real
in-process LocalCluster, with worker threads and with worker processes)."""

from __future__ import annotations

import os
import threading
import time
from functools import partial

import pytest

from wsidesk.core.jobs.context import MemoryCheckpoints
from wsidesk.core.jobs.task import JobHooks, JobSpec, JobTask
from wsidesk.core.scheduler.executors import ThreadExecutor
from wsidesk.core.workflow.model import Branch, Job, Workflow

_JOB = Job("job", "tissue")
_WORKFLOW = Workflow("w", (Branch("b", (_JOB,)),))


def _call(fn, ctx):
    return fn()


@pytest.fixture
def task(tmp_path):
    """`task(fn)`: a job task whose job function returns `fn()`."""

    def make(fn):
        spec = JobSpec(
            run_id="r",
            profile="p",
            workflow=_WORKFLOW,
            branch="b",
            job=_JOB,
            params={},
            image=None,
            out_dir=tmp_path / "job",
            function=partial(_call, fn),
        )
        hooks = JobHooks(emit=lambda *a: None, is_cancelled=lambda: False, checkpoints=MemoryCheckpoints())
        return JobTask(spec, hooks)

    return make


def where():
    return os.getpid(), threading.get_ident()


@pytest.fixture(params=["thread", "qt", "dask-threads", "dask-processes"])
def make_executor(request, wait_until):
    made = []
    if request.param.startswith("dask"):
        from wsidesk.core.scheduler.dask_executor import DaskExecutor

        cluster = request.getfixturevalue(request.param.replace("-", "_") + "_cluster")

        def make(workers):
            ex = DaskExecutor.connect(cluster.scheduler_address, max_workers=min(workers, 4))
            made.append(ex)
            return ex, partial(wait_until, timeout=30.0, what="the executor to call back", interval=0.002)
    elif request.param == "qt":
        qtbot = request.getfixturevalue("qtbot")
        from wsidesk.gui.bridges.qt_executor import QtExecutor

        def wait(predicate, timeout=10.0):
            qtbot.waitUntil(lambda: bool(predicate()), timeout=int(timeout * 1000))

        def make(workers):
            ex = QtExecutor(workers)
            made.append(ex)
            return ex, wait
    else:

        def make(workers):
            ex = ThreadExecutor(workers)
            made.append(ex)
            return ex, partial(wait_until, timeout=10.0, what="the executor to call back", interval=0.002)

    yield make
    for ex in made:
        ex.shutdown(wait=True)


def test_executor_delivers_results_and_errors(make_executor, task):
    ex, wait = make_executor(2)
    got = []
    ex.submit(task(lambda: 41 + 1), lambda r, e: got.append((r, e)))

    def fail():
        raise ValueError("boom")

    ex.submit(task(fail), lambda r, e: got.append((r, e)))
    wait(lambda: len(got) == 2)
    assert (42, None) in got
    errors = [e for _, e in got if e is not None]
    assert len(errors) == 1
    assert type(errors[0]) is ValueError and str(errors[0]) == "boom"


def _span():
    start = time.time()
    time.sleep(0.02)
    return start, time.time()


def test_executor_never_exceeds_max_workers(make_executor, task):
    ex, wait = make_executor(3)
    done = []
    for _ in range(12):
        ex.submit(task(_span), lambda r, e: done.append((r, e)))
    wait(lambda: len(done) == 12)
    assert [e for _, e in done] == [None] * 12
    # Overlap measured by the jobs' own clocks, so that it also works across worker processes.
    edges = sorted([(s, 1) for (s, _), _ in done] + [(t, -1) for (_, t), _ in done])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    assert 1 < most <= 3


def test_executor_runs_work_off_the_calling_thread(make_executor, task):
    ex, wait = make_executor(1)
    seen = []
    ex.submit(task(where), lambda r, e: seen.append(r))
    wait(lambda: seen)
    assert tuple(seen[0]) != where()


def test_thread_executor_rejects_zero_workers():
    with pytest.raises(ValueError, match="at least 1"):
        ThreadExecutor(0)


def test_qt_executor_survives_20000_jobs(qtbot, task):
    """PySide6 6.12.0 on CPython 3.11 aborts (none_dealloc) after ~5,000 QThreadPool.start() calls."""
    from wsidesk.gui.bridges.qt_executor import QtExecutor

    ex = QtExecutor(4)
    results = []
    for i in range(20_000):
        ex.submit(task(lambda i=i: i), lambda r, e: results.append(r))
    qtbot.waitUntil(lambda: len(results) == 20_000, timeout=120_000)
    ex.shutdown()
    assert sorted(results) == list(range(20_000))
    assert ex.pending == 0


def test_qt_executor_delivers_done_on_gui_thread(qtbot, task):
    from wsidesk.gui.bridges.qt_executor import QtExecutor

    ex = QtExecutor(2)
    gui = threading.get_ident()
    seen = []
    ex.submit(task(lambda: None), lambda r, e: seen.append(threading.get_ident()))
    qtbot.waitUntil(lambda: bool(seen))
    ex.shutdown()
    assert seen == [gui]


def test_done_is_never_called_from_inside_submit(make_executor, task):
    """The runner submits under its lock; an inline completion would re-enter dispatch."""
    ex, wait = make_executor(2)
    inside = threading.local()
    calls = []

    def done(result, error):
        calls.append(getattr(inside, "submitting", False))

    n = 50 if type(ex).__name__ == "DaskExecutor" else 200
    for _ in range(n):
        inside.submitting = True
        ex.submit(task(int), done)
        time.sleep(0.0005)
        inside.submitting = False
    wait(lambda: len(calls) == n)
    assert not any(calls)
