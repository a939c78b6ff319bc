"""Label tiles -> cells (edge and centroid rules, polygons, measurements) and the seam-correct merger."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import shapely
from skimage import draw

from wsidesk.core.segment.cells import Cell
from wsidesk.core.segment.extract import consecutive_labels, extract_cells
from wsidesk.core.segment.merge import CellMerger
from wsidesk.core.slide.reader import ArrayReader
from wsidesk.core.tiling.grid import Tile, TilePlan, plan_tiles
from wsidesk.core.tiling.tissue import TissueMask

PURPLE = (100, 60, 150)
PINK = (235, 150, 200)


def make_plan(width: int, height: int, *, downsample: float = 1.0, tiles: tuple[Tile, ...] = ()) -> TilePlan:
    return TilePlan(
        slide_path="<test>",
        slide_width=width,
        slide_height=height,
        slide_mpp=0.25,
        target_mpp=0.25 * downsample,
        tile_size=256,
        padding=32,
        downsample=downsample,
        tiles=tiles or (Tile(0, 0, 0, 0, 0, 256, 256, 1.0),),
    )


def disc_tile(size: int, discs: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(label, row, col, radius) discs on a (size, size) label image."""
    labels = np.zeros((size, size), np.int32)
    for label, r, c, radius in discs:
        rr, cc = draw.disk((r, c), radius, shape=labels.shape)
        labels[rr, cc] = label
    return labels


def extract(
    labels: np.ndarray,
    rgb: np.ndarray | None,
    tile: Tile,
    plan: TilePlan,
    origin: tuple[float, float] = (0, 0),
    scale: float = 1.0,
) -> list[Cell]:
    return extract_cells(labels, rgb, tile=tile, plan=plan, origin=origin, scale=scale)


def white(labels: np.ndarray) -> np.ndarray:
    return np.full((*labels.shape, 3), 240, np.uint8)


# --- extract -----------------------------------------------------------------------------------------


def test_objects_touching_inner_edges_are_dropped_and_kept_at_slide_borders() -> None:
    # A 200 px label image whose origin is inside a large slide: all four edges are inner.
    labels = disc_tile(200, [(7, 0, 100, 10), (9, 100, 199, 10), (11, 100, 100, 10), (13, 199, 5, 8)])
    tile = Tile(0, 0, 0, 1000, 1000, 200, 200, 1.0)
    inner = extract(labels, white(labels), tile, make_plan(5000, 5000), (1000, 1000))
    assert [round(c.centroid[0]) for c in inner] == [1100]

    # The same image at the slide's top-left corner: top and left edges are slide borders.
    tile = Tile(0, 0, 0, 0, 0, 200, 200, 1.0)
    at_corner = extract(labels, white(labels), tile, make_plan(5000, 5000))
    assert sorted(round(c.centroid[0]) for c in at_corner) == [100, 100]  # the top one is kept too

    # Bottom-right corner of a 200x200 slide: every edge is a border, everything is kept.
    whole = extract(labels, white(labels), tile, make_plan(200, 200))
    assert len(whole) == 4


def test_only_objects_with_their_centroid_in_the_core_are_kept() -> None:
    # Core [32, 96) in a 128 px padded label image (padding 32 at scale 1).
    discs = [(1, 40, 31, 5), (2, 64, 32, 5), (3, 88, 95, 5), (4, 40, 96, 5), (5, 20, 64, 5)]
    labels = disc_tile(128, discs)
    tile = Tile(0, 0, 0, 32, 32, 64, 64, 1.0)
    cells = extract(labels, white(labels), tile, make_plan(1000, 1000))
    # Disc centred on pixel c has centroid c + 0.5 in corner coordinates: half-open [32, 96).
    assert sorted(round(c.centroid[0] - 0.5) for c in cells) == [32, 95]
    assert all(c.tile == 0 for c in cells)


def test_polygons_are_valid_level0_rings_matching_the_disc_area_at_scale_2() -> None:
    labels = disc_tile(128, [(42, 64, 60, 20)])
    tile = Tile(3, 0, 0, 1000, 2000, 128, 128, 1.0)
    plan = make_plan(5000, 5000, downsample=2.0)
    cells = extract_cells(labels, white(labels), tile=tile, plan=plan, origin=(936.0, 1936.0), scale=2.0)
    (cell,) = cells
    poly = shapely.Polygon(cell.polygon)
    assert poly.is_valid and len(cell.polygon) >= 8
    assert not np.array_equal(cell.polygon[0], cell.polygon[-1])  # Cell rings are open
    true_area = math.pi * (20 * 2.0) ** 2
    assert poly.area == pytest.approx(true_area, rel=0.04)
    cx, cy = cell.centroid
    assert cx == pytest.approx(936 + (60 + 0.5) * 2) and cy == pytest.approx(1936 + (64 + 0.5) * 2)
    assert poly.centroid.x == pytest.approx(cx, abs=0.5) and poly.centroid.y == pytest.approx(cy, abs=0.5)
    assert cell.bbox == pytest.approx(poly.bounds)
    assert cell.tile == 3
    # µm at the target resolution: 2 level-0 px per label px, 0.5 µm per label px.
    assert cell.measurements["area_um2"] == pytest.approx(math.pi * (20 * 0.5) ** 2, rel=0.03)
    assert cell.measurements["major_axis_um"] == pytest.approx(20.0, rel=0.05)


