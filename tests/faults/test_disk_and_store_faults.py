"""Full disks, read-only and deleted run folders, emptied or damaged stores, torn checkpoints, races.

Each test checks what a user sees (exit code, a message naming the thing, no traceback), that the store
stays consistent, and, where a run was interrupted, that running the same command again finishes it with
the same cells as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from wsidesk.core.slide.demo import write_demo_slide

ROOT = Path(__file__).resolve().parents[2]
SEGMENT_PARAMS = "{model: wsidesk_test_nuclei, tile_size: 256, padding: 32, batch_size: 2}"


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store-faults")
    write_demo_slide(folder / "s.svs", width=2048, height=1536, seed=3)
    wf = folder / "wf.yaml"
    wf.write_text(
        f"name: faults\ndag:\n  b:\n    - {{job_id: seg, type: segment, image: s.svs, params: {SEGMENT_PARAMS}}}\n"
    )
    return wf


@pytest.fixture(scope="module")
def reference_cells(workflow: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The cells of an uninterrupted run of `workflow`."""
    data = tmp_path_factory.mktemp("reference")
    result = subprocess.run(
        [sys.executable, "-m", "wsidesk", "run", str(workflow), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "WSIDESK_DATA_DIR": str(data)},
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return cell_rows(Path(json.loads(result.stdout)["runs"][0]["run_dir"]))


def cell_rows(run_dir: Path) -> list[str]:
    return sorted((run_dir / "seg" / "cells.csv").read_text().splitlines()[1:])


def assert_store_consistent(data: Path) -> None:
    db = sqlite3.connect(data / "wsidesk.sqlite3")
    try:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        for run_id, owner in db.execute("SELECT run_id, owner_pid FROM runs WHERE status = 'running'"):
            assert owner and _alive(owner), f"run {run_id} is left running without a live owner"
    finally:
        db.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start(cli, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "wsidesk", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "WSIDESK_DATA_DIR": str(cli.data)},
        cwd=ROOT,
    )


def batches_done(cli) -> int:
    logs = list(cli.data.glob("profiles/default/runs/*/events.jsonl"))
    if not logs:
        return 0
    return sum(1 for line in logs[0].read_text().splitlines() if "tile_batch_done" in line)


def kill_after_two_batches(cli, workflow: Path, wait_until) -> Path:
    proc = start(cli, "run", str(workflow))
    wait_until(lambda: batches_done(cli) >= 2 or proc.poll() is not None, timeout=180, what="two tile batches")
    proc.kill()
    proc.wait()
    assert proc.returncode != 0, "the kill should land before the run ends"
    (run_dir,) = cli.data.glob("profiles/default/runs/*")
    return run_dir


def resumed_flags(run_dir: Path) -> list[bool]:
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if x.strip()]
    return [e["resumed"] for e in events if e["event"] == "run_submitted"]


def mount_tmpfs(where: Path, *options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],  # noqa: S607
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")


def umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], check=False, capture_output=True)  # noqa: S607


def test_disk_full_mid_run_fails_the_job_ends_the_run_and_resumes_after_space_is_freed(
    tmp_path: Path, workflow: Path, reference_cells: list[str], cli
) -> None:
    mnt = tmp_path / "small"
    mount_tmpfs(mnt, "size=8m")
    try:
        cli.data = mnt / "data"
        assert cli("profiles", "list").returncode == 0
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(mnt).free - 120 * 1024))

        full = cli("run", str(workflow), "--json", timeout=240)
        cli.fails_cleanly(full, 1, "disk full: ", f"MB free in {cli.data}", "run the same command again")
        assert json.loads(full.stdout)["runs"][0]["status"] == "failed"
        assert_store_consistent(cli.data)

        filler.unlink()
        again = cli("run", str(workflow), "--json", timeout=240)
        assert again.returncode == 0, again.stderr[-3000:]
        run_dir = Path(json.loads(again.stdout)["runs"][0]["run_dir"])
        assert resumed_flags(run_dir) == [False, True]
        assert cell_rows(run_dir) == reference_cells
        assert_store_consistent(cli.data)
    finally:
        umount(mnt)


def test_read_only_profiles_folder_creates_no_run_and_a_later_run_works(tmp_path: Path, workflow: Path, cli) -> None:
    # Root ignores file modes, so the folder is a tmpfs mounted read-only.
    assert cli("profiles", "list").returncode == 0
    profiles = cli.data / "profiles"
    mount_tmpfs(profiles, "ro", "size=1m")
    try:
        result = cli("run", str(workflow))
        cli.fails_cleanly(result, 2, "cannot create the run folder", str(profiles))
        assert_store_consistent(cli.data)
        db = sqlite3.connect(cli.data / "wsidesk.sqlite3")
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
        db.close()
    finally:
        umount(profiles)
    assert cli("run", str(workflow), timeout=240).returncode == 0


