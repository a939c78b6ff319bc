"""Reading and writing workflow YAML: each rejection names the file, and the job if there is one."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from wsidesk.core.errors import ProfileError, WorkflowError
from wsidesk.core.workflow import (
    Branch,
    Job,
    Workflow,
    dump_workflow,
    load_workflow,
    loads_workflow,
    save_workflow,
)

VALID = """\
name: Cell Segmentation Pipeline
profile: alice
defaults: {tile_size: 512}
layout: {job1: [120, 40]}
dag:
  branch_A:
    - {job_id: job1, type: segment, image: slides/a.svs}
    - {job_id: job2, type: segment, image: slides/b.svs, params: {batch_size: 8}}
  branch_B:
    - {job_id: job3, type: tissue, image: slides/c.svs}
    - {job_id: job4, type: export, depends_on: [job1, job3], params: {format: geojson}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rejected(
    tmp_path: Path,
    text: str,
    match: str,
    *,
    job_id: str | None = None,
    check_images: bool = False,
) -> WorkflowError:
    """Load `text` from a file, expect a WorkflowError naming the file, the job and `match`."""
    path = write(tmp_path, text)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, check_images=check_images)
    err = info.value
    assert err.file == str(path)
    assert str(path) in str(err)
    assert err.job_id == job_id
    if job_id is not None:
        assert repr(job_id) in str(err)
    assert match in str(err)
    return err


def make_slides(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"not really a slide")


# --- accepted files ---------------------------------------------------------------------------


def test_load_reads_contract_example_with_images_next_to_yaml(tmp_path: Path) -> None:
    make_slides(tmp_path, "slides/a.svs", "slides/b.svs", "slides/c.svs")
    wf = load_workflow(write(tmp_path, VALID))
    assert wf.name == "Cell Segmentation Pipeline"
    assert wf.profile == "alice"
    assert [b.name for b in wf.branches] == ["branch_A", "branch_B"]
    assert wf.job("job4").depends_on == ("job1", "job3")
    assert wf.job_params(wf.job("job2")) == {"tile_size": 512, "batch_size": 8}
    assert wf.layout == {"job1": (120.0, 40.0)}
    assert wf.base_dir == tmp_path.absolute()


