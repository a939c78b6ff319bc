"""Runner: planner + executor + store, with small real job functions that record what ran.

The same semantics suite runs on every executor: local threads, and Dask on an in-process
LocalCluster with worker threads and with worker processes. The recorder keeps its log in a file
so that jobs running in another process are seen too.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

from wsidesk.core.errors import JobError
from wsidesk.core.scheduler.executors import ThreadExecutor
from wsidesk.core.scheduler.runner import Runner
from wsidesk.core.store import Store
from wsidesk.core.workflow.model import Branch, Job, Workflow

_RECORDERS = itertools.count()
_RECORDER_DIRS: list[Path] = []  # removed when each test ends


class Release:
    """A flag in a file: `set()` here releases held jobs wherever they run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self) -> None:
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()


class Recorder:
    """Job function that writes an output file, logs starts and ends, fails or blocks on request.

    Picklable, and its log is a file (one O_APPEND write per line), so that jobs running in Dask
    worker processes are recorded as well as jobs on local threads.
    """

    def __init__(self, *, fail: set[str] = frozenset(), hold: set[str] = frozenset()) -> None:
        self.fail, self.hold = set(fail), set(hold)
        self.root = Path(tempfile.mkdtemp(prefix=f"wsidesk-recorder{next(_RECORDERS)}-"))
        _RECORDER_DIRS.append(self.root)
        self.log = self.root / "log.txt"
        self.release = Release(self.root / "release")

    def __call__(self, ctx):
        self._write("start", ctx)
        try:
            if ctx.job.job_id in self.hold:
                while not self.release.is_set():
                    ctx.check_cancelled()
                    time.sleep(0.01)
            else:
                time.sleep(0.005)  # let overlapping jobs actually overlap
            if ctx.job.job_id in self.fail:
                raise JobError(f"{ctx.job.job_id} failed on purpose")
            out = ctx.out_dir / "out.txt"
            out.write_text(ctx.job.job_id)
            return {"out": str(out)}
        finally:
            self._write("end", ctx)

    def _write(self, what: str, ctx) -> None:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{what} {ctx.run_id} {ctx.branch} {ctx.job.job_id}\n".encode())
        finally:
            os.close(fd)

    def _lines(self) -> list[list[str]]:
        try:
            return [line.split() for line in self.log.read_text().splitlines()]
        except FileNotFoundError:
            return []

    @property
    def started(self) -> list[tuple[str, str]]:  # (run_id, job_id)
        return [(run, job) for what, run, _, job in self._lines() if what == "start"]

    @property
    def running(self) -> int:
        return sum(1 if what == "start" else -1 for what, *_ in self._lines())

    def _maxima(self) -> tuple[int, int]:
        running, most, per_branch, most_branch = 0, 0, defaultdict(int), 0
        for what, run, branch, _ in self._lines():
            step = 1 if what == "start" else -1
            running += step
            per_branch[(run, branch)] += step
            most, most_branch = max(most, running), max(most_branch, per_branch[(run, branch)])
        return most, most_branch

    @property
    def max_running(self) -> int:
        return self._maxima()[0]

    @property
    def max_per_branch(self) -> int:
        return self._maxima()[1]


def wf(name: str, branches: dict[str, list[str]], deps: dict[str, tuple[str, ...]] | None = None) -> Workflow:
    deps = deps or {}
    return Workflow(
        name=name,
        branches=tuple(
            Branch(b, tuple(Job(j, "tissue", "slide.svs", depends_on=deps.get(j, ())) for j in jobs))
            for b, jobs in branches.items()
        ),
    )


