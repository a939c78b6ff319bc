"""Annotations: QuPath GeoJSON round trips, bad regions refused or repaired, per-slide storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from wsidesk.core.annotations import (
    Annotation,
    AnnotationError,
    AnnotationStore,
    clean_region,
    parse_annotations,
    read_annotations,
    write_annotations,
)

SLIDE = (4000, 3000)


def qupath_collection() -> dict:
    """Shaped like QuPath 0.5's 'Export objects as GeoJSON' (feature collection) output."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "8b5f1a9c-2f6e-4c53-9a0e-1d2c3b4a5f60",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[100, 100], [1100, 100], [1100, 900], [100, 900], [100, 100]],
                        [[400, 400], [600, 400], [600, 600], [400, 600], [400, 400]],
                    ],
                },
                "properties": {
                    "objectType": "annotation",
                    "name": "Tumour core",
                    "color": [200, 30, 40],
                    "classification": {"name": "Tumor", "color": [200, 0, 0]},
                    "isLocked": True,
                    "measurements": {"Area µm^2": 123.5},
                    "metadata": {"reviewer": "AB"},
                },
            },
            {
                "type": "Feature",
                "id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[2000, 200], [2500, 200], [2500, 700], [2000, 700], [2000, 200]]],
                        [[[3000, 1500], [3500, 1500], [3500, 2200], [3000, 2200], [3000, 1500]]],
                    ],
                },
                "properties": {"objectType": "annotation", "classification": {"name": "Stroma", "color": -16711936}},
            },
        ],
    }


def test_qupath_file_round_trips_with_holes_multipolygons_and_properties(tmp_path: Path) -> None:
    source = tmp_path / "qupath.geojson"
    source.write_text(json.dumps(qupath_collection()))
    first = read_annotations(source, slide_size=SLIDE)
    assert first.notes == ()
    tumour, stroma = first.annotations
    assert tumour.name == "Tumour core" and tumour.color == (200, 30, 40)
    assert tumour.id == "8b5f1a9c-2f6e-4c53-9a0e-1d2c3b4a5f60"
    assert isinstance(tumour.geometry, Polygon) and len(tumour.geometry.interiors) == 1
    assert tumour.area == 1000 * 800 - 200 * 200
    assert stroma.name == "Stroma" and stroma.color == (0, 255, 0)  # packed ARGB int of the class
    assert isinstance(stroma.geometry, MultiPolygon) and len(stroma.geometry.geoms) == 2

    out = write_annotations(first.annotations, tmp_path / "out.geojson")
    written = json.loads(out.read_text())
    again = read_annotations(out, slide_size=SLIDE).annotations
    for before, after in zip(first.annotations, again, strict=True):
        assert after.id == before.id and after.name == before.name and after.color == before.color
        assert shapely.equals(after.geometry, before.geometry)
        assert dict(after.properties) == dict(before.properties)
    props = written["features"][0]["properties"]
    original = qupath_collection()["features"][0]["properties"]
    assert props == original  # nothing QuPath wrote is lost
    assert written["features"][1]["geometry"]["type"] == "MultiPolygon"
    assert written["features"][1]["properties"]["objectType"] == "annotation"


def test_file_of_detections_says_what_it_found_instead(tmp_path: Path) -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5], [0, 5], [0, 0]]]}
    features = [{"type": "Feature", "geometry": square, "properties": {"objectType": "detection"}}] * 1200
    features += [{"type": "Feature", "geometry": square, "properties": {"objectType": "cell"}}] * 2
    path = tmp_path / "cells.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(AnnotationError, match="found 1200 detections, 2 cells"):
        read_annotations(path)


def test_features_without_object_type_are_annotations_and_points_are_left_out_with_a_note() -> None:
    doc = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 0]]]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [3, 3]}, "properties": {}},
    ]
    result = parse_annotations(doc, source="list.json")
    assert [a.name for a in result.annotations] == ["Annotation 1"]
    assert result.notes == ("left out 1 Point annotation without an area",)


def test_region_outside_the_slide_or_without_area_is_refused() -> None:
    with pytest.raises(AnnotationError, match="outside the slide"):
        clean_region("far", shapely.box(5000, 5000, 6000, 6000), SLIDE)
    with pytest.raises(AnnotationError, match="zero area"):
        clean_region("flat", Polygon([(0, 0), (10, 0), (20, 0)]), SLIDE)
    with pytest.raises(AnnotationError, match="zero area"):
        clean_region("empty", Polygon(), SLIDE)


def test_self_intersecting_region_is_repaired_and_one_past_the_edge_is_cut_with_a_note() -> None:
    bowtie = Polygon([(0, 0), (100, 100), (100, 0), (0, 100)])
    region, notes = clean_region("bowtie", bowtie, SLIDE)
    assert region.is_valid and region.area == pytest.approx(5000)
    assert "Self-intersection" in notes[0] and "make_valid" in notes[0]
    region, notes = clean_region("edge", shapely.box(3900, 2900, 4100, 3100), SLIDE)
    assert region.bounds == (3900, 2900, 4000, 3000)
    assert notes == ["region 'edge' reached past the slide's edge; cut to the slide"]


def test_bad_features_in_a_file_are_left_out_with_the_reason() -> None:
    doc = qupath_collection()
    doc["features"].append(
        {"type": "Feature", "geometry": json.loads(shapely.to_geojson(shapely.box(9000, 9000, 9100, 9100)))}
    )
    result = parse_annotations(doc, source="x", slide_size=SLIDE)
    assert len(result.annotations) == 2
    assert "outside the slide" in result.notes[0] and result.notes[0].endswith("left out")


def test_store_keeps_annotations_per_slide_and_replaces_the_file_atomically(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "profiles" / "alice")
    a = Annotation("A", shapely.box(0, 0, 10, 10), color=(1, 2, 3), properties={"isLocked": True})
    store.save(tmp_path / "one" / "s.svs", [a])
    assert store.load(tmp_path / "two" / "s.svs") == []  # same file name, another slide
    loaded = store.load(tmp_path / "one" / "s.svs")
    assert [(x.name, x.color, x.id, dict(x.properties)) for x in loaded] == [("A", (1, 2, 3), a.id, {"isLocked": True})]
    store.save(tmp_path / "one" / "s.svs", [])
    assert store.load(tmp_path / "one" / "s.svs") == []
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".")] == []  # no temporary files left
    assert json.loads(store.path_for(tmp_path / "one" / "s.svs").read_text())["slide"].endswith("s.svs")


def test_file_whose_regions_all_lie_outside_the_slide_says_so() -> None:
    far = {"type": "Feature", "geometry": json.loads(shapely.to_geojson(shapely.box(9000, 9000, 9100, 9100)))}
    with pytest.raises(AnnotationError, match=r"x: none of its annotations can be used: region .* outside the slide"):
        parse_annotations([far], source="x", slide_size=SLIDE)
