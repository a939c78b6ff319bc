"""Class rules: YAML files with clear errors, first match wins, saved with the result, exported as QuPath classes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from wsidesk.core.cells.classes import (
    ClassRule,
    RulesError,
    class_counts,
    classify,
    classify_result,
    load_rules,
    save_rules,
)
from wsidesk.core.cells.export import export_cells
from wsidesk.core.cells.store import open_cells

RULES = """\
- name: Tumor
  color: "#c83232"
  when: area_um2 > 25 and hematoxylin_od_mean > 0.4
- name: Large
  color: "#3264c8"
  when: area_um2 > 25
"""


def write_rules(path: Path, text: str = RULES) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_first_matching_rule_wins_and_counts(result: Path, tmp_path: Path) -> None:
    table = open_cells(result)
    rules = load_rules(write_rules(tmp_path / "rules.yaml"), columns=table.column_names)
    classes = classify(table, rules)
    area, hema = table.columns["area_um2"], table.columns["hematoxylin_od_mean"]
    tumor = (area > 25) & (hema > 0.4)
    large = (area > 25) & ~tumor
    assert np.array_equal(classes == "Tumor", tumor) and np.array_equal(classes == "Large", large)
    assert np.array_equal(classes == "", area <= 25)
    counts = class_counts(classes, rules)
    assert list(counts)[:2] == ["Tumor", "Large"]
    assert counts == {"Tumor": int(tumor.sum()), "Large": int(large.sum()), "": int((area <= 25).sum())}
    assert rules[0].rgb == (200, 50, 50)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rules = [ClassRule("Tumor", "#c83232", "area_um2 > 40"), ClassRule("Ö klass", "#00ff00", 'class == ""')]
    assert load_rules(save_rules(rules, tmp_path / "r.yaml")) == rules


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: Tumor\n", "expected a non-empty list"),
        ("[]\n", "expected a non-empty list"),
        ("- Tumor\n", "class 1 must be a mapping"),
        ("- {name: T, color: '#ff0000'}\n", "missing ['when']"),
        ("- {name: T, color: '#ff0000', when: a > 1, colour: red}\n", "unknown keys ['colour']"),
        ("- {name: T, color: red, when: area_um2 > 1}\n", "color must be '#rrggbb'"),
        ("- {name: '', color: '#ff0000', when: area_um2 > 1}\n", "non-empty name"),
        ("- {name: T, color: '#ff0000', when: ''}\n", "'when' must be an expression"),
        (
            "- {name: T, color: '#ff0000', when: area_um2 > 1}\n- {name: T, color: '#00ff00', when: area_um2 > 2}\n",
            "class 2: the name 'T' is used twice",
        ),
        ("- {name: T, color: '#ff0000', when: [unclosed\n", "not valid YAML"),
    ],
)
def test_rules_file_errors_say_what_to_fix(tmp_path: Path, text: str, words: str) -> None:
    path = write_rules(tmp_path / "rules.yaml", text)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert words in str(info.value) and str(path) in str(info.value)


def test_a_rule_that_does_not_parse_names_rule_position_and_columns(result: Path, tmp_path: Path) -> None:
    path = write_rules(tmp_path / "r.yaml", "- {name: Big, color: '#ff0000', when: 'area_um2 > > 3 or aera > 1'}\n")
    table = open_cells(result)
    with pytest.raises(RulesError) as info:
        load_rules(path, columns=table.column_names)
    message = str(info.value)
    assert "class 'Big'" in message and "position 12" in message and "available columns: area_um2" in message
    with pytest.raises(RulesError, match="unknown column 'aera'"):
        classify(table, [ClassRule("Big", "#ff0000", "area_um2 > 3 or aera > 1")])
    with pytest.raises(RulesError, match="cannot read class rules"):
        load_rules(tmp_path / "missing.yaml")


def test_classify_result_saves_classes_the_store_and_exports_carry(result: Path, tmp_path: Path) -> None:
    rules = load_rules(write_rules(tmp_path / "rules.yaml"))
    classified = classify_result(result, rules)
    assert (result / "classes.yaml").is_file()
    table = open_cells(result)
    assert table.note == "" and table.classified
    assert np.array_equal(table.classes, classified.classes)
    assert table.class_colors == {"Tumor": "#c83232", "Large": "#3264c8"}

    doc = json.loads(export_cells(table, tmp_path / "c.geojson", fmt="geojson").read_text())
    for feat, name in zip(doc["features"], table.classes.tolist(), strict=True):
        props = feat["properties"]
        if name:
            rgb = [200, 50, 50] if name == "Tumor" else [50, 100, 200]
            assert props["classification"] == {"name": name, "color": rgb}
        else:
            assert "classification" not in props
    with export_cells(table, tmp_path / "c.csv", fmt="csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == table.classes.tolist()
    with (result / "cells.csv").open(newline="") as f:
        source = list(csv.DictReader(f))
    assert [{k: v for k, v in r.items() if k != "class"} for r in rows] == source


def test_saved_classes_are_reapplied_when_the_store_is_lost(result: Path, tmp_path: Path) -> None:
    classified = classify_result(result, load_rules(write_rules(tmp_path / "rules.yaml")))
    (result / "cells.arrow").unlink()
    table = open_cells(result)
    assert table.source == result / "cells.geojson"
    assert np.array_equal(table.classes, classified.classes)


def test_saved_rules_win_over_classes_stored_earlier(result: Path, tmp_path: Path) -> None:
    classify_result(result, load_rules(write_rules(tmp_path / "rules.yaml")))
    save_rules([ClassRule("Small", "#00ff00", "area_um2 <= 25")], result / "classes.yaml")  # as the app does
    table = open_cells(result)
    assert set(table.classes.tolist()) == {"Small", ""}
    assert np.array_equal(table.classes == "Small", table.columns["area_um2"] <= 25)
    assert table.class_colors == {"Small": "#00ff00"}
    (result / "classes.yaml").write_text("- {name: X, color: '#000000', when: 'gone > 1'}\n")
    broken = open_cells(result)  # the stored classes stay, and the note says why
    assert "saved classes not applied" in broken.note and "Tumor" in set(broken.classes.tolist())
