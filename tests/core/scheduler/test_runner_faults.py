"""Runner and executors under faults: a store that cannot write, callbacks that raise, lost run folders."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from wsidesk.core.errors import StoreError, WorkflowError, WsideskError
from wsidesk.core.scheduler.executors import Completion, ThreadExecutor, deliver
from wsidesk.core.scheduler.runner import Runner
from wsidesk.core.states import JobState, RunStatus
from wsidesk.core.store import Store
from wsidesk.core.workflow.io import dump_workflow
from wsidesk.core.workflow.model import Branch, Job, Workflow

DISK_FULL = "disk full: 0.1 MB free in /data; free space and run the same command again to resume"


def wf(name: str = "w", jobs: tuple[str, ...] = ("a", "b")) -> Workflow:
    return Workflow(name=name, branches=(Branch("B", tuple(Job(j, "tissue", "slide.svs") for j in jobs)),))


def write_output(ctx):
    out = ctx.out_dir / "out.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(ctx.job.job_id)
    return {"out": str(out)}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slide.svs").write_bytes(b"x")
    store = Store(tmp_path / "data")
    executors = []

    def make(function=write_output, workers: int = 2) -> Runner:
        executor = ThreadExecutor(workers)
        executors.append(executor)
        return Runner(store, executor, job_functions={"tissue": function})

    yield store, make
    for executor in executors:
        executor.shutdown(wait=True)
    store.close()


def test_deliver_hands_an_exception_from_done_to_its_fault_handler() -> None:
    seen: list[BaseException] = []

    def done(result, error):
        raise RuntimeError("boom")

    deliver(Completion(done, seen.append), 1, None)
    assert [str(e) for e in seen] == ["boom"]


def test_thread_executor_never_loses_an_exception_raised_by_done(env) -> None:
    faults: list[BaseException] = []
    called = threading.Event()

    def done(result, error):
        raise StoreError(DISK_FULL)

    def fault(exc):
        faults.append(exc)
        called.set()

    class Task:
        def run(self):
            return {}

    executor = ThreadExecutor(1)
    executor.submit(Task(), Completion(done, fault))  # type: ignore[arg-type]
    assert called.wait(5)
    executor.shutdown()
    assert isinstance(faults[0], StoreError)


def test_run_ends_when_the_store_cannot_record_a_success(env, monkeypatch) -> None:
    store, make = env
    real = store.set_job_state

    def full(run_id, job_id, state, **kw):
        if state != JobState.RUNNING:
            raise StoreError(DISK_FULL)
        return real(run_id, job_id, state, **kw)

    monkeypatch.setattr(store, "set_job_state", full)
    runner = make()
    run_id = runner.submit(wf(), profile="p")
    assert runner.wait(10), "the run must end, not wait forever on a job whose end was not recorded"
    assert runner.run_status(run_id) == RunStatus.FAILED
    monkeypatch.setattr(store, "set_job_state", real)
    log = (store.get_run("p", run_id).run_dir / "events.jsonl").read_text()
    failed = [json.loads(x) for x in log.splitlines() if '"job_failed"' in x]
    assert failed and failed[0]["error"].startswith("disk full:")


def test_run_ends_when_the_event_log_and_summary_cannot_be_written(env, monkeypatch) -> None:
    store, make = env
    runner = make()
    monkeypatch.setattr(
        "wsidesk.core.store.eventlog.EventLog.write", lambda self, e: (_ for _ in ()).throw(OSError(28, "No space"))
    )
    run_id = runner.submit(wf(), profile="p")
    assert runner.wait(10)
    assert runner.run_status(run_id) == RunStatus.SUCCEEDED
    assert store.get_run("p", run_id).status == RunStatus.SUCCEEDED


def test_run_ends_when_done_itself_raises(env, monkeypatch) -> None:
    store, make = env
    runner = make()
    monkeypatch.setattr(runner, "_on_done", lambda key, result, error: (_ for _ in ()).throw(RuntimeError("bug")))
    run_id = runner.submit(wf(jobs=("a",)), profile="p")
    assert runner.wait(10)
    assert runner.run_status(run_id) == RunStatus.FAILED


def test_interrupt_writes_job_cancelled_once_per_job(env) -> None:
    store, make = env
    started = threading.Event()

    def hold(ctx):
        started.set()
        while True:
            ctx.check_cancelled()
            threading.Event().wait(0.01)

    runner = make(hold)
    run_id = runner.submit(wf(jobs=("a", "b", "c")), profile="p")
    assert started.wait(5)
    runner.interrupt()
    assert runner.wait(10)
    events = [json.loads(x) for x in (store.get_run("p", run_id).run_dir / "events.jsonl").read_text().splitlines()]
    cancelled = [e["job_id"] for e in events if e["event"] == "job_cancelled"]
    assert sorted(cancelled) == ["a", "b", "c"]


def test_resume_refuses_a_run_whose_owner_is_alive(env, tmp_path) -> None:
    store, make = env
    src = tmp_path / "wf.yaml"
    src.write_text(dump_workflow(wf()))
    store.create_run(run_id="r1", profile="p", workflow="w", jobs=[("a", "B"), ("b", "B")], owner_pid=os.getppid())
    store.get_run("p", "r1").run_dir.mkdir(parents=True)
    (store.get_run("p", "r1").run_dir / "workflow.yaml").write_text(src.read_text())
    with pytest.raises(WsideskError, match=f"still running in process {os.getppid()}"):
        make().resume("r1", profile="p")


def test_a_run_whose_folder_is_gone_is_marked_lost_and_a_fresh_run_starts(env, tmp_path, caplog) -> None:
    store, make = env
    src = tmp_path / "wf.yaml"
    text = dump_workflow(wf())
    src.write_text(text)
    store.create_run(
        run_id="gone",
        profile="p",
        workflow="w",
        jobs=[("a", "B"), ("b", "B")],
        source=str(src.resolve()),
        source_sha256=hashlib.sha256(text.encode()).hexdigest(),
        owner_pid=None,
    )
    runner = make()
    run_id = runner.submit(wf(), profile="p", source=src, source_text=text)
    assert run_id != "gone"
    assert runner.wait(10)
    assert runner.run_status(run_id) == RunStatus.SUCCEEDED
    assert store.get_run("p", "gone").status == RunStatus.FAILED
    assert "is gone; marked lost" in caplog.text
    with pytest.raises(StoreError, match="cannot be resumed: its folder"):
        _resume_interrupted(store, runner)


def _resume_interrupted(store: Store, runner: Runner) -> None:
    store.create_run(run_id="gone2", profile="p", workflow="w", jobs=[("a", "B")])
    store.set_run_status("gone2", RunStatus.INTERRUPTED)
    runner.resume("gone2", profile="p")


def test_run_folder_that_cannot_be_created_leaves_no_run_behind(env, monkeypatch) -> None:
    store, make = env
    runner = make()

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(StoreError, match="cannot create the run folder"):
        runner.submit(wf(), profile="p")
    monkeypatch.undo()
    assert store.list_runs("p") == []


def test_a_store_that_fails_after_the_folder_leaves_no_folder_behind(env, monkeypatch) -> None:
    store, make = env
    runner = make()
    monkeypatch.setattr(store, "create_run", lambda **k: (_ for _ in ()).throw(StoreError(DISK_FULL)))
    with pytest.raises(StoreError, match="disk full"):
        runner.submit(wf(), profile="p")
    assert not list((store.layout.root / "profiles").glob("p/runs/*"))


def test_an_invalid_workflow_copy_is_named_not_the_users_file(env, tmp_path) -> None:
    store, make = env
    src = tmp_path / "wf.yaml"
    src.write_text(dump_workflow(wf()))
    runner = make()
    store.create_run(run_id="r1", profile="p", workflow="w", jobs=[("a", "B")], source=str(src))
    store.set_run_status("r1", RunStatus.INTERRUPTED)
    copy = store.get_run("p", "r1").run_dir / "workflow.yaml"
    copy.parent.mkdir(parents=True)
    copy.write_text("name: w\ndag: [oops\n")
    with pytest.raises(WorkflowError) as caught:
        runner.resume("r1", profile="p")
    assert str(copy) in str(caught.value) and "own copy" in str(caught.value)


def test_a_workflow_file_name_that_is_not_utf8_still_runs(env, tmp_path) -> None:
    store, make = env
    src = Path(os.fsdecode(bytes(tmp_path) + b"/wf-\xff.yaml"))
    text = dump_workflow(wf())
    src.write_text(text)
    runner = make()
    run_id = runner.submit(wf(), profile="p", source=src, source_text=text)
    assert runner.wait(10)
    assert runner.run_status(run_id) == RunStatus.SUCCEEDED
    assert "\\xff" in (store.get_run("p", run_id).source or "")
