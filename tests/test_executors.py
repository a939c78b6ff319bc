"""One suite for every executor: headless threads and the GUI's QThreadPool."""

from __future__ import annotations

import threading
import time

import pytest

from wsidesk.core.scheduler.executors import ThreadExecutor


@pytest.fixture(params=["thread", "qt"])
def make_executor(request):
    made = []
    if request.param == "qt":
        qtbot = request.getfixturevalue("qtbot")
        from wsidesk.gui.bridges.qt_executor import QtExecutor

        def wait(predicate, timeout=10.0):
            qtbot.waitUntil(lambda: bool(predicate()), timeout=int(timeout * 1000))

        def make(workers):
            ex = QtExecutor(workers)
            made.append(ex)
            return ex, wait
    else:

        def wait(predicate, timeout=10.0):
            deadline = time.monotonic() + timeout
            while not predicate():
                assert time.monotonic() < deadline, "timed out"
                time.sleep(0.002)

        def make(workers):
            ex = ThreadExecutor(workers)
            made.append(ex)
            return ex, wait

    yield make
    for ex in made:
        ex.shutdown(wait=True)


def test_executor_delivers_results_and_errors(make_executor):
    ex, wait = make_executor(2)
    got = []
    ex.submit(lambda: 41 + 1, lambda r, e: got.append((r, e)))
    boom = ValueError("boom")

    def fail():
        raise boom

    ex.submit(fail, lambda r, e: got.append((r, e)))
    wait(lambda: len(got) == 2)
    assert (42, None) in got
    assert (None, boom) in got


def test_executor_never_exceeds_max_workers(make_executor):
    ex, wait = make_executor(3)
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    done = []

    def work():
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1

    for _ in range(12):
        ex.submit(work, lambda r, e: done.append(e))
    wait(lambda: len(done) == 12)
    assert done == [None] * 12
    assert 1 < state["max"] <= 3


def test_executor_runs_work_off_the_calling_thread(make_executor):
    ex, wait = make_executor(1)
    caller = threading.get_ident()
    seen = []
    ex.submit(threading.get_ident, lambda r, e: seen.append(r))
    wait(lambda: seen)
    assert seen[0] != caller


def test_thread_executor_rejects_zero_workers():
    with pytest.raises(ValueError, match="at least 1"):
        ThreadExecutor(0)


def test_qt_executor_survives_20000_jobs(qtbot):
    """PySide6 6.12.0 on CPython 3.11 aborts (none_dealloc) after ~5,000 QThreadPool.start() calls."""
    from wsidesk.gui.bridges.qt_executor import QtExecutor

    ex = QtExecutor(4)
    results = []
    for i in range(20_000):
        ex.submit(lambda i=i: i, lambda r, e: results.append(r))
    qtbot.waitUntil(lambda: len(results) == 20_000, timeout=120_000)
    ex.shutdown()
    assert sorted(results) == list(range(20_000))
    assert ex.pending == 0


def test_qt_executor_delivers_done_on_gui_thread(qtbot):
    from wsidesk.gui.bridges.qt_executor import QtExecutor

    ex = QtExecutor(2)
    gui = threading.get_ident()
    seen = []
    ex.submit(lambda: None, lambda r, e: seen.append(threading.get_ident()))
    qtbot.waitUntil(lambda: bool(seen))
    ex.shutdown()
    assert seen == [gui]


def test_done_is_never_called_from_inside_submit(make_executor):
    """The runner submits under its lock; an inline completion would re-enter dispatch."""
    ex, wait = make_executor(2)
    inside = threading.local()
    calls = []

    def done(result, error):
        calls.append(getattr(inside, "submitting", False))

    for _ in range(200):
        inside.submitting = True
        ex.submit(int, done)
        time.sleep(0.0005)
        inside.submitting = False
    wait(lambda: len(calls) == 200)
    assert not any(calls)