def test_load_resolves_relative_images_against_yaml_folder_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf_dir = tmp_path / "project"
    wf_dir.mkdir()
    make_slides(wf_dir, "slides/a.svs", "slides/b.svs", "slides/c.svs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    wf = load_workflow(write(wf_dir, VALID))
    assert wf.image_path(wf.job("job1")) == wf_dir.absolute() / "slides/a.svs"


def test_loads_without_file_resolves_images_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_slides(tmp_path, "slides/a.svs", "slides/b.svs", "slides/c.svs")
    monkeypatch.chdir(tmp_path)
    wf = loads_workflow(VALID)
    assert wf.image_path(wf.job("job3")) == tmp_path / "slides/c.svs"


def test_loads_accepts_any_known_param_in_defaults(tmp_path: Path) -> None:
    text = """\
    name: wf
    defaults: {batch_size: 4, format: csv, min_tissue: 0.25, padding: 0}
    dag:
      a: [{job_id: j1, type: tissue, image: a.svs}]
    """
    wf = loads_workflow(textwrap.dedent(text), check_images=False)
    assert wf.defaults["format"] == "csv"


def test_load_allows_yaml_merge_keys_overriding_a_value(tmp_path: Path) -> None:
    text = """\
    name: wf
    defaults: &base {tile_size: 256, padding: 40}
    dag:
      a:
        - job_id: j1
          type: segment
          image: a.svs
          params: {<<: *base, tile_size: 512}
    """
    wf = loads_workflow(textwrap.dedent(text), check_images=False)
    assert dict(wf.job("j1").params) == {"tile_size": 512, "padding": 40}


def test_load_treats_empty_optional_keys_as_absent(tmp_path: Path) -> None:
    text = """\
    name: wf
    profile:
    defaults:
    dag:
      a:
        - {job_id: j1, type: tissue, image: a.svs, params: , depends_on: }
    """
    wf = loads_workflow(textwrap.dedent(text), check_images=False)
    assert wf.profile is None and not wf.defaults and wf.job("j1").depends_on == ()


# --- YAML-level rejections ---------------------------------------------------------------------


def test_load_rejects_yaml_syntax_error_with_line_and_column(tmp_path: Path) -> None:
    text = "name: wf\nprofile: alice\ndefaults: a: b\ndag: {}\n"
    rejected(tmp_path, text, "line 3, column 12")


def test_load_rejects_empty_file(tmp_path: Path) -> None:
    rejected(tmp_path, "", "empty")


def test_load_rejects_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    rejected(tmp_path, "- name\n- dag\n", "mapping")


def test_load_rejects_python_tags_without_running_them(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']\ndag: {{}}\n"
    rejected(tmp_path, text, "tags such as !!python/... are not allowed")
    assert not marker.exists()


def test_load_rejects_custom_tags(tmp_path: Path) -> None:
    rejected(tmp_path, "name: !secret wf\ndag: {}\n", "tags such as !!python/")


def test_load_rejects_duplicate_branch_names_that_yaml_would_merge(tmp_path: Path) -> None:
    text = """\
    name: wf
    dag:
      a: [{job_id: j1, type: tissue, image: a.svs}]
      a: [{job_id: j2, type: tissue, image: b.svs}]
    """
    rejected(tmp_path, text, "duplicate key 'a' at line 4, column 3")


def test_load_rejects_duplicate_keys_inside_a_job(tmp_path: Path) -> None:
    text = """\
    name: wf
    dag:
      a: [{job_id: j1, type: tissue, image: a.svs, image: b.svs}]
    """
    rejected(tmp_path, text, "duplicate key 'image'")


def test_load_rejects_several_yaml_documents(tmp_path: Path) -> None:
    rejected(tmp_path, "name: a\ndag: {}\n---\nname: b\n", "invalid YAML")


# --- structure and type rejections ------------------------------------------------------------


def test_load_rejects_unknown_top_level_key_and_lists_allowed_ones(tmp_path: Path) -> None:
    text = "name: wf\nnmae: typo\ndag: {a: [{job_id: j1, type: tissue, image: a.svs}]}\n"
    rejected(tmp_path, text, "unknown key 'nmae'; allowed keys: name, profile, defaults")


def test_load_rejects_missing_dag(tmp_path: Path) -> None:
    rejected(tmp_path, "name: wf\n", "no 'dag'")


def test_load_rejects_missing_name(tmp_path: Path) -> None:
    rejected(tmp_path, "dag: {a: [{job_id: j1, type: tissue, image: a.svs}]}\n", "no 'name'")


def test_load_rejects_unknown_job_key_and_names_the_job(tmp_path: Path) -> None:
    text = "name: wf\ndag: {a: [{job_id: j1, type: tissue, imgae: a.svs}]}\n"
    rejected(tmp_path, text, "unknown key 'imgae'", job_id="j1")


def test_load_rejects_dag_that_is_not_a_mapping(tmp_path: Path) -> None:
    rejected(tmp_path, "name: wf\ndag: [a, b]\n", "'dag' has the wrong type")


def test_load_rejects_branch_that_is_not_a_list(tmp_path: Path) -> None:
    text = "name: wf\ndag: {a: {job_id: j1, type: tissue, image: a.svs}}\n"
    rejected(tmp_path, text, "branch 'a' has the wrong type")


def test_load_rejects_job_that_is_not_a_mapping(tmp_path: Path) -> None:
    rejected(tmp_path, "name: wf\ndag: {a: [j1]}\n", "job #1 of branch 'a'")


def test_load_rejects_integer_job_id_and_says_to_quote_it(tmp_path: Path) -> None:
    text = "name: wf\ndag: {a: [{job_id: 1, type: tissue, image: a.svs}]}\n"
    rejected(tmp_path, text, "quote it")


def test_load_rejects_job_without_job_id(tmp_path: Path) -> None:
    rejected(tmp_path, "name: wf\ndag: {a: [{type: tissue, image: a.svs}]}\n", "no 'job_id'")


def test_load_rejects_empty_job_id(tmp_path: Path) -> None:
    text = "name: wf\ndag: {a: [{job_id: '', type: tissue, image: a.svs}]}\n"
    rejected(tmp_path, text, "invalid job_id", job_id="")


def test_load_rejects_job_id_that_is_not_a_safe_folder_name(tmp_path: Path) -> None:
    text = "name: wf\ndag: {a: [{job_id: ../evil, type: tissue, image: a.svs}]}\n"
    rejected(tmp_path, text, "invalid job_id", job_id="../evil")


def test_load_rejects_job_without_type(tmp_path: Path) -> None:
    rejected(tmp_path, "name: wf\ndag: {a: [{job_id: j1, image: a.svs}]}\n", "no 'type'", job_id="j1")


def test_load_rejects_depends_on_given_as_a_single_string(tmp_path: Path) -> None:
    text = """\
    name: wf
    dag:
      a: [{job_id: j1, type: tissue, image: a.svs}]
      b: [{job_id: j2, type: export, depends_on: j1}]
    """
    rejected(tmp_path, text, "must be a list of job ids", job_id="j2")


def test_load_rejects_integer_branch_name(tmp_path: Path) -> None:
    rejected(tmp_path, "name: wf\ndag: {1: [{job_id: j1, type: tissue, image: a.svs}]}\n", "quote it")


def test_load_rejects_name_that_is_not_a_string(tmp_path: Path) -> None:
    text = "name: [a]\ndag: {a: [{job_id: j1, type: tissue, image: a.svs}]}\n"
    rejected(tmp_path, text, "'name' has the wrong type")


def test_load_rejects_params_that_are_not_a_mapping(tmp_path: Path) -> None:
    text = "name: wf\ndag: {a: [{job_id: j1, type: tissue, image: a.svs, params: [1]}]}\n"
    rejected(tmp_path, text, "'params' of job 'j1'", job_id="j1")


def test_load_rejects_layout_that_is_not_a_pair_of_numbers(tmp_path: Path) -> None:
    text = "name: wf\nlayout: {j1: [1, two]}\ndag: {a: [{job_id: j1, type: tissue, image: a}]}\n"
    rejected(tmp_path, text, "[x, y]", job_id="j1")


# --- files on disk -----------------------------------------------------------------------------


def test_load_rejects_missing_workflow_file_and_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(WorkflowError, match="cannot read workflow file") as info:
        load_workflow(path)
    assert str(path) in str(info.value) and info.value.file == str(path)


def test_load_rejects_a_directory_as_workflow_file(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="cannot read workflow file") as info:
        load_workflow(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_rejects_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(WorkflowError, match="not UTF-8") as info:
        load_workflow(path)
    assert str(path) in str(info.value)


def test_save_writes_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    wf = loads_workflow(VALID, check_images=False)
    path = tmp_path / "wf.yaml"
    path.write_text("old content")
    save_workflow(wf, path)
    assert os.listdir(tmp_path) == ["wf.yaml"]
    assert load_workflow(path, check_images=False) == wf


def test_save_into_missing_folder_raises_workflow_error_naming_the_path(tmp_path: Path) -> None:
    wf = loads_workflow(VALID, check_images=False)
    path = tmp_path / "missing" / "wf.yaml"
    with pytest.raises(WorkflowError, match="cannot save workflow") as info:
        save_workflow(wf, path)
    assert str(path) in str(info.value)


def test_save_does_not_replace_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf = loads_workflow(VALID, check_images=False)
    path = tmp_path / "wf.yaml"
    path.write_text("old content")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(WorkflowError, match="No space left"):
        save_workflow(wf, path)
    assert path.read_text() == "old content"
    assert os.listdir(tmp_path) == ["wf.yaml"]


# --- round trip --------------------------------------------------------------------------------


def test_dump_round_trips_contract_example_with_layout_and_params() -> None:
    wf = loads_workflow(VALID, check_images=False)
    text = dump_workflow(wf)
    assert loads_workflow(text, check_images=False) == wf
    assert "job1: [120.0, 40.0]" in text
    assert text.index("branch_A") < text.index("branch_B")


def test_dump_omits_empty_optional_keys() -> None:
    wf = Workflow("wf", (Branch("a", (Job("j1", "tissue", image="a.svs"),)),))
    text = dump_workflow(wf)
    for key in ("profile", "defaults", "layout", "depends_on", "params"):
        assert key not in text
    assert loads_workflow(text, check_images=False) == wf


def test_dump_quotes_ids_and_names_that_yaml_would_read_as_other_types() -> None:
    wf = Workflow(
        "null",
        (
            Branch("1", (Job("true", "tissue", image="1.5"),)),
            Branch("no", (Job("0x10", "export", depends_on=("true",)),)),
        ),
        layout={"0x10": (1e-300, -2.5)},
    )
    assert loads_workflow(dump_workflow(wf), check_images=False) == wf


def test_workflow_equality_ignores_base_dir(tmp_path: Path) -> None:
    a = loads_workflow(VALID, file=tmp_path / "x" / "wf.yaml", check_images=False)
    b = loads_workflow(VALID, file=tmp_path / "y" / "wf.yaml", check_images=False)
    assert a.base_dir != b.base_dir and a == b


def test_profile_error_becomes_workflow_error_with_cause(tmp_path: Path) -> None:
    text = "name: wf\nprofile: ../bob\ndag: {a: [{job_id: j1, type: tissue, image: a.svs}]}\n"
    err = rejected(tmp_path, text, "invalid profile name")
    assert isinstance(err.__cause__, ProfileError)