@pytest.fixture(params=["thread", "dask-threads", "dask-processes"])
def env(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slide.svs").write_bytes(b"x")
    store = Store(tmp_path / "data")
    made = []
    if request.param == "thread":
        new_executor = ThreadExecutor
    else:
        from wsidesk.core.scheduler.dask_executor import DaskExecutor

        cluster = request.getfixturevalue(request.param.replace("-", "_") + "_cluster")

        def new_executor(workers):
            return DaskExecutor.connect(cluster.scheduler_address, max_workers=workers)

    def make(job_function, *, workers: int = 4, max_active_profiles: int = 3, sink=None) -> Runner:
        executor = new_executor(workers)
        made.append(executor)
        return Runner(
            store, executor, max_active_profiles=max_active_profiles, sink=sink, job_functions={"tissue": job_function}
        )

    yield store, make
    for executor in made:
        executor.shutdown(wait=True)
    store.close()
    while _RECORDER_DIRS:
        shutil.rmtree(_RECORDER_DIRS.pop(), ignore_errors=True)


def events(store: Store, profile: str, run_id: str) -> list[dict]:
    path = store.get_run(profile, run_id).run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_branch_jobs_run_fifo_one_at_a_time_and_branches_in_parallel(env):
    store, make = env
    rec = Recorder()
    runner = make(rec, workers=3)
    run_id = runner.submit(wf("w", {"A": ["a1", "a2", "a3"], "B": ["b1", "b2"], "C": ["c1"]}), profile="p")
    assert runner.wait(10)
    assert runner.run_status(run_id) == "succeeded"
    assert rec.max_per_branch == 1
    assert rec.max_running <= 3
    order = [j for _, j in rec.started]
    assert [j for j in order if j.startswith("a")] == ["a1", "a2", "a3"]
    assert [j for j in order if j.startswith("b")] == ["b1", "b2"]


def test_same_branch_name_in_two_runs_does_not_serialize(env, wait_until):
    store, make = env
    rec = Recorder(hold={"x1", "y1"})
    runner = make(rec, workers=4)
    r1 = runner.submit(wf("w1", {"branch_A": ["x1"]}), profile="p")
    r2 = runner.submit(wf("w2", {"branch_A": ["y1"]}), profile="p")
    wait_until(lambda: rec.running >= 2, timeout=5, what="both runs' branch_A jobs to start")
    assert rec.running == 2, "both runs' branch_A jobs should run at once"
    rec.release.set()
    assert runner.wait(10)
    assert runner.run_status(r1) == runner.run_status(r2) == "succeeded"


def test_failure_skips_rest_of_branch_and_dependents_only(env):
    store, make = env
    runner = make(Recorder(fail={"a1"}))
    run_id = runner.submit(wf("w", {"A": ["a1", "a2"], "B": ["b1"], "C": ["c1"]}, deps={"c1": ("a1",)}), profile="p")
    assert runner.wait(10)
    states = {j.job_id: j.state for j in store.jobs(run_id)}
    assert states == {"a1": "failed", "a2": "skipped", "b1": "succeeded", "c1": "skipped"}
    summary = json.loads((store.get_run("p", run_id).run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["jobs"]["a1"]["error"] == "a1 failed on purpose"
    assert summary["jobs"]["b1"]["outputs"]["out"].endswith("b1/out.txt")
    names = [e["event"] for e in events(store, "p", run_id)]
    assert names.count("job_failed") == 1 and names.count("job_skipped") == 2
    assert names[0] == "run_submitted" and names[-1] == "run_finished"


def test_events_log_follows_the_contract(env):
    store, make = env
    runner = make(Recorder())
    run_id = runner.submit(wf("My WF", {"A": ["a1"]}), profile="alice")
    assert runner.wait(10)
    log = events(store, "alice", run_id)
    for record in log:
        assert isinstance(record["ts"], float)
        assert record["run_id"] == run_id and record["profile"] == "alice" and record["workflow"] == "My WF"
    job_events = [e for e in log if e["event"].startswith("job_")]
    assert [e["event"] for e in job_events] == ["job_started", "job_succeeded"]
    assert all(e["branch"] == "A" and e["job_id"] == "a1" for e in job_events)
    assert log[-1]["event"] == "run_finished" and log[-1]["status"] == "succeeded"
    copy = store.get_run("alice", run_id).run_dir / "workflow.yaml"
    assert "My WF" in copy.read_text()


def test_unexpected_crash_fails_job_with_its_type(env):
    store, make = env

    def crash(ctx):
        raise ZeroDivisionError("division by zero")

    runner = make(crash, workers=2)
    run_id = runner.submit(wf("w", {"A": ["a1"]}), profile="p")
    assert runner.wait(10)
    assert store.jobs(run_id)[0].error == "ZeroDivisionError: division by zero"


def test_fourth_profile_waits_until_a_slot_frees(env, wait_until):
    store, make = env
    rec = Recorder(hold={"p1j", "p2j", "p3j"})
    seen = []
    runner = make(rec, workers=8, sink=seen.append)
    runs = {p: runner.submit(wf("w", {"A": [f"{p}j"]}), profile=p) for p in ("p1", "p2", "p3", "p4")}
    wait_until(lambda: rec.running >= 3, timeout=5, what="three profiles' jobs to start")
    time.sleep(0.05)  # a fourth profile, wrongly let in, would start now
    assert sorted(j for _, j in rec.started) == ["p1j", "p2j", "p3j"]
    queued = [e for e in seen if e.event == "profile_queued"]
    assert [(e.profile, e.fields["position"]) for e in queued] == [("p4", 1)]
    rec.release.set()
    assert runner.wait(10)
    assert all(runner.run_status(r) == "succeeded" for r in runs.values())
    names_p4 = [e["event"] for e in events(store, "p4", runs["p4"])]
    assert names_p4.index("profile_queued") < names_p4.index("profile_activated") < names_p4.index("job_started")


def test_cancel_run_stops_running_job_and_cancels_pending(env, wait_until):
    store, make = env
    rec = Recorder(hold={"a1"})
    runner = make(rec)
    run_id = runner.submit(wf("w", {"A": ["a1", "a2"]}), profile="p")
    wait_until(lambda: rec.started, timeout=30, what="the first job to start")
    runner.cancel_run(run_id)
    assert runner.wait(10)
    assert runner.run_status(run_id) == "cancelled"
    assert {j.job_id: j.state for j in store.jobs(run_id)} == {"a1": "cancelled", "a2": "cancelled"}


def test_interrupted_run_resumes_without_rerunning_succeeded_jobs(env, wait_until):
    store, make = env
    rec = Recorder(hold={"a2"})
    runner = make(rec)
    run_id = runner.submit(wf("w", {"A": ["a1", "a2", "a3"]}), profile="p")
    wait_until(lambda: len(rec.started) >= 2, timeout=30, what="two jobs to start")
    runner.interrupt()
    assert runner.wait(10)
    assert runner.run_status(run_id) == "interrupted"
    assert {j.job_id: j.state for j in store.jobs(run_id)} == {"a1": "succeeded", "a2": "pending", "a3": "pending"}

    rec2 = Recorder()
    runner2 = make(rec2)
    assert runner2.resume(run_id, profile="p") == run_id
    assert runner2.wait(10)
    assert runner2.run_status(run_id) == "succeeded"
    assert [j for _, j in rec2.started] == ["a2", "a3"]
    log = events(store, "p", run_id)
    assert [e["event"] for e in log].count("run_submitted") == 2
    assert log[-1]["status"] == "succeeded"


def test_resume_of_another_profiles_run_is_refused(env):
    store, make = env
    runner = make(Recorder())
    run_id = runner.submit(wf("w", {"A": ["a1"]}), profile="alice")
    assert runner.wait(10)
    from wsidesk.core.errors import ProfileError

    with pytest.raises(ProfileError):
        runner.resume(run_id, profile="bob")


def test_retry_failed_branch_reruns_it_and_keeps_the_rest(env):
    store, make = env
    rec = Recorder(fail={"a2"})
    runner = make(rec)
    run_id = runner.submit(
        wf("w", {"A": ["a1", "a2", "a3"], "B": ["b1"], "C": ["c1"]}, deps={"c1": ("a3",)}), profile="p"
    )
    assert runner.wait(10)
    assert runner.run_status(run_id) == "failed"

    rec.fail.clear()
    runner.retry_branch(run_id, "A", profile="p")
    assert runner.wait(10)
    assert [j for _, j in rec.started][-2:] == ["a2", "a3"]
    states = {j.job_id: j.state for j in store.jobs(run_id)}
    # c1 was skipped because of A; it stays skipped until its own branch is retried.
    assert states == {"a1": "succeeded", "a2": "succeeded", "a3": "succeeded", "b1": "succeeded", "c1": "skipped"}
    assert runner.run_status(run_id) == "failed"
    runner.retry_branch(run_id, "C", profile="p")
    assert runner.wait(10)
    assert runner.run_status(run_id) == "succeeded"
    with pytest.raises(Exception, match="nothing to retry"):
        runner.retry_branch(run_id, "A", profile="p")


def test_retry_branch_refuses_when_a_dependency_elsewhere_failed(env):
    store, make = env
    runner = make(Recorder(fail={"a1"}))
    run_id = runner.submit(wf("w", {"A": ["a1"], "C": ["c1"]}, deps={"c1": ("a1",)}), profile="p")
    assert runner.wait(10)
    with pytest.raises(Exception, match="retry branch 'A' first"):
        runner.retry_branch(run_id, "C", profile="p")
