"""The shipped example workflows stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsidesk.core.workflow.io import load_workflow

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "resources" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_workflow_is_valid(path):
    wf = load_workflow(path, check_images=False)  # the demo slides are written by `make`
    assert wf.branches and all(branch.jobs for branch in wf.branches)
