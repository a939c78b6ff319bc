"""The GUI's executor runs jobs below the GUI thread's CPU priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from wsidesk.core.jobs.context import MemoryCheckpoints
from wsidesk.core.jobs.task import JobHooks, JobSpec, JobTask
from wsidesk.core.workflow.model import Branch, Job, Workflow
from wsidesk.gui.bridges.qt_executor import JOB_NICE, QtExecutor


def _nice_here(ctx) -> dict[str, str]:
    # A job's own helper threads (tile readers, post-processing) inherit the job thread's priority.
    seen: dict[str, str] = {"job": str(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))}
    helper = threading.Thread(
        target=lambda: seen.update(helper=str(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    )
    helper.start()
    helper.join()
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_jobs_and_their_threads_run_below_the_gui_threads_priority(qtbot, tmp_path):
    job = Job("job", "tissue")
    spec = JobSpec(
        run_id="r",
        profile="p",
        workflow=Workflow("w", (Branch("b", (job,)),)),
        branch="b",
        job=job,
        params={},
        image=None,
        out_dir=tmp_path / "job",
        function=_nice_here,
    )
    hooks = JobHooks(emit=lambda *a: None, is_cancelled=lambda: False, checkpoints=MemoryCheckpoints())
    executor = QtExecutor(1)
    got = []
    executor.submit(JobTask(spec, hooks), lambda result, error: got.append((result, error)))
    qtbot.waitUntil(lambda: bool(got), timeout=5000)
    executor.shutdown()
    result, error = got[0]
    assert error is None
    assert result == {"job": str(JOB_NICE), "helper": str(JOB_NICE)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < JOB_NICE  # the GUI thread is untouched
