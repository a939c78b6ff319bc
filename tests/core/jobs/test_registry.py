"""The job-type registry is the one source of params: README table, CLI options, validation, typed values."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from wsidesk.cli import build_parser
from wsidesk.core.errors import JobError, WorkflowError
from wsidesk.core.jobs.registry import JOB_TYPES, all_params, params_table
from wsidesk.core.jobs.segment import SegmentParams
from wsidesk.core.jobs.tissue import TilingParams
from wsidesk.core.workflow import Branch, Job, Workflow, validate_workflow

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_params_table_is_the_registrys() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- params-table:begin -->\n(.*?)<!-- params-table:end -->", text, re.S)
    assert found, "README.md lost its params-table markers"
    assert found.group(1) == params_table(), "regenerate it with: python -m wsidesk.core.jobs.registry"


def test_a_param_shared_by_job_types_has_one_type_and_one_rule() -> None:
    for name, first in all_params().items():
        for job_type in JOB_TYPES.values():
            spec = job_type.spec(name)
            if spec is not None:
                assert (spec.type, spec.rule()) == (first.type, first.rule()), (name, job_type.name)


def test_every_param_is_an_option_of_run_and_segment_params_of_segment() -> None:
    parser = build_parser()
    run = parser.parse_args(["run", "wf.yaml", "--tile-size", "256", "--format", "csv", "--min-cell-area", "12.5"])
    assert (run.tile_size, run.format, run.min_cell_area) == (256, "csv", 12.5)
    for spec in all_params().values():
        assert getattr(parser.parse_args(["run", "wf.yaml"]), spec.name) is None  # unset: the workflow decides
    segment_names = {s.name for s in JOB_TYPES["segment"].params.specs()}
    seg = parser.parse_args(["segment", "s.svs", "--precision", "bf16", "--model", "m.pt"])
    assert (seg.precision, seg.model) == ("bf16", str(Path("m.pt").resolve()))  # a file: from the current folder
    assert segment_names <= set(vars(seg))
    with pytest.raises(SystemExit):
        parser.parse_args(["segment", "s.svs", "--format", "csv"])  # an export param


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--tile-size", "0"),
        ("--tile-size", "100000"),
        ("--batch-size", "x"),
        ("--min-tissue", "2"),
        ("--device", "tpu"),
        ("--min-cell-area", "-1"),
    ],
)
def test_cli_refuses_a_value_outside_the_params_rule(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "wf.yaml", option, value])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_typed_params_take_declared_defaults_and_ignore_other_types_keys() -> None:
    params = SegmentParams.from_mapping({"tile_size": 256, "format": "csv", "target_mpp": 1, "mpp": None})
    assert params.tile_size == 256 and params.model == "brightfield_nuclei"
    assert params.batch_size is None and params.padding is None  # decided by device and backend when it runs
    assert params.target_mpp == 1.0 and isinstance(params.target_mpp, float) and params.mpp is None
    assert TilingParams().target_mpp == 0.5  # a tissue job plans at 0.5 µm/px unless told
    with pytest.raises(JobError, match="job j1 \\(segment\\): param 'batch_size' must be a positive integer"):
        SegmentParams.from_mapping({"batch_size": 0}, where="job j1 (segment)")


def test_validation_and_the_cli_use_the_same_rules() -> None:
    job = Job("j1", "segment", "s.svs", params={"min_cell_area": -1.0})
    wf = Workflow(name="w", branches=(Branch("b", (job,)),))
    with pytest.raises(WorkflowError, match="param 'min_cell_area' must be a number >= 0"):
        validate_workflow(wf, check_images=False)


def test_params_classes_are_frozen_value_objects() -> None:
    for job_type in JOB_TYPES.values():
        assert dataclasses.is_dataclass(job_type.params)
        params = job_type.params()
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(params, job_type.params.specs()[0].name, None)