def test_disc_and_ellipse_measurements() -> None:
    labels = np.zeros((200, 200), np.int32)
    rr, cc = draw.disk((50, 50), 15)
    labels[rr, cc] = 5
    rr, cc = draw.ellipse(140, 120, 10, 30, rotation=0.4)
    labels[rr, cc] = 8
    rgb = white(labels)
    rgb[labels == 5] = PURPLE
    rgb[labels == 8] = PINK
    tile = Tile(0, 0, 0, 0, 0, 200, 200, 1.0)
    cells = extract_cells(labels, rgb, tile=tile, plan=make_plan(200, 200), origin=(0, 0), scale=1)
    disc, ellipse = sorted(cells, key=lambda c: c.centroid[1])
    d, e = disc.measurements, ellipse.measurements
    assert d["solidity"] > 0.97 and d["eccentricity"] < 0.1 and d["circularity"] > 0.85
    assert d["major_axis_um"] == pytest.approx(d["minor_axis_um"], rel=0.05)
    assert e["eccentricity"] == pytest.approx(math.sqrt(1 - (10 / 30) ** 2), abs=0.02)
    assert e["major_axis_um"] == pytest.approx(60 * 0.25, rel=0.05)
    assert e["minor_axis_um"] == pytest.approx(20 * 0.25, rel=0.08)
    assert d["perimeter_um"] == pytest.approx(2 * math.pi * 15 * 0.25, rel=0.05)
    assert d["hematoxylin_od_mean"] > e["hematoxylin_od_mean"] + 0.2
    assert e["eosin_od_mean"] > 0


def test_labels_may_be_arbitrary_ids_and_rgb_optional() -> None:
    labels = disc_tile(64, [(10**9, 20, 20, 5), (3, 40, 40, 5)]).astype(np.int64)
    lab, n = consecutive_labels(labels)
    assert n == 2 and set(np.unique(lab)) == {0, 1, 2}
    tile = Tile(0, 0, 0, 0, 0, 64, 64, 1.0)
    cells = extract_cells(labels, None, tile=tile, plan=make_plan(64, 64), origin=(0, 0), scale=1)
    assert len(cells) == 2 and "hematoxylin_od_mean" not in cells[0].measurements
    assert extract(np.zeros((8, 8), np.uint16), None, tile, make_plan(64, 64)) == []
    with pytest.raises(ValueError, match="rgb"):
        extract(labels, np.zeros((3, 3, 3), np.uint8), tile, make_plan(64, 64))


def test_diagonally_touching_pixels_make_one_valid_polygon() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[5:9, 5:9] = 1
    labels[9:13, 9:13] = 1  # joined at one corner only
    labels[2, 15] = 2  # a single pixel
    tile = Tile(0, 0, 0, 0, 0, 20, 20, 1.0)
    cells = extract_cells(labels, None, tile=tile, plan=make_plan(20, 20), origin=(0, 0), scale=1)
    assert len(cells) == 2
    for cell in cells:
        assert shapely.Polygon(cell.polygon).is_valid
    big = max(cells, key=lambda c: c.measurements["area_um2"])
    assert shapely.Polygon(big.polygon).area > 25  # both squares, not only one


# --- grid independence ---------------------------------------------------------------------------------


