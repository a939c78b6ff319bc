"""`wsidesk cells summary|export|classify RESULT` and the export job's `rules`, checked against the source cells."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.core.cells.test_classes import RULES, write_rules
from wsidesk.cli import main
from wsidesk.core.cells.store import open_cells
from wsidesk.core.errors import JobError
from wsidesk.core.export.geojson import read_geojson
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.jobs.export import run_export_job
from wsidesk.core.workflow.model import Branch, Job, Workflow


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_summary_prints_counts_density_and_statistics(result: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = read_geojson(result / "cells.geojson")
    areas = np.array([c.measurements["area_um2"] for c in source])
    assert main(["cells", "summary", str(result.parent), "--json"]) == 0  # a run folder with one segment job
    doc = _json(capsys)
    slide = doc["groups"][0]
    assert doc["source"].endswith("cells.arrow") and doc["tissue_mm2"] == pytest.approx(0.5)
    assert slide["count"] == 300 and slide["density_per_mm2"] == pytest.approx(600.0)
    assert slide["area_um2_mean"] == pytest.approx(areas.mean())
    assert slide["area_um2_median"] == pytest.approx(np.median(areas))

    rules = write_rules(result.parent.parent / "rules.yaml")
    out = result.parent.parent / "summary.csv"
    assert main(["cells", "summary", str(result), "--rules", str(rules), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "300 cells" in text and "600.0 cells/mm²" in text and "class Tumor:" in text
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    tumor = next(r for r in rows if r["name"] == "Tumor")
    hema = np.array([c.measurements["hematoxylin_od_mean"] for c in source])
    assert int(tumor["count"]) == int(((areas > 25) & (hema > 0.4)).sum())


@pytest.mark.parametrize("fmt", ["geojson", "csv"])
def test_export_writes_the_source_numbers(result: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"all.{fmt}"
    assert main(["cells", "export", str(result), "--format", fmt, "--out", str(out)]) == 0
    if fmt == "csv":
        assert out.read_text() == (result / "cells.csv").read_text()
    else:
        ours = [f["properties"] for f in json.loads(out.read_text())["features"]]
        theirs = [f["properties"] for f in json.loads((result / "cells.geojson").read_text())["features"]]
        assert ours == theirs


def test_export_with_filter_and_rules(result: Path, tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml")
    out = tmp_path / "big.csv"
    code = main(["cells", "export", str(result), "--format", "csv", "--out", str(out), "--filter", "area_um2 > 30"])
    assert code == 0
    source = read_geojson(result / "cells.geojson")
    with out.open(newline="") as f:
        assert [int(r["id"]) for r in csv.DictReader(f)] == [c.id for c in source if c.measurements["area_um2"] > 30]
    code = main(["cells", "export", str(result), "--out", str(tmp_path / "t.geojson"), "--rules", str(rules)])
    assert code == 0
    names = {
        f["properties"].get("classification", {}).get("name")
        for f in json.loads((tmp_path / "t.geojson").read_text())["features"]
    }
    assert names == {"Tumor", "Large", None}
    assert main(["cells", "export", str(result)]) == 0  # default place
    assert (result / "export" / "cells.geojson").is_file()


def test_classify_writes_classes_into_the_result(
    result: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write_rules(tmp_path / "rules.yaml")
    assert main(["cells", "classify", str(result), "--rules", str(rules), "--json"]) == 0
    doc = _json(capsys)
    table = open_cells(result)
    counts = {name: int((table.classes == name).sum()) for name in ("Tumor", "Large", "")}
    assert doc["classes"] == counts and sum(counts.values()) == 300
    assert (result / "classes.yaml").read_text() != "" and table.class_colors["Tumor"] == "#c83232"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["summary", "{result}", "--filter", "area_um2 >"], "position 11"),
        (["export", "{result}", "--filter", "aera > 1"], "available columns: area_um2"),
        (["classify", "{result}", "--rules", "{tmp}/missing.yaml"], "cannot read class rules"),
        (["summary", "{tmp}/nothing"], "is not a folder"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    result: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    argv = ["cells", *(a.format(result=result, tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    assert words in capsys.readouterr().err


def _export_ctx(tmp_path: Path, inputs: dict[str, dict[str, str]], params: dict[str, Any]) -> JobContext:
    job = Job("exp", "export", None, depends_on=tuple(inputs), params=params)
    workflow = Workflow(name="w", branches=(Branch("b", (job,)),), base_dir=tmp_path)
    return JobContext(
        run_id="r1",
        profile="default",
        workflow=workflow,
        branch="b",
        job=job,
        params=params,
        image=None,
        out_dir=tmp_path / "exp",
        inputs=inputs,
        is_cancelled=lambda: False,
    )


def test_export_job_applies_class_rules(result: Path, tmp_path: Path) -> None:
    write_rules(tmp_path / "classes.yaml", RULES)
    inputs = {"seg": {"cells": str(result / "cells.geojson")}}
    out = run_export_job(_export_ctx(tmp_path, inputs, {"format": "csv", "rules": "classes.yaml"}))
    with Path(out["seg"]).open(newline="") as f:
        rows = list(csv.DictReader(f))
    table = open_cells(result)
    area, hema = table.columns["area_um2"], table.columns["hematoxylin_od_mean"]
    expected = np.where((area > 25) & (hema > 0.4), "Tumor", np.where(area > 25, "Large", ""))
    assert [r["class"] for r in rows] == expected.tolist()
    write_rules(tmp_path / "bad.yaml", "- {name: X, color: '#000000', when: 'nope > 1'}\n")
    with pytest.raises(JobError, match="unknown column 'nope'"):
        run_export_job(_export_ctx(tmp_path, inputs, {"format": "geojson", "rules": "bad.yaml"}))
