"""Dask executor: what only a cluster can do (worker death, lost scheduler, remote events), on real
in-process LocalClusters. The shared semantics suites (tests/test_executors.py and test_runner.py)
also run on Dask."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest

dask = pytest.importorskip("dask")
pytest.importorskip("distributed")

from wsidesk.core.errors import JobCancelled, WsideskError  # noqa: E402
from wsidesk.core.scheduler.cluster import (  # noqa: E402
    ClusterConfig,
    ClusterConfigError,
    find_cluster_config,
    load_cluster_config,
)
from wsidesk.core.scheduler.dask_executor import DaskConnectError, DaskExecutor, start_local_cluster  # noqa: E402
from wsidesk.core.scheduler.executor_config import ExecutorConfig, make_executor  # noqa: E402
from wsidesk.core.scheduler.executors import ThreadExecutor  # noqa: E402
from wsidesk.core.scheduler.runner import Runner  # noqa: E402
from wsidesk.core.store import Store  # noqa: E402
from wsidesk.core.workflow.model import Branch, Job, Workflow  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]


class MortalJob:
    """Job function that records its process id, then holds (to be killed) for the first `hold_attempts`
    attempts and succeeds on the next. Picklable; its state lives in files."""

    def __init__(self, root: Path, *, hold_attempts: int) -> None:
        self.pids = root / "pids"
        self.release = root / "release"
        self.stopped = root / "stopped"  # attempts that saw the cancel and stopped themselves
        self.hold_attempts = hold_attempts

    def __call__(self, ctx):
        with self.pids.open("a") as f:
            f.write(f"{os.getpid()}\n")
        attempt = len(self.pids.read_text().split())
        if attempt <= self.hold_attempts:
            while not self.release.exists():
                try:
                    ctx.check_cancelled()
                except JobCancelled:
                    with self.stopped.open("a") as f:
                        f.write(f"{attempt}\n")
                    raise
                time.sleep(0.02)
        out = ctx.out_dir / "out.txt"
        out.write_text(str(attempt))
        return {"out": str(out)}

    def attempts(self) -> list[int]:
        return [int(p) for p in self.pids.read_text().split()] if self.pids.exists() else []


def one_job_workflow(job_id: str = "j1") -> Workflow:
    return Workflow("w", (Branch("A", (Job(job_id, "tissue", "slide.svs"),)),))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slide.svs").write_bytes(b"x")
    s = Store(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def mortal_cluster():
    """Two single-threaded worker processes, for tests that kill them."""
    cluster = start_local_cluster(2, processes=True, threads_per_worker=1)
    yield cluster
    cluster.close()


def _kill_attempt(job: MortalJob, n: int, wait_until) -> int:
    wait_until(lambda: len(job.attempts()) >= n, timeout=30, what=f"attempt {n} to start")
    pid = job.attempts()[n - 1]
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.faults  # killed worker processes; the rest of the fault suite is in tests/faults
def test_job_whose_worker_dies_is_retried_once_on_another_worker(mortal_cluster, store, tmp_path, caplog, wait_until):
    caplog.set_level(logging.WARNING, logger="wsidesk.core.scheduler.dask_executor")
    job = MortalJob(tmp_path, hold_attempts=1)
    executor = DaskExecutor.connect(mortal_cluster.scheduler_address)
    runner = Runner(store, executor, job_functions={"tissue": job})
    try:
        run_id = runner.submit(one_job_workflow(), profile="p")
        killed = _kill_attempt(job, 1, wait_until)
        assert runner.wait(60)
    finally:
        executor.shutdown()
    assert runner.run_status(run_id) == "succeeded"
    first, second = job.attempts()
    assert first == killed and second != killed
    assert any("died while running job j1: retrying it once" in r.getMessage() for r in caplog.records)


@pytest.mark.faults  # killed worker processes; the rest of the fault suite is in tests/faults
def test_job_whose_worker_dies_twice_fails_with_a_clear_reason(mortal_cluster, store, tmp_path, wait_until):
    job = MortalJob(tmp_path, hold_attempts=2)
    executor = DaskExecutor.connect(mortal_cluster.scheduler_address)
    runner = Runner(store, executor, job_functions={"tissue": job})
    try:
        run_id = runner.submit(one_job_workflow(), profile="p")
        _kill_attempt(job, 1, wait_until)
        _kill_attempt(job, 2, wait_until)
        assert runner.wait(60)
    finally:
        executor.shutdown()
    assert runner.run_status(run_id) == "failed"
    error = store.jobs(run_id)[0].error
    assert "died while running job j1 twice" in error and "tcp://127.0.0.1:" in error
    assert len(job.attempts()) == 2


def test_cancel_drops_queued_tasks_and_stops_running_ones(dask_threads_cluster, store, tmp_path, wait_until):
    """Six held jobs on four worker threads: four run and stop at their next check, two never start."""
    job = MortalJob(tmp_path, hold_attempts=99)
    executor = DaskExecutor.connect(dask_threads_cluster.scheduler_address, max_workers=6)
    runner = Runner(store, executor, job_functions={"tissue": job})
    wf = Workflow("w", tuple(Branch(b, (Job(f"{b}1", "tissue", "slide.svs"),)) for b in "ABCDEF"))
    try:
        run_id = runner.submit(wf, profile="p")
        wait_until(lambda: len(job.attempts()) == 4, timeout=30, what="four jobs to run")
        time.sleep(0.2)
        runner.cancel_run(run_id)
        assert runner.wait(30)
    finally:
        executor.shutdown()
    assert runner.run_status(run_id) == "cancelled"
    assert {j.state for j in store.jobs(run_id)} == {"cancelled"}
    assert len(job.attempts()) == 4
    # Running jobs were told, not abandoned: each stopped itself before its slot was given back.
    assert len(job.stopped.read_text().split()) == 4


def test_lost_scheduler_interrupts_the_run_which_then_resumes(store, tmp_path, wait_until):
    cluster = start_local_cluster(1, processes=False, threads_per_worker=2)
    job = MortalJob(tmp_path, hold_attempts=1)
    executor = DaskExecutor.connect(cluster.scheduler_address, timeout=2)
    runner = Runner(store, executor, job_functions={"tissue": job})
    wf = Workflow("w", (Branch("A", (Job("a1", "tissue", "slide.svs"), Job("a2", "tissue", "slide.svs"))),))
    try:
        run_id = runner.submit(wf, profile="p", source=tmp_path / "wf.yaml")
        wait_until(lambda: len(job.attempts()) == 1, timeout=30, what="the job to start")
        cluster.sync(cluster.scheduler.close)  # the scheduler goes; the worker keeps running the job
        assert runner.wait(30)
    finally:
        (tmp_path / "release").touch()  # the orphaned job ends too
        executor.shutdown()
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):  # no scheduler to say goodbye to
            cluster.close(timeout=10)
    assert runner.run_status(run_id) == "interrupted", store.jobs(run_id)
    assert isinstance(runner.executor_error, WsideskError)
    assert "lost the Dask scheduler" in str(runner.executor_error)
    assert "scheduler-connection-lost" in str(runner.executor_error)
    assert f"--resume {run_id}" in str(runner.executor_error)
    assert {j.job_id: j.state for j in store.jobs(run_id)} == {"a1": "pending", "a2": "pending"}
    summary = json.loads((store.get_run("p", run_id).run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"

    local = ThreadExecutor(2)
    try:
        resumed = Runner(store, local, job_functions={"tissue": job})
        assert resumed.resume(run_id, profile="p") == run_id
        assert resumed.wait(30)
    finally:
        local.shutdown()
    assert resumed.run_status(run_id) == "succeeded"


def test_tissue_and_segment_run_end_to_end_on_worker_processes(dask_processes_cluster, tmp_path):
    """A real workflow on a real slide through worker processes: events with payloads come back to the
    client's events log and sink, tile checkpoints reach the client's store, outputs exist."""
    from wsidesk.core.slide.demo import write_demo_slide
    from wsidesk.core.workflow.io import loads_workflow

    slide = write_demo_slide(tmp_path / "small.svs", width=1024, height=768, seed=3).path
    wf = loads_workflow(f"""
