"""validate_workflow and the job graph: rejections name the file and job; order is deterministic."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from wsidesk.core.errors import WorkflowError
from wsidesk.core.workflow import (
    Branch,
    Job,
    Workflow,
    dump_workflow,
    load_workflow,
    loads_workflow,
    model,
    validate_workflow,
)


def rejected(
    tmp_path: Path,
    text: str,
    match: str,
    *,
    job_id: str | None = None,
    check_images: bool = False,
) -> WorkflowError:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, check_images=check_images)
    err = info.value
    assert err.file == str(path) and str(path) in str(err)
    assert err.job_id == job_id
    if job_id is not None:
        assert job_id in str(err)
    assert match in str(err), str(err)
    return err


def one_job(job: str, *, top: str = "") -> str:
    """A workflow whose branch `a` holds a tissue job j0 and then `job` (a YAML flow mapping)."""
    first = "{job_id: j0, type: tissue, image: a.svs}"
    return f"name: wf\n{top}dag:\n  a:\n    - {first}\n    - {job}\n"


# --- workflow-level rules ----------------------------------------------------------------------


def test_load_rejects_empty_name(tmp_path: Path) -> None:
    rejected(tmp_path, "name: '  '\ndag: {a: [{job_id: j1, type: tissue, image: a.svs}]}\n", "'name' is empty")


def test_load_rejects_workflow_without_branches(tmp_path: Path) -> None:
    rejected(tmp_path, "name: wf\ndag: {}\n", "no branches")


def test_load_rejects_empty_branch(tmp_path: Path) -> None:
    rejected(tmp_path, "name: wf\ndag: {a: []}\n", "branch 'a' has no jobs")


def test_validate_rejects_duplicate_branch_names_built_in_code() -> None:
    job = Job("j1", "tissue", image="a.svs")
    wf = Workflow("wf", (Branch("a", (job,)), Branch("a", (Job("j2", "tissue", image="b"),))))
    with pytest.raises(WorkflowError, match="branch 'a' appears twice") as info:
        validate_workflow(wf, file="wf.yaml", check_images=False)
    assert str(info.value).startswith("wf.yaml: ")


def test_load_rejects_duplicate_job_ids_across_branches(tmp_path: Path) -> None:
    text = """\
    name: wf
    dag:
      a: [{job_id: j1, type: tissue, image: a.svs}]
      b: [{job_id: j1, type: tissue, image: b.svs}]
    """
    rejected(tmp_path, text, "appears twice", job_id="j1")


def test_load_rejects_job_ids_differing_only_in_case(tmp_path: Path) -> None:
    text = """\
    name: wf
    dag:
      a: [{job_id: job1, type: tissue, image: a.svs}]
      b: [{job_id: JOB1, type: tissue, image: b.svs}]
    """
    rejected(tmp_path, text, "clashes with 'job1'", job_id="JOB1")


def test_load_rejects_unknown_job_type_and_lists_valid_ones(tmp_path: Path) -> None:
    rejected(
        tmp_path,
        one_job("{job_id: j1, type: segmnt, image: a.svs}"),
        "unknown type 'segmnt'; valid types: tissue, segment, export",
        job_id="j1",
    )


def test_load_rejects_depends_on_unknown_job_and_suggests_a_close_one(tmp_path: Path) -> None:
    rejected(
        tmp_path,
        one_job("{job_id: j1, type: export, depends_on: [j00]}"),
        "depends on unknown job 'j00'; did you mean 'j0'?",
        job_id="j1",
    )


def test_load_rejects_job_depending_on_itself(tmp_path: Path) -> None:
    rejected(tmp_path, one_job("{job_id: j1, type: export, depends_on: [j1]}"), "depends on itself", job_id="j1")


def test_load_rejects_depends_on_listing_a_job_twice(tmp_path: Path) -> None:
    rejected(tmp_path, one_job("{job_id: j1, type: export, depends_on: [j0, j0]}"), "twice", job_id="j1")


def test_load_rejects_cycle_and_names_it(tmp_path: Path) -> None:
    text = """\
    name: wf
    dag:
      a:
        - {job_id: job1, type: segment, image: a.svs, depends_on: [job3]}
        - {job_id: job2, type: segment, image: b.svs}
      b:
        - {job_id: job3, type: segment, image: c.svs, depends_on: [job2]}
    """
    err = rejected(tmp_path, text, "job1 -> job2 -> job3 -> job1", job_id="job1")
    assert err.cycle == ("job1", "job2", "job3")


def test_load_rejects_dependency_on_a_later_job_of_the_same_branch(tmp_path: Path) -> None:
    text = """\
    name: wf
    dag:
      a:
        - {job_id: job1, type: segment, image: a.svs, depends_on: [job2]}
        - {job_id: job2, type: segment, image: b.svs}
    """
    err = rejected(tmp_path, text, "job1 -> job2 -> job1", job_id="job1")
    assert err.cycle == ("job1", "job2")


def test_load_rejects_invalid_profile_name(tmp_path: Path) -> None:
    rejected(
        tmp_path,
        one_job("{job_id: j1, type: tissue, image: b.svs}", top="profile: a/b\n"),
        "invalid profile name 'a/b'",
    )


def test_load_rejects_layout_for_unknown_job(tmp_path: Path) -> None:
    rejected(
        tmp_path,
        one_job("{job_id: j1, type: tissue, image: b.svs}", top="layout: {jx: [1, 2]}\n"),
        "layout names unknown job 'jx'",
        job_id="jx",
    )


# --- images and job kinds ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tissue", "segment"])
def test_load_rejects_slide_job_without_image(tmp_path: Path, kind: str) -> None:
    rejected(tmp_path, one_job(f"{{job_id: j1, type: {kind}}}"), "need an 'image'", job_id="j1")


def test_load_rejects_export_job_with_image(tmp_path: Path) -> None:
    rejected(
        tmp_path,
        one_job("{job_id: j1, type: export, image: a.svs, depends_on: [j0]}"),
        "export jobs take no 'image'",
        job_id="j1",
    )


def test_load_rejects_export_job_without_depends_on(tmp_path: Path) -> None:
    rejected(tmp_path, one_job("{job_id: j1, type: export}"), "need 'depends_on'", job_id="j1")


def test_load_rejects_missing_image_file(tmp_path: Path) -> None:
    (tmp_path / "a.svs").write_bytes(b"x")
    err = rejected(
        tmp_path,
        one_job("{job_id: j1, type: segment, image: slides/b.svs}"),
        "does not exist",
        job_id="j1",
        check_images=True,
    )
    assert str(tmp_path / "slides" / "b.svs") in str(err)


def test_load_rejects_image_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a.svs").write_bytes(b"x")
    (tmp_path / "b.svs").mkdir()
    rejected(
        tmp_path, one_job("{job_id: j1, type: segment, image: b.svs}"), "is a directory", job_id="j1", check_images=True
    )


def test_load_rejects_unreadable_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.svs").write_bytes(b"x")
    (tmp_path / "b.svs").write_bytes(b"x")
    # Faked because root (CI containers) may read any file.
    monkeypatch.setattr(model.os, "access", lambda path, mode: Path(path).name != "b.svs")
    rejected(
        tmp_path,
        one_job("{job_id: j1, type: segment, image: b.svs}"),
        "is not readable",
        job_id="j1",
        check_images=True,
    )


def test_load_skips_image_checks_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(one_job("{job_id: j1, type: segment, image: missing.svs}"))
    assert load_workflow(path, check_images=False).job("j1").image == "missing.svs"


def test_load_accepts_absolute_image_path(tmp_path: Path) -> None:
    slide = tmp_path / "abs.svs"
    slide.write_bytes(b"x")
    (tmp_path / "a.svs").write_bytes(b"x")
    path = tmp_path / "sub" / "wf.yaml"
    path.parent.mkdir()
    path.write_text(
        one_job(f"{{job_id: j1, type: segment, image: '{slide}'}}").replace(
            "image: a.svs", f"image: '{tmp_path / 'a.svs'}'"
        )
    )
    wf = load_workflow(path)
    assert wf.image_path(wf.job("j1")) == slide


# --- params ------------------------------------------------------------------------------------

PARAM_CASES = [
    ("unknown_key_for_type", "tissue", "{batch_size: 4}", "unknown param 'batch_size'"),
    ("string_for_int", "segment", "{tile_size: '512'}", "must be an integer"),
    ("bool_for_int", "segment", "{tile_size: true}", "not bool"),
    ("bool_for_number", "tissue", "{min_tissue: false}", "not bool"),
    ("float_for_int", "segment", "{batch_size: 8.0}", "must be an integer"),
    ("zero_tile_size", "segment", "{tile_size: 0}", "positive integer"),
    ("negative_batch_size", "segment", "{batch_size: -1}", "positive integer"),
    ("negative_padding", "segment", "{padding: -1}", "integer >= 0"),
    ("min_tissue_above_one", "tissue", "{min_tissue: 1.5}", "between 0 and 1"),
    ("min_tissue_below_zero", "tissue", "{min_tissue: -0.1}", "between 0 and 1"),
    ("nan_target_mpp", "segment", "{target_mpp: .nan}", "positive number"),
    ("number_for_model", "segment", "{model: 3}", "must be a string"),
]


@pytest.mark.parametrize(("kind", "params", "match"), [c[1:] for c in PARAM_CASES], ids=[c[0] for c in PARAM_CASES])
def test_load_rejects_bad_job_param(tmp_path: Path, kind: str, params: str, match: str) -> None:
    rejected(tmp_path, one_job(f"{{job_id: j1, type: {kind}, image: b.svs, params: {params}}}"), match, job_id="j1")


def test_load_rejects_unknown_export_format(tmp_path: Path) -> None:
    job = "{job_id: j1, type: export, depends_on: [j0], params: {format: pdf}}"
    rejected(tmp_path, one_job(job), "one of geojson, csv", job_id="j1")


def test_load_rejects_bad_value_in_defaults(tmp_path: Path) -> None:
    rejected(
        tmp_path,
        one_job("{job_id: j1, type: tissue, image: b.svs}", top="defaults: {padding: -5}\n"),
        "defaults: param 'padding'",
    )


def test_load_rejects_unknown_key_in_defaults(tmp_path: Path) -> None:
    rejected(
        tmp_path,
        one_job("{job_id: j1, type: tissue, image: b.svs}", top="defaults: {tilesize: 5}\n"),
        "unknown param 'tilesize'",
    )


def test_load_accepts_zero_padding_and_int_min_tissue(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    params = "{padding: 0, min_tissue: 1}"
    path.write_text(one_job(f"{{job_id: j1, type: segment, image: b, params: {params}}}"))
    assert load_workflow(path, check_images=False).job("j1").params["padding"] == 0


# --- graph and order ---------------------------------------------------------------------------


def example() -> Workflow:
    return Workflow(
        "wf",
        (
            Branch("A", (Job("job1", "segment", image="a"), Job("job2", "segment", image="b"))),
            Branch("B", (Job("job3", "tissue", image="c"), Job("job4", "export", depends_on=("job1", "job3")))),
        ),
    )


def test_graph_has_branch_fifo_edges_and_dependency_edges() -> None:
    g = example().graph()
    assert dict(g.nodes(data="branch")) == {"job1": "A", "job2": "A", "job3": "B", "job4": "B"}
    assert set(g.edges) == {("job1", "job2"), ("job3", "job4"), ("job1", "job4")}
    assert g.edges["job1", "job2"]["kind"] == "fifo"
    assert g.edges["job3", "job4"]["kind"] == "depends_on"  # both apply; the explicit one wins


def test_topological_order_breaks_ties_by_branch_then_list_order() -> None:
    assert example().topological_order() == ["job1", "job2", "job3", "job4"]
    wf = Workflow(
        "wf",
        (
            Branch("A", (Job("z", "export", depends_on=("y",)),)),
            Branch("B", (Job("y", "tissue", image="c"), Job("a", "tissue", image="d"))),
        ),
    )
    assert wf.topological_order() == ["y", "z", "a"]


def test_topological_order_raises_workflow_error_on_cycle() -> None:
    wf = Workflow(
        "wf",
        (
            Branch("A", (Job("x", "export", depends_on=("y",)),)),
            Branch("B", (Job("y", "export", depends_on=("x",)),)),
        ),
    )
    with pytest.raises(WorkflowError, match="x -> y -> x") as info:
        wf.topological_order()
    assert info.value.cycle == ("x", "y")


def test_validate_without_file_has_no_file_prefix() -> None:
    wf = Workflow("", example().branches)
    with pytest.raises(WorkflowError) as info:
        validate_workflow(wf, check_images=False)
    assert info.value.file is None
    assert str(info.value).startswith("workflow 'name' is empty")


def test_validate_accepts_example_with_images_relative_to_base_dir(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).write_bytes(b"x")
    wf = Workflow(example().name, example().branches, base_dir=tmp_path)
    validate_workflow(wf)
    assert os.fspath(wf.image_path(wf.job("job1"))) == os.fspath(tmp_path / "a")


def test_model_is_a_known_name_or_a_file_beside_the_workflow(tmp_path: Path) -> None:
    (tmp_path / "s.svs").write_bytes(b"x")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.pt").write_bytes(b"weights")
    job = "    - {job_id: j1, type: segment, image: s.svs, params: {model: %s}}\n"
    for ok in ("brightfield_nuclei", "wsidesk_test_nuclei", "models/mine.pt", str(tmp_path / "models" / "mine.pt")):
        loads_workflow("name: w\ndag:\n  b:\n" + job % ok, file=tmp_path / "wf.yaml")
    with pytest.raises(WorkflowError, match="model 'brightfeld_nuclei' is not a known name") as info:
        loads_workflow("name: w\ndag:\n  b:\n" + job % "brightfeld_nuclei", file=tmp_path / "wf.yaml")
    assert "brightfield_nuclei" in str(info.value) and info.value.job_id == "j1"
    with pytest.raises(WorkflowError, match="does not exist"):  # a default counts too
        loads_workflow(
            "name: w\ndefaults: {model: models/missing.pt}\n"
            "dag:\n  b:\n    - {job_id: j1, type: segment, image: s.svs}\n",
            file=tmp_path / "wf.yaml",
        )


def test_a_copy_with_absolute_paths_stands_alone(tmp_path: Path) -> None:
    (tmp_path / "s.svs").write_bytes(b"x")
    (tmp_path / "m.pt").write_bytes(b"w")
    text = (
        "name: w\ndefaults: {model: m.pt}\ndag:\n  b:\n"
        "    - {job_id: j1, type: segment, image: ./s.svs, params: {model: ../" + tmp_path.name + "/m.pt}}\n"
        "    - {job_id: j2, type: segment, image: s.svs, params: {model: brightfield_nuclei}}\n"
    )
    wf = loads_workflow(text, file=tmp_path / "wf.yaml").with_absolute_paths()
    assert wf.job("j1").image == str(tmp_path / "s.svs")
    assert wf.job("j1").params["model"] == wf.defaults["model"] == str(tmp_path / "m.pt")
    assert wf.job("j2").params["model"] == "brightfield_nuclei"
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    loads_workflow(dump_workflow(wf), file=elsewhere / "workflow.yaml")  # still valid from another folder