def test_deleted_run_folder_after_a_kill_is_marked_lost_and_a_fresh_run_starts(
    workflow: Path, reference_cells: list[str], cli, wait_until
) -> None:
    run_dir = kill_after_two_batches(cli, workflow, wait_until)
    shutil.rmtree(run_dir)
    again = cli("run", str(workflow), "--json", timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    assert f"run {run_dir.name}" in again.stderr and "marked lost" in again.stderr
    fresh = Path(json.loads(again.stdout)["runs"][0]["run_dir"])
    assert fresh.name != run_dir.name
    assert cell_rows(fresh) == reference_cells
    resume = cli("run", "--resume", run_dir.name)
    cli.fails_cleanly(resume, 2, run_dir.name, "already finished")
    assert_store_consistent(cli.data)


@pytest.mark.parametrize("damage", ["empty", "garbage"])
def test_emptied_or_damaged_store_is_refused_until_rebuilt_then_the_run_resumes(
    workflow: Path, reference_cells: list[str], cli, wait_until, damage: str
) -> None:
    run_dir = kill_after_two_batches(cli, workflow, wait_until)
    db = cli.data / "wsidesk.sqlite3"
    for part in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        part.unlink(missing_ok=True)
    db.write_bytes(b"" if damage == "empty" else uuid.uuid4().bytes * 4096)

    for args in (("profiles", "list"), ("run", str(workflow))):
        refused = cli(*args)
        cli.fails_cleanly(refused, 2, str(db), "wsidesk store rebuild")
    rebuilt = cli("store", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert "1 run(s) (1 interrupted" in rebuilt.stderr
    assert cli("profiles", "list").stdout.split() == ["default"]
    assert_store_consistent(cli.data)

    again = cli("run", str(workflow), "--json", timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert Path(json.loads(again.stdout)["runs"][0]["run_dir"]) == run_dir
    assert resumed_flags(run_dir) == [False, True]
    assert cell_rows(run_dir) == reference_cells


def test_torn_checkpoint_line_is_dropped_and_the_resume_gives_the_same_cells(
    workflow: Path, reference_cells: list[str], cli, wait_until
) -> None:
    run_dir = kill_after_two_batches(cli, workflow, wait_until)
    shards = run_dir / "seg" / "cells.parts.jsonl"
    with shards.open("a") as f:
        f.write('{"tiles": [40, 41], "failed": {}, "cells": [{"id"')  # a write cut short by the kill
    again = cli("run", str(workflow), "--json", timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    assert resumed_flags(run_dir) == [False, True]
    assert cell_rows(run_dir) == reference_cells
    assert_store_consistent(cli.data)


def test_resume_of_a_run_whose_process_is_alive_is_refused(workflow: Path, cli, wait_until) -> None:
    proc = start(cli, "run", str(workflow))
    try:
        wait_until(lambda: batches_done(cli) >= 1 or proc.poll() is not None, timeout=180, what="a tile batch")
        (run_dir,) = cli.data.glob("profiles/default/runs/*")
        result = cli("run", "--resume", run_dir.name)
        cli.fails_cleanly(result, 2, run_dir.name, f"still running in process {proc.pid}")
    finally:
        proc.kill()
        proc.wait()
    assert cli("run", "--resume", run_dir.name, timeout=240).returncode == 0
    assert_store_consistent(cli.data)


def test_profile_names_equal_ignoring_case_are_refused(cli) -> None:
    assert cli("profiles", "add", "alice").returncode == 0
    cli.fails_cleanly(cli("profiles", "add", "Alice"), 2, "'Alice'", "'alice'", "only in case")


def test_bad_dask_address_fails_at_once_without_a_traceback(workflow: Path, cli) -> None:
    import time

    started = time.monotonic()
    result = cli("run", str(workflow), "--executor", "dask", "--scheduler-address", "tcp://127.0.0.1:1")
    cli.fails_cleanly(result, 2, "tcp://127.0.0.1:1", "dask scheduler")
    assert "Exception ignored" not in result.stderr
    assert time.monotonic() - started < 8
    cli.fails_cleanly(
        cli("run", str(workflow), "--executor", "dask", "--scheduler-address", "nonsense:::x"), 2, "'nonsense:::x'"
    )


def test_the_same_workflow_run_twice_at_once_gives_two_runs_with_the_same_cells(
    workflow: Path, cli, reference_cells: list[str]
) -> None:
    env = {**os.environ, "WSIDESK_DATA_DIR": str(cli.data)}
    procs = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "wsidesk", "run", str(workflow), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    run_dirs = {Path(json.loads(out)["runs"][0]["run_dir"]) for out, _ in results}
    assert len(run_dirs) == 2, "a run whose owner is alive is never taken over"
    for run_dir in run_dirs:
        assert cell_rows(run_dir) == reference_cells
    assert_store_consistent(cli.data)
