"""`wsidesk` commands end to end, in subprocesses, on a real (synthetic) Aperio slide."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def wsidesk(*args: str, data: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "WSIDESK_DATA_DIR": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "wsidesk", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        **kwargs,
    )


def spawn(*args: str, data: Path) -> subprocess.Popen:
    env = {**os.environ, "WSIDESK_DATA_DIR": str(data)}
    return subprocess.Popen(
        [sys.executable, "-m", "wsidesk", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture
def slide(demo_slide, tmp_path) -> Path:
    return Path(demo_slide.path)


def write_wf(tmp_path: Path, body: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def serial_wf(tmp_path: Path, slide: Path, n: int) -> Path:
    """`n` identical jobs that each really run (`cache: false`: no job reuses another's result)."""
    jobs = "\n".join(f"    - {{job_id: t{i}, type: tissue, image: {slide}}}" for i in range(n))
    return write_wf(tmp_path, f"name: serial\ndefaults: {{cache: false}}\ndag:\n  only:\n{jobs}\n")


def test_run_two_branches_writes_outputs_and_json_summary(tmp_path, slide):
    wf = write_wf(
        tmp_path,
        f"""
name: Two branches
dag:
  A:
    - {{job_id: a, type: tissue, image: {slide}}}
  B:
    - {{job_id: b, type: tissue, image: {slide}, params: {{tile_size: 256}}}}
""",
    )
    out = wsidesk("run", str(wf), "--json", "--profile", "alice", data=tmp_path / "data")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)["runs"][0]
    assert summary["status"] == "succeeded" and summary["profile"] == "alice"
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent.parent == tmp_path / "data" / "profiles" / "alice"
    assert (run_dir / "workflow.yaml").read_text() == wf.read_text()
    for job in ("a", "b"):
        tiles = json.loads((run_dir / job / "tiles.json").read_text())
        assert tiles["tissue"] > 0
        assert (run_dir / job / "tissue.png").stat().st_size > 0
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "tiles_planned" for e in events) == 2
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "succeeded"


def test_run_with_failing_job_exits_1_and_other_branch_finishes(tmp_path, slide):
    junk = tmp_path / "junk.svs"
    junk.write_text("this is not a slide")
    wf = write_wf(
        tmp_path,
        f"""
name: one bad slide
dag:
  bad:
    - {{job_id: bad1, type: tissue, image: junk.svs}}
    - {{job_id: bad2, type: tissue, image: junk.svs}}
  good:
    - {{job_id: good, type: tissue, image: {slide}}}
""",
    )
    out = wsidesk("run", str(wf), "--json", data=tmp_path / "data")
    assert out.returncode == 1, out.stderr
    jobs = json.loads(out.stdout)["runs"][0]["jobs"]
    assert jobs["bad1"]["state"] == "failed" and "junk.svs" in jobs["bad1"]["error"]
    assert jobs["bad2"]["state"] == "skipped"
    assert jobs["good"]["state"] == "succeeded"


def test_invalid_workflow_exits_2_and_nothing_runs(tmp_path, slide):
    wf = write_wf(tmp_path, f"name: x\ndag:\n  A:\n    - {{job_id: a, type: tissue, image: {slide}, colour: red}}\n")
    out = wsidesk("run", str(wf), data=tmp_path / "data")
    assert out.returncode == 2
    assert "wf.yaml" in out.stderr and "colour" in out.stderr
    assert not (tmp_path / "data" / "profiles").exists()


def test_validate_reports_each_file(tmp_path, slide):
    good = write_wf(tmp_path, f"name: ok\ndag:\n  A:\n    - {{job_id: a, type: tissue, image: {slide}}}\n", "good.yaml")
    cyclic = write_wf(
        tmp_path,
        f"""
name: cyclic
dag:
  A:
    - {{job_id: a, type: tissue, image: {slide}, depends_on: [b]}}
  B:
    - {{job_id: b, type: tissue, image: {slide}, depends_on: [a]}}
""",
        "cyclic.yaml",
    )
    assert wsidesk("validate", str(good), data=tmp_path / "d").returncode == 0
    out = wsidesk("validate", str(good), str(cyclic), data=tmp_path / "d")
    assert out.returncode == 2
    assert "cyclic.yaml" in out.stderr and "cycle" in out.stderr


def test_sigkill_mid_run_then_same_command_resumes(tmp_path, slide, wait_until):
    wf = serial_wf(tmp_path, slide, 12)
    data = tmp_path / "data"
    proc = spawn("run", str(wf), "--workers", "1", data=data)

    def two_jobs_done() -> list[Path]:
        found = list(data.glob("profiles/default/runs/*/events.jsonl"))
        return found if found and found[0].read_text().count('"job_succeeded"') >= 2 else []

    events_files = wait_until(two_jobs_done, timeout=120, what="two jobs to succeed in the run's events.jsonl")
    proc.kill()
    proc.wait()
    before = events_files[0].read_text().count('"job_succeeded"')
    assert 2 <= before < 12, "the kill should land mid-run"

    out = wsidesk("run", str(wf), "--workers", "1", "--json", data=data)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)["runs"][0]
    assert Path(summary["run_dir"]) == events_files[0].parent, "the same run is resumed"
    events = [json.loads(line) for line in events_files[0].read_text().splitlines()]
    starts = [e["job_id"] for e in events if e["event"] == "job_started"]
    assert {e["job_id"] for e in events if e["event"] == "job_succeeded"} == {f"t{i}" for i in range(12)}
    # Jobs that succeeded before the kill were not started again.
    assert all(starts.count(f"t{i}") == 1 for i in range(before))
    assert [e["resumed"] for e in events if e["event"] == "run_submitted"] == [False, True]


