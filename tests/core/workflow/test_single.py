from __future__ import annotations

from pathlib import Path

from wsidesk.core.workflow.model import validate_workflow
from wsidesk.core.workflow.single import segment_workflow


def test_segment_workflow_is_one_segment_job_on_the_slide(tmp_path: Path) -> None:
    slide = tmp_path / "a.svs"
    slide.write_bytes(b"")
    wf = segment_workflow(slide, {"tile_size": 256})
    assert wf.name == "Segment a.svs"
    [branch] = wf.branches
    [job] = branch.jobs
    assert (branch.name, job.job_id, job.type, job.image) == ("segment", "segment", "segment", str(slide))
    assert dict(job.params) == {"tile_size": 256}
    validate_workflow(wf, file=str(slide))
