"""Killed mid-run, then the same command again: finished tiles are not redone and the cells are the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsidesk.core.slide.demo import write_demo_slide

ROOT = Path(__file__).resolve().parents[2]
SEGMENT_PARAMS = "{model: wsidesk_test_nuclei, tile_size: 256, padding: 32, batch_size: 2}"


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("resume") / "slides"
    folder.mkdir()
    write_demo_slide(folder / "s.svs", width=2048, height=1536, seed=3)
    return folder


def cell_rows(run_dir: Path) -> list[str]:
    return sorted((run_dir / "seg" / "cells.csv").read_text().splitlines()[1:])


def test_resume_after_a_kill_keeps_tiles_when_the_image_path_has_dotdot(
    tmp_path: Path, slides: Path, cli, wait_until
) -> None:
    work = tmp_path / "workflows"
    work.mkdir()
    wf = work / "wf.yaml"
    # The slide is named through `..`: the run's own copy stores it resolved, which once made the
    # resume checkpoints look like another slide's, and every tile was segmented again.
    relative = os.path.relpath(slides / "s.svs", work)
    assert relative.startswith("..")
    wf.write_text(
        f"name: dotdot\ndag:\n  b:\n    - {{job_id: seg, type: segment, image: {relative}, params: {SEGMENT_PARAMS}}}\n"
    )

    env = {**os.environ, "WSIDESK_DATA_DIR": str(cli.data)}
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "wsidesk", "run", str(wf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    seen = {"done": 0}

    def two_batches_or_exit() -> bool:
        logs = list(cli.data.glob("profiles/default/runs/*/events.jsonl"))
        batches = [json.loads(x) for x in logs[0].read_text().splitlines() if "tile_batch_done" in x] if logs else []
        if len(batches) >= 2:
            seen["done"] = batches[-1]["done"]
            return True
        return proc.poll() is not None  # it finished first: the assert below says so

    wait_until(two_batches_or_exit, timeout=180, what="two tile batches in the run's events.jsonl", interval=0.05)
    done_before = seen["done"]
    proc.kill()
    proc.wait()
    assert done_before > 0, "the kill should land after some batches"

    again = cli("run", str(wf), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "belongs to another plan or model" not in again.stderr
    run_dir = Path(json.loads(again.stdout)["runs"][0]["run_dir"])
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    resumed = [e for e in events if e["event"] == "run_submitted"]
    assert [e["resumed"] for e in resumed] == [False, True]
    # After the resume the first batch already counts the tiles finished before the kill.
    restart = max(i for i, e in enumerate(events) if e["event"] == "run_submitted")
    first_after = next(e for e in events[restart:] if e["event"] == "tile_batch_done")
    assert first_after["done"] > done_before

    fresh = cli("run", str(wf), "--json", "--profile", "fresh")  # the same workflow, uninterrupted
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert cell_rows(run_dir) == cell_rows(Path(json.loads(fresh.stdout)["runs"][0]["run_dir"]))