name: Dask end to end
defaults: {{model: wsidesk_test_nuclei, tile_size: 256, padding: 32, batch_size: 4, device: cpu}}
dag:
  A:
    - {{job_id: tissue, type: tissue, image: {slide}}}
    - {{job_id: cells, type: segment, image: {slide}, depends_on: [tissue]}}
""")
    store = Store(tmp_path / "data")
    seen = []
    executor = DaskExecutor.connect(dask_processes_cluster.scheduler_address)
    try:
        runner = Runner(store, executor, sink=seen.append)
        run_id = runner.submit(wf, profile="p")
        assert runner.wait(240)
    finally:
        executor.shutdown()
    assert runner.run_status(run_id) == "succeeded", store.jobs(run_id)
    run_dir = store.get_run("p", run_id).run_dir
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names.count("tile_batch_done") >= 2
    assert names.index("job_succeeded") < names.index("tile_batch_done")  # tissue first, then cells
    last_batch = max(i for i, n in enumerate(names) if n == "tile_batch_done")
    assert last_batch < max(i for i, n in enumerate(names) if n == "job_succeeded")  # all before it ends
    batches = [e for e in seen if e.event == "tile_batch_done" and e.payload is not None]
    assert batches and sum(len(b.payload.cells) for b in batches) > 0  # cell polygons travelled
    assert all(b.payload.cells[0].polygon.shape[1] == 2 for b in batches if b.payload.cells)
    planned = [e for e in seen if e.event == "tiles_planned"]
    assert planned and planned[0].planned is not None and planned[0].planned.plan.tissue > 0
    outputs = {j.job_id: j.outputs for j in store.jobs(run_id)}
    for path in (*outputs["tissue"].values(), *outputs["cells"].values()):
        assert Path(path).is_file()
    assert json.loads(Path(outputs["cells"]["cells"]).read_text())["features"]
    assert store.tile_states(run_id, "cells")  # checkpoint saves came back as events
    store.close()


def test_local_cluster_and_its_workers_listen_on_loopback_only(dask_threads_cluster, dask_processes_cluster):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    listening = [
        (proc.pid, conn.laddr.ip)
        for proc in [me, *me.children(recursive=True)]
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening
    assert all(ip in ("127.0.0.1", "::1") for _, ip in listening), listening
    for cluster in (dask_threads_cluster, dask_processes_cluster):
        info = cluster.scheduler_info
        assert all(addr.startswith(("inproc://", "tcp://127.0.0.1:")) for addr in info["workers"])


def test_make_executor_without_address_starts_a_loopback_cluster_and_closes_it():
    executor = make_executor(ExecutorConfig("dask", workers=1))
    try:
        assert executor.scheduler_address.startswith("tcp://127.0.0.1:")
        assert executor.max_workers == 1
    finally:
        executor.shutdown()


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(DaskConnectError, match=r"cannot connect to the Dask scheduler at tcp://127\.0\.0\.1:9"):
        DaskExecutor.connect("tcp://127.0.0.1:9", timeout=1)


def test_make_executor_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown executor 'ray'"):
        make_executor(ExecutorConfig("ray", workers=1))
    assert isinstance(make_executor(ExecutorConfig("local", workers=2)), ThreadExecutor)


# -- cluster settings ---------------------------------------------------------------------------
def test_cluster_file_maps_tls_to_dask_security(tmp_path):
    for name in ("ca.pem", "client.pem", "client-key.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "cluster.yaml"
    path.write_text("""
