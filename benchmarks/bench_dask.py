"""The Dask executor vs the local one, through the real Runner (planner, store, events log).

Run (needs ``pip install -e .[cluster]``)::

    python benchmarks/bench_dask.py                    # both parts, the defaults below
    python benchmarks/bench_dask.py --jobs 400 --skip-slides

1. Per-job overhead: `--jobs` no-op jobs (the job function returns at once), measured two ways:
   *chain*: one branch, so each job starts only when the one before has finished (the latency a job
   pays: runner + executor round trip); *parallel*: `--workers` branches sharing the jobs (throughput).
   Executors: local ThreadExecutor, Dask on a LocalCluster with worker threads (in-process), and with
   worker processes (127.0.0.1), each with `--workers` single-threaded workers.
2. Slides: `--slides` demo slides of `--size`² px, one branch each (tissue, then segment with the bundled
   `wsidesk_test_nuclei` model on CPU, 256 px tiles, padding 32, batch 8): the local executor with
   `--workers` threads vs a `--workers`-process LocalCluster (Dask gives each worker process one
   torch thread: OMP_NUM_THREADS=1). Workers start before the clock; the workflow runs twice: in the
   first run each worker process imports torch and loads the model, the second finds them loaded (the
   per-process model cache).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsidesk.core.scheduler.executors import Executor, ThreadExecutor  # noqa: E402
from wsidesk.core.scheduler.runner import Runner  # noqa: E402
from wsidesk.core.store import Store  # noqa: E402
from wsidesk.core.workflow.model import Branch, Job, Workflow  # noqa: E402


def noop(ctx: Any) -> dict[str, str]:
    return {}


def _run(executor: Executor, workflow: Workflow, data: Path, **runner_kwargs: Any) -> tuple[float, str]:
    store = Store(data)
    try:
        runner = Runner(store, executor, **runner_kwargs)
        start = time.perf_counter()
        run_id = runner.submit(workflow, profile="bench")
        runner.wait()
        elapsed = time.perf_counter() - start
        return elapsed, str(runner.run_status(run_id))
    finally:
        store.close()


def _executors(workers: int) -> list[tuple[str, Callable[[], Executor]]]:
    from wsidesk.core.scheduler.dask_executor import DaskExecutor

    return [
        ("local threads", lambda: ThreadExecutor(workers)),
        ("dask, worker threads", lambda: DaskExecutor.connect(None, max_workers=workers, processes=False)),
        ("dask, worker processes", lambda: DaskExecutor.connect(None, max_workers=workers, processes=True)),
    ]


def overhead(jobs: int, workers: int, repeats: int, tmp: Path) -> dict[str, dict[str, float]]:
    chain = Workflow("chain", (Branch("only", tuple(Job(f"j{i}", "tissue") for i in range(jobs))),))
    per_branch = max(1, jobs // workers)
    parallel = Workflow(
        "parallel",
        tuple(Branch(f"b{b}", tuple(Job(f"b{b}j{i}", "tissue") for i in range(per_branch))) for b in range(workers)),
    )
    results: dict[str, dict[str, float]] = {}
    for name, make in _executors(workers):
        executor = make()
        try:
            _run(executor, chain, tmp / "warm", job_functions={"tissue": noop})  # start-up costs out of the way
            best = {"chain": float("inf"), "parallel": float("inf")}
            for r in range(repeats):
                for label, wf, n in (("chain", chain, jobs), ("parallel", parallel, per_branch * workers)):
                    elapsed, status = _run(executor, wf, tmp / f"{label}{r}", job_functions={"tissue": noop})
                    assert status == "succeeded", status
                    best[label] = min(best[label], elapsed / n)
        finally:
            executor.shutdown()
        results[name] = best
        print(
            f"  {name:24s}: chain {1e3 * best['chain']:7.2f} ms/job   parallel {1e3 * best['parallel']:7.2f} ms/job",
            flush=True,
        )
    return results


def slides(n: int, size: int, workers: int, tmp: Path) -> dict[str, float]:
    from wsidesk.core.scheduler.dask_executor import DaskExecutor
    from wsidesk.core.slide.demo import write_demo_slide

    paths = [write_demo_slide(tmp / f"slide{i}.svs", width=size, height=size, seed=10 + i).path for i in range(n)]
    defaults = {"model": "wsidesk_test_nuclei", "tile_size": 256, "padding": 32, "batch_size": 8, "device": "cpu"}
    workflow = Workflow(
        "slides",
        tuple(
            Branch(f"s{i}", (Job(f"t{i}", "tissue", str(p)), Job(f"c{i}", "segment", str(p), depends_on=(f"t{i}",))))
            for i, p in enumerate(paths)
        ),
        defaults=defaults,
    )
    results: dict[str, float] = {}
    for name, make in (
        ("local threads", lambda: ThreadExecutor(workers)),
        ("dask, worker processes", lambda: DaskExecutor.connect(None, max_workers=workers)),
    ):
        executor = make()
        folder = name.replace(" ", "_").replace(",", "")
        try:
            # First run: each worker process imports torch and loads the model; second: warm workers.
            times = []
            for attempt in ("cold", "warm"):
                elapsed, status = _run(executor, workflow, tmp / f"{folder}-{attempt}")
                assert status == "succeeded", status
                times.append(elapsed)
        finally:
            executor.shutdown()
        results[name] = times[1]
        print(
            f"  {name:24s}: first run {times[0]:6.1f} s, again on warm workers {times[1]:6.1f} s "
            f"({times[1] / n:4.1f} s/slide)",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slides", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--skip-slides", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    import dask
    import distributed
    import torch

    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, dask {dask.__version__}, "
        f"distributed {distributed.__version__}, torch {torch.__version__}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="wsidesk-bench-dask-"))
    try:
        print(
            f"1. per-job overhead through the Runner: {args.jobs} no-op jobs, {args.workers} workers, "
            f"best of {args.repeats} (chain: one branch, jobs one after another; parallel: "
            f"{args.workers} branches)"
        )
        overhead(args.jobs, args.workers, args.repeats, tmp)
        if not args.skip_slides:
            print(
                f"2. {args.slides} demo slides of {args.size}x{args.size} px, tissue + segment "
                f"(wsidesk_test_nuclei, CPU, tiles 256/32, batch 8), {args.workers} workers"
            )
            slides(args.slides, args.size, args.workers, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