@functools.cache
def ellipse_slide(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A 2000x1500 label image of non-touching ellipses (ids random) and their true centroids."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((1500, 2000), np.int64)
    occupied = np.zeros(labels.shape, bool)
    truth = []
    ids = rng.choice(10**6, size=2000, replace=False) + 1
    k = 0
    for _ in range(3000):
        r, c = rng.uniform(0, 1500), rng.uniform(0, 2000)
        a, b = rng.uniform(4, 14), rng.uniform(4, 14)
        rot = rng.uniform(0, math.pi)
        rr, cc = draw.ellipse(r, c, a + 2, b + 2, shape=labels.shape, rotation=rot)
        if occupied[rr, cc].any():
            continue
        rr, cc = draw.ellipse(r, c, a, b, shape=labels.shape, rotation=rot)
        if len(rr) < 5:
            continue
        occupied[rr, cc] = True
        labels[rr, cc] = ids[k]
        truth.append((cc.mean() + 0.5, rr.mean() + 0.5))
        k += 1
        if k >= 400:
            break
    labels.flags.writeable = False
    return labels, np.array(truth)


def segment_by_tiles(labels: np.ndarray, *, tile_size: int, padding: int) -> list[Cell]:
    h, w = labels.shape
    reader = ArrayReader(np.zeros((h, w, 3), np.uint8), mpp=0.5)
    mask = TissueMask.for_slide(np.ones((h // 16, w // 16), bool), (w, h))
    plan = plan_tiles(reader, tile_size=tile_size, padding=padding, target_mpp=0.5, mask=mask)
    merger = CellMerger()
    for tile in plan.tissue_tiles:
        x, y, pw, ph = plan.padded_region(tile)
        cut = np.zeros((ph, pw), labels.dtype)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
        cut[y0 - y : y1 - y, x0 - x : x1 - x] = labels[y0:y1, x0:x1]
        merger.add(extract_cells(cut, None, tile=tile, plan=plan, origin=(x, y), scale=plan.downsample))
    return merger.cells()


def centroids(cells: list[Cell]) -> np.ndarray:
    return np.array(sorted(c.centroid for c in cells))


def assert_same_set(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(b).query(a)
    assert dist.max() < 0.5
    assert len(set(idx.tolist())) == len(b)  # 1:1


@pytest.mark.parametrize("offset", [0, 100])
def test_cell_set_is_independent_of_the_tile_grid(offset: int) -> None:
    labels, truth = ellipse_slide()
    if offset:
        labels = np.pad(labels, ((offset, 0), (offset, 0)))
        truth = truth + offset
    small = segment_by_tiles(labels, tile_size=256, padding=64)
    large = segment_by_tiles(labels, tile_size=512, padding=64)
    assert len(truth) > 300
    assert_same_set(centroids(small), centroids(large))
    assert_same_set(centroids(small), truth)
    assert [c.id for c in small] == list(range(1, len(small) + 1))


# --- merger --------------------------------------------------------------------------------------------


def square(x: float, y: float, size: float = 10.0, *, tile: int = 0) -> Cell:
    poly = np.array([[x, y], [x + size, y], [x + size, y + size], [x, y + size]], float)
    bbox = (x, y, x + size, y + size)
    return Cell(poly, (x + size / 2, y + size / 2), bbox, tile, {"area_um2": size * size})


def test_merger_rejects_shifted_duplicates_and_keeps_touching_neighbours() -> None:
    merger = CellMerger(min_overlap=0.5)
    first = merger.add([square(0, 0), square(10, 0), square(100, 100, 20)])
    assert [c.id for c in first] == [1, 2, 3]  # (10, 0) only touches (0, 0)
    second = merger.add(
        [
            square(2, 1, tile=1),  # 8x9 of 10x10 overlap -> duplicate
            square(105, 105, 8, tile=1),  # inside a bigger cell: IoS = 1
            square(16, 0, tile=1),  # overlaps (10, 0) by 40% -> kept
            square(300, 300, tile=1),
            square(301, 300, tile=1),  # duplicate of one accepted in the same batch
        ]
    )
    assert [(c.id, c.bbox[0]) for c in second] == [(4, 16.0), (5, 300.0)]
    assert len(merger) == 5 and [c.id for c in merger.cells()] == [1, 2, 3, 4, 5]


def test_merger_restore_keeps_ids_and_continues_numbering() -> None:
    merger = CellMerger()
    cells = merger.add([square(0, 0), square(50, 0)])
    resumed = CellMerger()
    resumed.restore(cells)
    assert [c.id for c in resumed.cells()] == [1, 2]
    assert resumed.add([square(1, 1)]) == []  # still rejects duplicates of restored cells
    (new,) = resumed.add([square(200, 0)])
    assert new.id == 3


def test_merger_handles_many_cells_quickly() -> None:
    import time

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 20000, (20000, 2))
    cells = [square(x, y, 8) for x, y in xy]
    merger = CellMerger()
    start = time.perf_counter()
    for i in range(0, len(cells), 500):
        merger.add(cells[i : i + 500])
    elapsed = time.perf_counter() - start
    assert 0 < len(merger) <= len(cells)
    assert elapsed < 20  # generous: shared CI cores; ~1-2 s on a laptop