def test_ctrl_c_exits_130_and_rerun_resumes(tmp_path, slide, wait_until):
    wf = serial_wf(tmp_path, slide, 12)
    data = tmp_path / "data"
    proc = spawn("run", str(wf), "--workers", "1", data=data)

    def one_job_done() -> bool:
        logs = list(data.glob("profiles/default/runs/*/events.jsonl"))
        return bool(logs) and '"job_succeeded"' in logs[0].read_text()

    wait_until(one_job_done, timeout=120, what="a job to succeed in the run's events.jsonl")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    summary = json.loads(next(data.glob("profiles/default/runs/*/summary.json")).read_text())
    assert summary["status"] == "interrupted"
    assert any(j["state"] == "pending" for j in summary["jobs"].values())

    out = wsidesk("run", str(wf), "--workers", "1", "--json", data=data)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["runs"][0]["run_id"] == summary["run_id"]


def test_run_with_dask_executor_on_a_loopback_local_cluster(tmp_path, slide):
    pytest.importorskip("distributed")
    wf = serial_wf(tmp_path, slide, 2)
    out = wsidesk("run", str(wf), "--executor", "dask", "--workers", "1", "--json", data=tmp_path / "data")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)["runs"][0]
    assert summary["status"] == "succeeded"
    events = [json.loads(line) for line in (Path(summary["run_dir"]) / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "tiles_planned" for e in events) == 2  # worker events reached the client's log


def test_unreachable_dask_scheduler_exits_2_with_a_clear_error(tmp_path, slide):
    pytest.importorskip("distributed")
    data = tmp_path / "data"
    data.mkdir()
    (data / "cluster.yaml").write_text("scheduler_address: tcp://127.0.0.1:9\ntimeout: 1\n")
    out = wsidesk("run", str(serial_wf(tmp_path, slide, 1)), "--executor", "dask", data=data)
    assert out.returncode == 2
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in out.stderr
    assert not (data / "profiles").exists() or not list((data / "profiles").rglob("events.jsonl"))
    local = wsidesk("run", str(serial_wf(tmp_path, slide, 1)), "--scheduler-address", "tcp://x:1", data=data)
    assert local.returncode == 2 and "need --executor dask" in local.stderr


def test_resume_unknown_run_is_invalid_input(tmp_path):
    out = wsidesk("run", "--resume", "nope", data=tmp_path / "data")
    assert out.returncode == 2
    assert "no run 'nope'" in out.stderr


def test_profiles_add_list_remove(tmp_path):
    data = tmp_path / "data"
    assert wsidesk("profiles", "add", "alice", data=data).returncode == 0
    out = wsidesk("profiles", "list", "--json", data=data)
    assert json.loads(out.stdout)["profiles"] == ["alice"]
    bad = wsidesk("profiles", "add", "../x", data=data)
    assert bad.returncode == 2 and "invalid profile name" in bad.stderr
    assert wsidesk("profiles", "remove", "alice", data=data).returncode == 0


def test_demo_slide_command_writes_aperio_slide_and_truth(tmp_path):
    out = wsidesk(
        "demo-slide", str(tmp_path / "d.svs"), "--width", "2048", "--height", "1536", "--json", data=tmp_path / "data"
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["nuclei"] > 0 and Path(info["truth"]).is_file()
    import openslide

    with openslide.OpenSlide(str(tmp_path / "d.svs")) as s:
        assert s.properties["openslide.vendor"] == "aperio"
        assert s.dimensions == (2048, 1536)


def test_run_finds_a_model_file_relative_to_the_workflow_not_the_current_folder(tmp_path):
    from wsidesk.core.slide.demo import write_demo_slide

    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    bundled = next((ROOT / "resources" / "models" / "wsidesk_test_nuclei").glob("*/instanseg.pt"))
    shutil.copy(bundled, project / "models" / "nuclei.pt")
    write_demo_slide(project / "s.svs", width=1024, height=768, seed=4)
    wf = write_wf(
        project,
        "name: own model\ndag:\n  b:\n"
        "    - {job_id: seg, type: segment, image: s.svs, params: {model: models/nuclei.pt, tile_size: 256}}\n",
    )
    out = wsidesk("run", str(wf), "--json", data=tmp_path / "data")  # the current folder is the repo
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = Path(json.loads(out.stdout)["runs"][0]["run_dir"])
    assert len((run_dir / "seg" / "cells.csv").read_text().splitlines()) > 10


def test_segment_on_a_grayscale_slide_warns_that_the_model_expects_rgb(tmp_path):
    import numpy as np
    import tifffile

    gray = tmp_path / "gray.tif"
    rng = np.random.default_rng(0)
    data = np.full((768, 1024), 235, np.uint8)
    data[200:600, 300:800] = rng.integers(60, 160, (400, 500), dtype=np.uint8)  # "tissue", but no colour
    tifffile.imwrite(gray, data, tile=(256, 256), metadata=None)
    out = wsidesk(
        "segment",
        str(gray),
        "--mpp",
        "0.5",
        "--model",
        "wsidesk_test_nuclei",
        "--tile-size",
        "256",
        data=tmp_path / "data",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "has no colour (grayscale)" in out.stderr and "RGB brightfield" in out.stderr
