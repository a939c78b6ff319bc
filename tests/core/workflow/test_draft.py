"""WorkflowDraft: the Qt-free editing rules behind the graph editor."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsidesk.core.workflow import Branch, Job, Workflow
from wsidesk.core.workflow.draft import EditRefused, WorkflowDraft, check_param


def two_branches() -> Workflow:
    return Workflow(
        name="wf",
        branches=(
            Branch("a", (Job("a1", "segment", "s/a.svs"), Job("a2", "segment", "s/b.svs"))),
            Branch("b", (Job("b1", "tissue", "s/c.svs"), Job("b2", "export", depends_on=("a1", "b1")))),
        ),
        defaults={"tile_size": 256},
        base_dir=Path("/data/project"),
    )


def test_draft_round_trips_a_workflow_without_inventing_a_layout() -> None:
    wf = two_branches()
    assert WorkflowDraft.from_workflow(wf).to_workflow() == wf


def test_cycle_message_names_the_cycle() -> None:
    draft = WorkflowDraft.from_workflow(two_branches())
    with pytest.raises(EditRefused, match=r"cycle .*b2.*a1|cycle .*a1.*b2"):
        draft.connect(draft.uid_of("b2"), draft.uid_of("a1"))


def test_removing_a_job_drops_it_from_depends_on() -> None:
    draft = WorkflowDraft.from_workflow(two_branches())
    draft.remove_jobs([draft.uid_of("a1")])
    assert draft.to_workflow().job("b2").depends_on == ("b1",)


def test_rebasing_images_onto_another_folder() -> None:
    draft = WorkflowDraft.from_workflow(two_branches())
    wf = draft.to_workflow(base_dir=Path("/data"))
    assert wf.job("a1").image == "project/s/a.svs"
    assert wf.base_dir == Path("/data")


def test_images_picked_before_the_first_save_become_relative() -> None:
    draft = WorkflowDraft()
    draft.add_branch("b")
    draft.add_job("segment", "b", image="/data/project/s/a.svs")
    wf = draft.to_workflow(base_dir=Path("/data/project"))
    assert wf.job("segment1").image == "s/a.svs"


def test_param_checks_use_the_core_rules() -> None:
    assert check_param("tile_size", 512) is None
    assert "positive" in check_param("tile_size", 0)
    assert check_param("min_tissue", 1.5) is not None
    assert check_param("format", "csv") is None
    draft = WorkflowDraft.from_workflow(two_branches())
    with pytest.raises(EditRefused, match="no param 'format'"):
        draft.set_param(draft.uid_of("a1"), "format", "csv")


def test_a_job_type_that_takes_no_image_loses_it_and_its_foreign_params() -> None:
    draft = WorkflowDraft.from_workflow(two_branches())
    uid = draft.uid_of("a1")
    draft.set_param(uid, "batch_size", 4)
    draft.set_param(uid, "tile_size", 256)
    draft.set_job_type(uid, "tissue")
    assert draft.jobs[uid].params == {"tile_size": 256}
    draft.set_job_type(uid, "export")
    assert draft.jobs[uid].image is None and draft.jobs[uid].params == {}
    assert draft.job_problems(uid) == ["connect the jobs to export"]
