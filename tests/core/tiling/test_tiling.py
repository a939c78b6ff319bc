"""Tissue detection and tile planning on synthetic H&E-like images."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import draw

from wsidesk.core.errors import SlideError
from wsidesk.core.slide.reader import ArrayReader, open_slide
from wsidesk.core.tiling import Tile, TilePlan, TissueMask, detect_tissue, plan_tiles, render_tissue_png
from wsidesk.core.tiling.tissue import mask_thumbnail_size

GLASS = (236, 234, 239)
EOSIN = (228, 160, 205)
PALE = (240, 214, 230)
HAEMATOXYLIN = (95, 62, 150)


def glass(h: int, w: int, rng: np.random.Generator, noise: float = 3.0) -> np.ndarray:
    img = np.empty((h, w, 3), dtype=np.float64)
    img[:] = GLASS
    img += rng.normal(0.0, noise, img.shape)
    return img


def finish(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def he_slide(
    h: int, w: int, seed: int, *, blobs: int = 3, nuclei_per_blob: int = 40
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Glass with tissue ellipses (some pale) and nuclei, some straddling the tissue border.

    Returns the image, the drawn tissue mask and the nucleus centres (x, y).
    """
    rng = np.random.default_rng(seed)
    img = glass(h, w, rng)
    tissue = np.zeros((h, w), dtype=bool)
    centres: list[tuple[int, int]] = []
    for i in range(blobs):
        cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
        ry, rx = rng.uniform(0.06, 0.2) * h, rng.uniform(0.06, 0.2) * w
        rr, cc = draw.ellipse(cy, cx, ry, rx, shape=(h, w))
        colour = PALE if i == 0 else EOSIN
        img[rr, cc] = np.asarray(colour) + rng.normal(0.0, 6.0, (len(rr), 3))
        tissue[rr, cc] = True
        for _ in range(nuclei_per_blob):
            # Radius up to 1.05: a few nuclei sit on or just past the tissue border.
            t, a = rng.uniform(0.0, 1.05) ** 0.5, rng.uniform(0, 2 * np.pi)
            ny = int(np.clip(cy + t * ry * np.sin(a), 0, h - 1))
            nx = int(np.clip(cx + t * rx * np.cos(a), 0, w - 1))
            nr, nc = draw.ellipse(ny, nx, rng.uniform(3, 6), rng.uniform(3, 6), shape=(h, w))
            img[nr, nc] = HAEMATOXYLIN
            centres.append((nx, ny))
    return finish(img), tissue, centres


def stroke(img: np.ndarray, points: list[tuple[int, int]], colour: tuple[int, int, int], width: int) -> None:
    """A thick pen stroke through (x, y) points."""
    h, w = img.shape[:2]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for t in np.linspace(0.0, 1.0, n):
            rr, cc = draw.disk((y0 + t * (y1 - y0), x0 + t * (x1 - x0)), width / 2, shape=(h, w))
            img[rr, cc] = colour


# --- tissue detection ------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 3.0, 6.0])
def test_empty_glass_gives_no_tissue_and_all_tiles_skipped(noise: float) -> None:
    img = finish(glass(1500, 2000, np.random.default_rng(1), noise))
    assert not detect_tissue(img).any()
    plan = plan_tiles(ArrayReader(img, mpp=0.5), tile_size=256, padding=40, thumbnail_size=1024)
    assert plan.total > 0
    assert plan.tissue == 0
    assert plan.skipped == plan.total
    assert all(t.state == "skipped" for t in plan.tiles)


def test_yellowish_glass_is_not_tissue() -> None:
    rng = np.random.default_rng(2)
    img = np.empty((600, 800, 3))
    img[:] = (246, 240, 222)  # badly white-balanced scanner
    img += rng.normal(0.0, 3.0, img.shape)
    assert not detect_tissue(finish(img)).any()