scheduler_address: tls://gpu-head.lab:8786
timeout: 12
tls:
  ca_file: ca.pem
  cert: client.pem
  key: client-key.pem
  require_encryption: true
""")
    config = load_cluster_config(path)
    assert config.scheduler_address == "tls://gpu-head.lab:8786" and config.timeout == 12
    security = config.security()
    assert security.tls_ca_file == str(tmp_path / "ca.pem")
    assert security.tls_client_cert == str(tmp_path / "client.pem")
    assert security.tls_client_key == str(tmp_path / "client-key.pem")
    assert security.require_encryption is True
    assert find_cluster_config(None, tmp_path) == config  # <data-dir>/cluster.yaml is the default


def test_cluster_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("tls: {ca_file: missing.pem, cert: missing.pem}\n")
    with pytest.raises(ClusterConfigError, match=r"tls.ca_file .*missing.pem does not exist"):
        load_cluster_config(path)
    path.write_text("scheduler: tcp://x:1\n")
    with pytest.raises(ClusterConfigError, match="unknown setting"):
        load_cluster_config(path)
    assert find_cluster_config(None, tmp_path / "nowhere") == ClusterConfig()


def test_job_specs_and_event_payloads_survive_the_standard_pickle(tmp_path):
    """What travels to and from workers: specs (with read-only workflow mappings) and batch payloads."""
    import pickle

    import numpy as np

    from wsidesk.core.jobs.task import JobSpec
    from wsidesk.core.segment.cells import Cell
    from wsidesk.core.segment.engine import BatchResult

    job = Job("j", "segment", "s.svs", params={"tile_size": 256})
    wf = Workflow("w", (Branch("A", (job,)),), defaults={"model": "m"}, layout={"j": (1, 2)})
    spec = JobSpec(
        run_id="r",
        profile="p",
        workflow=wf,
        branch="A",
        job=job,
        params=wf.job_params(job),
        image=tmp_path / "s.svs",
        out_dir=tmp_path / "j",
        checkpoints={3: ("done", None)},
    )
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.workflow.defaults["model"] == "m"
    cell = Cell(np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]), (1.3, 1.3), (0, 0, 4, 4), 7, {"area": 8.0}, id=1)
    batch = pickle.loads(pickle.dumps(BatchResult((7,), {8: "unreadable"}, (cell,), 2, 10, 1, {"read": 0.1})))
    assert batch.failed[8] == "unreadable" and batch.cells[0].measurements["area"] == 8.0
    np.testing.assert_array_equal(batch.cells[0].polygon, cell.polygon)
