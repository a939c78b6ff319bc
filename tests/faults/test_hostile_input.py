"""Hostile or mistaken workflow files and names: refused quickly, with short messages, exit 2, no traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wsidesk.core.errors import ProfileError, WorkflowError
from wsidesk.core.profiles import check_profile_name
from wsidesk.core.workflow.io import MAX_JOBS, MAX_WORKFLOW_BYTES, loads_workflow

LAUGHS = "\n".join(
    [
        'name: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
        "dag: *i",
    ]
)


def slide_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.svs"
    path.write_bytes(b"not read by validate")
    return path


def test_billion_laughs_is_refused_fast_with_its_line(tmp_path: Path, cli) -> None:
    wf = tmp_path / "laughs.yaml"
    wf.write_text(LAUGHS)
    assert len(wf.read_bytes()) < 700
    start = time.monotonic()
    result = cli("validate", str(wf))
    cli.fails_cleanly(result, 2, "aliases expand to more than", "at line ", str(wf))
    assert time.monotonic() - start < 30  # a process start; before: minutes and gigabytes
    assert len(result.stderr) < 1000


def test_aliases_that_stay_small_are_fine(tmp_path: Path) -> None:
    slide_file(tmp_path)
    text = (
        "name: w\ndefaults: &d {tile_size: 256}\n"
        "dag:\n  b:\n    - {job_id: j1, type: tissue, image: s.svs, params: *d}\n"
    )
    wf = loads_workflow(text, file=tmp_path / "wf.yaml")
    assert wf.job("j1").params["tile_size"] == 256


def test_a_huge_value_in_an_error_is_shortened(tmp_path: Path) -> None:
    huge = "x" * 2_000_000
    for text in (f"name: [{huge}]\ndag: {{}}\n", f"name: w\n{huge}: 1\ndag: {{}}\n"):
        with pytest.raises(WorkflowError) as info:
            loads_workflow(text, file=tmp_path / "wf.yaml")
        assert len(str(info.value)) < 400, str(info.value)[:400]


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path, cli) -> None:
    wf = tmp_path / "big.yaml"
    with wf.open("w") as f:
        f.write("name: big\ndag:\n  b:\n")
        line = "    - {job_id: j, type: tissue, image: s.svs}\n"
        f.write(line * (MAX_WORKFLOW_BYTES // len(line) + 1))
    result = cli("validate", str(wf))
    cli.fails_cleanly(result, 2, "MB a workflow may be", str(wf))


def test_too_many_jobs_are_refused_naming_the_limit(tmp_path: Path) -> None:
    jobs = "".join(f"    - {{job_id: j{i}, type: tissue, image: s.svs}}\n" for i in range(MAX_JOBS + 1))
    with pytest.raises(WorkflowError, match=f"{MAX_JOBS + 1:,} jobs, more than the {MAX_JOBS:,}"):
        loads_workflow("name: w\ndag:\n  b:\n" + jobs, file=tmp_path / "wf.yaml")


@pytest.mark.parametrize("name", ["evil\x1b[2Jbranch", "two\nlines", "bell\x07"])
def test_control_characters_in_branch_names_are_refused(tmp_path: Path, name: str) -> None:
    slide_file(tmp_path)
    quoted = name.encode("unicode_escape").decode()
    text = f'name: w\ndag:\n  "{quoted}":\n    - {{job_id: j1, type: tissue, image: s.svs}}\n'
    with pytest.raises(WorkflowError, match="control characters") as info:
        loads_workflow(text, file=tmp_path / "wf.yaml")
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)


def test_a_symlink_loop_is_called_a_loop(tmp_path: Path, cli) -> None:
    (tmp_path / "a.svs").symlink_to(tmp_path / "b.svs")
    (tmp_path / "b.svs").symlink_to(tmp_path / "a.svs")
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: w\ndag:\n  b:\n    - {job_id: j1, type: tissue, image: a.svs}\n")
    cli.fails_cleanly(cli("validate", str(wf)), 2, "loop of symbolic links", "a.svs")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ("{tile_size: 1000000000}", "up to 16384"),
        ("{device: tpu}", "one of auto, cpu, cuda, mps"),
        ("{precision: fp8}", "one of auto, fp32, bf16, fp16"),
        ("{batch_size: 0}", "positive integer"),
    ],
)
def test_validate_catches_params_before_anything_runs(tmp_path: Path, cli, params: str, needle: str) -> None:
    slide_file(tmp_path)
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: w\ndag:\n  b:\n    - {{job_id: j1, type: segment, image: s.svs, params: {params}}}\n")
    cli.fails_cleanly(cli("validate", str(wf)), 2, needle, "j1")


@pytest.mark.parametrize("name", ["CON", "nul", "NUL.txt", "com1", "Lpt9.log", "aux", "trailing."])
def test_names_windows_cannot_hold_are_refused(name: str) -> None:
    with pytest.raises(ProfileError, match="Windows reserves"):
        check_profile_name(name)


def test_ordinary_names_stay_valid() -> None:
    for name in ("alice", "con_2", "console", "nul-lab", "a.b", "COM10"):
        assert check_profile_name(name) == name
