"""Filter expressions: vectorised, whitelisted (no code runs), errors name the position and the columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsidesk.core.cells.expression import ExpressionError, compile_filter

COLUMNS = ("area_um2", "hematoxylin_od_mean", "eccentricity")


def _data() -> dict[str, np.ndarray]:
    return {
        "area_um2": np.array([10.0, 50.0, 45.0, np.nan, 80.0]),
        "hematoxylin_od_mean": np.array([0.5, 0.2, 0.4, 0.9, 0.35]),
        "eccentricity": np.array([0.1, 0.5, 0.9, 0.2, 0.7]),
        "class": np.array(["Tumor", "", "Stroma", "Tumor", "Stroma"]),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("area_um2 > 40 and hematoxylin_od_mean > 0.3", [False, False, True, False, True]),
        ("area_um2 > 40 or not hematoxylin_od_mean < 0.45", [True, True, True, True, True]),
        ("not (area_um2 > 40)", [True, False, False, True, False]),  # NaN > 40 is False
        ("40 <= area_um2 < 60", [False, True, True, False, False]),
        ("area_um2 * hematoxylin_od_mean >= 18 - 0", [False, False, True, False, True]),
        ("(area_um2 / 10) ** 2 > 20 and eccentricity % 0.5 < 0.3", [False, True, False, False, True]),
        ('class == "Tumor"', [True, False, False, True, False]),
        ("class != 'Tumor' and -eccentricity > -0.8", [False, True, False, False, True]),
        ('class in ("Stroma", "")', [False, True, True, False, True]),
        ("area_um2 not in (10, 80)", [False, True, True, True, False]),
        ("True", [True] * 5),
        ("", [True] * 5),
    ],
)
def test_expressions_evaluate_over_whole_columns(text: str, expected: list[bool]) -> None:
    mask = compile_filter(text, COLUMNS)(_data())
    assert mask.dtype == bool and mask.tolist() == expected


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("area_um2 >", 10, "ends too early"),
        ("area_um2 > > 1", 11, "invalid syntax"),
        ("aera_um2 > 4", 0, "unknown column 'aera_um2'"),
        ("area_um2 > 4 and solidty < 1", 17, "unknown column 'solidty'"),
        ("area_um2 + 1", 0, "must be a condition"),
        ("area_um2 > 1 and 2", 17, "joins conditions"),
        ('class > "a"', 0, "needs numbers"),
        ('area_um2 == "big"', 12, "cannot compare a number with text"),
        ("   (area_um2 > 1", 3, "never closed"),
        ("abs(area_um2) > 1", 0, "function calls not allowed"),
    ],
)
def test_errors_name_the_position_and_the_columns(text: str, position: int, words: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_filter(text, COLUMNS)
    err = info.value
    assert err.position == position and words in str(err)
    assert f"at position {position + 1}" in str(err)
    assert "available columns: area_um2, hematoxylin_od_mean, eccentricity" in str(err)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch {marker}') == 0",
        "area_um2.__class__.__bases__ == 1",
        "[x for x in ().__class__.__base__.__subclasses__()] == 1",
        "(lambda: open('{marker}', 'w'))() == 1",
        "area_um2[0] > 1",
    ],
)
def test_no_code_ever_runs(tmp_path: Path, text: str) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ExpressionError, match="not allowed"):
        compile_filter(text.format(marker=marker), COLUMNS)
    assert not marker.exists()


def test_class_inside_a_string_is_text_and_missing_region_is_reported() -> None:
    data = _data()
    assert compile_filter("class == 'class'", COLUMNS)(data).tolist() == [False] * 5
    flt = compile_filter('region == "A"', COLUMNS)
    with pytest.raises(ExpressionError, match="no 'region'"):
        flt(data)
