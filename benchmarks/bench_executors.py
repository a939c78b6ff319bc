"""Round-trip overhead per job of wsidesk's executors vs a bare ThreadPoolExecutor.

Each wsidesk job is a real `JobTask` whose job function does nothing (its context is built and its
output folder checked, as for any job); the bare pool runs `int`.

Run: QT_QPA_PLATFORM=offscreen python benchmarks/bench_executors.py [--jobs N] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _nothing(ctx: object) -> dict[str, str]:
    return {}


def noop_task(out_dir: Path):  # noqa: ANN201 - a JobTask; wsidesk imported lazily
    """A job task that does nothing: what the executors add per job, without the job's own work."""
    from wsidesk.core.jobs.context import MemoryCheckpoints
    from wsidesk.core.jobs.task import JobHooks, JobSpec, JobTask
    from wsidesk.core.workflow.model import Branch, Job, Workflow

    job = Job("noop", "tissue")
    spec = JobSpec(
        run_id="bench",
        profile="bench",
        workflow=Workflow("bench", (Branch("b", (job,)),)),
        branch="b",
        job=job,
        params={},
        image=None,
        out_dir=out_dir,
        function=_nothing,
    )
    return JobTask(spec, JobHooks(emit=lambda *a: None, is_cancelled=lambda: False, checkpoints=MemoryCheckpoints()))


_OUT = Path(tempfile.mkdtemp(prefix="wsidesk-bench-"))


def bare(jobs: int, workers: int) -> float:
    """Same round trip (submit, run, completion callback) on the standard library alone."""
    finished = threading.Event()
    count = [0]
    lock = threading.Lock()

    def done(future):
        with lock:
            count[0] += 1
            if count[0] == jobs:
                finished.set()

    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        for _ in range(jobs):
            pool.submit(int).add_done_callback(done)
        finished.wait()
        return time.perf_counter() - start


def threads(jobs: int, workers: int) -> float:
    from wsidesk.core.scheduler.executors import ThreadExecutor

    ex = ThreadExecutor(workers)
    finished = threading.Event()
    count = [0]
    lock = threading.Lock()

    def done(result, error):
        with lock:
            count[0] += 1
            if count[0] == jobs:
                finished.set()

    task = noop_task(_OUT)
    start = time.perf_counter()
    for _ in range(jobs):
        ex.submit(task, done)
    finished.wait()
    elapsed = time.perf_counter() - start
    ex.shutdown()
    return elapsed


def qt(jobs: int, workers: int) -> float:
    from PySide6.QtWidgets import QApplication

    from wsidesk.gui.bridges.qt_executor import QtExecutor

    app = QApplication.instance() or QApplication([])
    ex = QtExecutor(workers)
    count = [0]

    def done(result, error):
        count[0] += 1

    task = noop_task(_OUT)
    start = time.perf_counter()
    for _ in range(jobs):
        ex.submit(task, done)
    while count[0] < jobs:
        app.processEvents()
    elapsed = time.perf_counter() - start
    ex.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, {args.jobs} no-op jobs, "
        f"{args.workers} workers, best of {args.repeats}"
    )
    base = min(bare(args.jobs, args.workers) for _ in range(args.repeats))
    print(f"  ThreadPoolExecutor (bare): {1e6 * base / args.jobs:7.1f} µs/job")
    for name, fn in (("ThreadExecutor", threads), ("QtExecutor (QThreadPool)", qt)):
        best = min(fn(args.jobs, args.workers) for _ in range(args.repeats))
        print(f"  {name:25s}: {1e6 * best / args.jobs:7.1f} µs/job  ratio {best / base:5.2f}x bare")


if __name__ == "__main__":
    main()