def test_full_tissue_keeps_every_tile() -> None:
    rng = np.random.default_rng(3)
    img = np.empty((1200, 1600, 3))
    img[:] = EOSIN
    img += rng.normal(0.0, 8.0, img.shape)
    for _ in range(300):
        rr, cc = draw.ellipse(rng.uniform(0, 1200), rng.uniform(0, 1600), 5, 4, shape=(1200, 1600))
        img[rr, cc] = HAEMATOXYLIN
    img = finish(img)
    assert detect_tissue(img).mean() > 0.99
    plan = plan_tiles(ArrayReader(img, mpp=0.5), tile_size=256, padding=32)
    assert plan.skipped == 0
    assert plan.tissue == plan.total == 5 * 7


def test_detected_mask_matches_drawn_tissue() -> None:
    img, tissue, _ = he_slide(1200, 1600, seed=4, nuclei_per_blob=0)
    mask = detect_tissue(img)
    assert mask.shape == tissue.shape
    assert mask[tissue].mean() > 0.99  # pale tissue included
    assert (mask & ~tissue).sum() < 0.05 * tissue.sum()  # only the slight edge dilation outside


@pytest.mark.parametrize(
    "colour",
    [(40, 70, 170), (30, 120, 200), (40, 140, 70), (90, 170, 120), (25, 25, 30)],
    ids=["blue", "cyan-blue", "green", "light-green", "black"],
)
def test_pen_marks_on_glass_are_not_tissue(colour: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(5)
    img = glass(1000, 1400, rng)
    stroke(img, [(100, 100), (700, 300), (1300, 150)], colour, width=14)
    stroke(img, [(200, 900), (600, 600), (1200, 900)], colour, width=6)
    img = finish(img)
    mask = detect_tissue(img)
    assert mask.sum() == 0
    plan = plan_tiles(ArrayReader(img, mpp=0.5), tile_size=256, padding=40)
    assert plan.tissue == 0


def test_pen_circle_around_tissue_leaves_the_tissue() -> None:
    img, tissue, _ = he_slide(1200, 1600, seed=6, blobs=2, nuclei_per_blob=20)
    work = img.astype(np.float64)
    angles = np.linspace(0, 2 * np.pi, 60)
    ring = [(int(800 + 760 * np.cos(a)), int(600 + 560 * np.sin(a))) for a in angles]
    stroke(work, ring, (40, 70, 170), width=10)
    img = finish(work)
    mask = detect_tissue(img)
    pen = (img[..., 2] > 150) & (img[..., 0] < 60)
    assert not (mask & pen).any()
    assert mask[tissue & ~pen].mean() > 0.98


def test_tissue_mask_fraction_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    m = rng.random((50, 70)) > 0.6
    tm = TissueMask(m, 4.0)
    for _ in range(200):
        x, y = rng.integers(-20, 300), rng.integers(-20, 220)
        w, h = rng.integers(1, 120), rng.integers(1, 120)
        c0, r0 = max(int(np.floor(x / 4)), 0), max(int(np.floor(y / 4)), 0)
        c1 = int(np.clip(np.ceil((x + w) / 4), 0, 70))
        r1 = int(np.clip(np.ceil((y + h) / 4), 0, 50))
        window = m[r0:r1, c0:c1]
        expected = float(window.mean()) if window.size else 0.0
        assert tm.fraction_in(x, y, w, h) == pytest.approx(expected)
    assert tm.fraction_in(1000, 1000, 10, 10) == 0.0
    assert TissueMask(np.ones((10, 10)), 2.0).fraction_in(0, 0, 20, 20) == 1.0


def test_tissue_mask_is_read_only_and_rejects_bad_input() -> None:
    tm = TissueMask(np.zeros((4, 4), dtype=bool), 2.0)
    with pytest.raises(ValueError, match="read-only"):
        tm.mask[0, 0] = True
    with pytest.raises(ValueError, match="2-D"):
        TissueMask(np.zeros((4, 4, 3)), 2.0)
    with pytest.raises(ValueError, match="positive"):
        TissueMask(np.zeros((4, 4)), 0.0)


# --- tile geometry --------------------------------------------------------------------------------


class ShapeReader:
    """A SlideReader that knows only its size: enough to plan with an explicit mask."""

    vendor = "fake"

    def __init__(self, width: int, height: int, mpp: float | None = 0.5) -> None:
        self.path = "fake.svs"
        self.dimensions = (width, height)
        self.level_dimensions = ((width, height),)
        self.level_downsamples = (1.0,)
        self.mpp = mpp

    def thumbnail(self, max_size: int) -> np.ndarray:  # pragma: no cover - mask is always given
        raise AssertionError("thumbnail not expected")

    def close(self) -> None:
        pass


def full_mask(width: int, height: int, value: bool = True) -> TissueMask:
    return TissueMask.for_slide(np.full((max(height // 64, 1), max(width // 64, 1)), value), (width, height))


def assert_exact_cover(plan: TilePlan) -> None:
    cover = np.zeros((plan.slide_height, plan.slide_width), dtype=np.int32)
    for t in plan.tiles:
        assert t.x >= 0 and t.y >= 0 and t.x + t.w <= plan.slide_width and t.y + t.h <= plan.slide_height
        cover[t.y : t.y + t.h, t.x : t.x + t.w] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize(
    ("width", "height", "slide_mpp", "target_mpp", "tile", "step"),
    [
        (2048, 1536, 0.5, 0.5, 512, 512),
        (2100, 1000, 0.25, 0.5, 512, 1024),  # 40x slide, 20x model: level-0 step doubles
        (3000, 2000, 1.0, 0.5, 512, 256),
        (777, 333, 0.5, 0.5, 512, 512),  # smaller than one tile
        (5000, 3001, 0.2527, 0.5, 256, 256 * 0.5 / 0.2527),  # non-integer step
    ],
)
def test_cores_cover_the_slide_exactly_without_overlap(
    width: int, height: int, slide_mpp: float, target_mpp: float, tile: int, step: float
) -> None:
    reader = ShapeReader(width, height, slide_mpp)
    plan = plan_tiles(reader, tile_size=tile, padding=80, target_mpp=target_mpp, mask=full_mask(width, height))
    assert plan.downsample == pytest.approx(target_mpp / slide_mpp)
    assert plan.step == pytest.approx(step)
    cols, rows = int(np.ceil(width / step)), int(np.ceil(height / step))
    assert plan.total == rows * cols
    assert_exact_cover(plan)
    first = plan.tiles[0]
    assert (first.x, first.y, first.row, first.col, first.index) == (0, 0, 0, 0, 0)
    if width > step:
        assert first.w == round(step)
    last = plan.tiles[-1]
    assert (last.row, last.col) == (rows - 1, cols - 1)
    assert last.x + last.w == width and last.y + last.h == height  # clipped to the slide
    assert [t.index for t in plan.tiles] == list(range(plan.total))
    assert plan.padding_level0 == int(np.ceil(80 * target_mpp / slide_mpp - 1e-9))
    x, y, w, h = plan.padded_region(first)
    assert (x, y) == (-plan.padding_level0, -plan.padding_level0)
    assert (w, h) == (first.w + 2 * plan.padding_level0, first.h + 2 * plan.padding_level0)


def test_slide_mpp_override_wins_over_the_slide() -> None:
    reader = ShapeReader(4096, 4096, mpp=0.5)
    plan = plan_tiles(reader, tile_size=512, target_mpp=0.5, mpp=0.25, mask=full_mask(4096, 4096))
    assert plan.slide_mpp == 0.25
    assert plan.step == 1024
    assert plan.total == 16


def test_missing_mpp_names_the_option_to_set() -> None:
    with pytest.raises(SlideError, match="--target-mpp"):
        plan_tiles(ShapeReader(1000, 1000, mpp=None), mask=full_mask(1000, 1000))


@pytest.mark.parametrize(
    "kwargs",
    [{"tile_size": 0}, {"padding": -1}, {"target_mpp": 0}, {"min_tissue": 1.0}, {"min_tissue": -0.1}],
)
def test_invalid_plan_params_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        plan_tiles(ShapeReader(1000, 1000), mask=full_mask(1000, 1000), **kwargs)  # type: ignore[arg-type]


def test_min_tissue_threshold_is_strict_on_the_padded_region() -> None:
    # 4 x 1 tiles of 100 px, padding 0, mask at 1 px per level-0 px.
    m = np.zeros((100, 400), dtype=bool)
    m[:, 100:101] = True  # tile 1: 1 %
    m[:50, 200:300] = True  # tile 2: 50 %
    m[:, 300:400] = True  # tile 3: 100 %
    reader = ShapeReader(400, 100)
    mask = TissueMask(m, 1.0)

    def states(min_tissue: float, padding: int = 0) -> list[str]:
        plan = plan_tiles(reader, tile_size=100, padding=padding, min_tissue=min_tissue, mask=mask)
        return [t.state for t in plan.tiles]

    assert states(0.0) == ["skipped", "pending", "pending", "pending"]
    assert states(0.01) == ["skipped", "skipped", "pending", "pending"]
    assert states(0.5) == ["skipped", "skipped", "skipped", "pending"]
    assert states(0.49) == ["skipped", "skipped", "pending", "pending"]
    # With padding, tissue just outside a core keeps it: tile 0's padded region reaches x=100.
    assert states(0.0, padding=1) == ["pending", "pending", "pending", "pending"]
    plan = plan_tiles(reader, tile_size=100, padding=0, mask=mask)
    assert [t.tissue for t in plan.tiles] == pytest.approx([0.0, 0.01, 0.5, 1.0])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_no_tile_containing_a_nucleus_is_skipped(seed: int) -> None:
    img, _, centres = he_slide(1600, 2400, seed=seed, blobs=4, nuclei_per_blob=60)
    plan = plan_tiles(ArrayReader(img, mpp=0.25, levels=3), tile_size=128, padding=16, target_mpp=0.5)
    assert plan.skipped > 0  # the test must mean something: there is glass to skip
    by_cell = {(t.row, t.col): t for t in plan.tiles}
    step = plan.step
    for x, y in centres:
        tile = by_cell[(int(y // step), int(x // step))]
        assert tile.x <= x < tile.x + tile.w and tile.y <= y < tile.y + tile.h
        assert tile.state == "pending", f"nucleus at {(x, y)} in skipped tile {tile}"


# --- tiles.json and tissue.png -------------------------------------------------------------------


def test_tiles_json_round_trip(tmp_path) -> None:  # noqa: ANN001
    img, _, _ = he_slide(1000, 1300, seed=8)
    plan = plan_tiles(ArrayReader(img, mpp=0.5, path="/slides/a.svs"), tile_size=256, padding=80)
    doc = plan.to_json()
    assert doc["tile_size"] == 256 and doc["padding"] == 80 and doc["mpp"] == 0.5
    assert (doc["total"], doc["tissue"], doc["skipped"]) == (plan.total, plan.tissue, plan.skipped)
    assert doc["total"] == doc["tissue"] + doc["skipped"]
    assert set(doc["tiles"][0]) >= {"x", "y", "w", "h", "state", "index", "row", "col", "tissue"}
    assert TilePlan.from_json(json.loads(json.dumps(doc))) == plan

    path = plan.write_json(tmp_path / "tiles.json")
    assert TilePlan.read_json(path) == plan
    assert [p.name for p in tmp_path.iterdir()] == ["tiles.json"]  # no temp file left behind
    with pytest.raises(ValueError, match="tile plan"):
        TilePlan.from_json({"tiles": []})


def test_tile_rejects_unknown_state_and_empty_core() -> None:
    with pytest.raises(ValueError, match="state"):
        Tile(0, 0, 0, 0, 0, 10, 10, 0.0, "weird")
    with pytest.raises(ValueError, match="empty"):
        Tile(0, 0, 0, 0, 0, 0, 10, 0.0, "pending")


def test_render_tissue_png_writes_the_thumbnail_with_overlay(tmp_path) -> None:  # noqa: ANN001
    img, _, _ = he_slide(1000, 1300, seed=9)
    reader = ArrayReader(img, mpp=0.5)
    thumb = reader.thumbnail(650)
    mask = TissueMask.for_slide(detect_tissue(thumb), reader.dimensions)
    plan = plan_tiles(reader, tile_size=256, padding=40, mask=mask)
    path = render_tissue_png(thumb, mask, plan, tmp_path / "tissue.png")
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert png.size == (thumb.shape[1], thumb.shape[0])
        out = np.asarray(png.convert("RGB"))
    assert not np.array_equal(out, thumb)  # tint and grid were drawn


# --- pinned masks and plans ---------------------------------------------------------------------
# Exact masks and tile plans of deterministic inputs, recorded when detection moved to scikit-image
# (identical to the hand-written Otsu/HSV/morphology it replaced). A change here changes every plan.


def mask_digest(mask: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()[:16]


def plan_states(plan: TilePlan) -> str:
    return "".join("#" if tile.state == "pending" else "." for tile in plan.tiles)


PINNED_DEMO_PLANS = [
    # (write_demo_slide kwargs, mask shape, mask px, mask digest, tile states row by row)
    (
        {"width": 4096, "height": 3072, "mpp": 0.5, "seed": 1},
        (768, 1024),
        259459,
        "ce853e68f65f93c9",
        ".######.################.#######....####........",
    ),
    ({"width": 3072, "height": 4096, "mpp": 0.25, "seed": 2}, (1024, 768), 287719, "2e718cc611d4a103", "#" * 12),
    (
        {"width": 4096, "height": 2048, "mpp": 0.5, "seed": 3, "tissue_fraction": 0.1},
        (512, 1024),
        57692,
        "1535a6615cd7a651",
        ".....##....#####..#####...####..",
    ),
]


@pytest.mark.parametrize(
    ("spec", "shape", "pixels", "digest", "states"), PINNED_DEMO_PLANS, ids=["seed1", "seed2-0.25mpp", "seed3-sparse"]
)
def test_demo_slide_mask_and_plan_are_pinned(
    tmp_path: Path, spec: dict, shape: tuple[int, int], pixels: int, digest: str, states: str
) -> None:
    from wsidesk.core.slide.demo import write_demo_slide

    path = tmp_path / "demo.svs"
    write_demo_slide(path, **spec)
    reader = open_slide(path)
    try:
        thumbnail = reader.thumbnail(mask_thumbnail_size(reader.dimensions, spec["mpp"]))
        mask = detect_tissue(thumbnail)
        plan = plan_tiles(
            reader, tile_size=512, padding=80, target_mpp=0.5, mask=TissueMask.for_slide(mask, reader.dimensions)
        )
    finally:
        reader.close()
    assert mask.shape == shape
    assert int(mask.sum()) == pixels
    assert mask_digest(mask) == digest
    assert plan_states(plan) == states


def test_mask_with_pen_strokes_is_pinned() -> None:
    img, tissue, _ = he_slide(600, 800, seed=11)
    work = img.astype(np.float64)
    stroke(work, [(20, 30), (400, 500), (780, 60)], (40, 140, 70), 9)  # green
    stroke(work, [(30, 580), (770, 20)], (40, 70, 170), 12)  # blue
    stroke(work, [(60, 40), (90, 560)], (25, 25, 30), 7)  # black
    mask = detect_tissue(finish(work))
    assert int(tissue.sum()) == 63566
    assert int(mask.sum()) == 63196
    assert mask_digest(mask) == "e8eae07829ad7604"


# --- performance ---------------------------------------------------------------------------------


def test_planning_a_big_slide_is_fast() -> None:
    width, height = 100_000, 80_000
    rng = np.random.default_rng(10)
    m = np.zeros((1638, 2048), dtype=bool)
    for _ in range(12):
        rr, cc = draw.ellipse(rng.uniform(0, 1638), rng.uniform(0, 2048), 250, 300, shape=m.shape)
        m[rr, cc] = True
    mask = TissueMask.for_slide(m, (width, height))
    start = time.perf_counter()
    plan = plan_tiles(ShapeReader(width, height, mpp=0.5), tile_size=512, padding=80, mask=mask)
    elapsed = time.perf_counter() - start
    assert plan.total == 196 * 157
    assert 0 < plan.tissue < plan.total
    assert elapsed < 2.0, f"planning {plan.total} tiles took {elapsed:.2f} s"
