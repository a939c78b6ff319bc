"""Tiles at the slide's border: outside the slide a tile mirrors the inside instead of showing white."""

from __future__ import annotations

import numpy as np
import pytest

from wsidesk.core.segment.reading import mirror_outside, read_geometry, read_padded_tile
from wsidesk.core.slide.reader import ArrayReader
from wsidesk.core.tiling.grid import plan_tiles


def ramp(h: int, w: int) -> np.ndarray:
    """An image whose every pixel differs from its neighbours, so a wrong mirror shows."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 7 + y) % 251, (y * 5 + x) % 241, (x * y) % 239], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    ("origin", "rows", "cols"),
    [
        ((-10.0, -6.0), (3, 20), (5, 20)),  # top-left corner: 5 columns and 3 rows outside at scale 2
        ((80.0, 90.0), (0, 5), (0, 10)),  # bottom-right corner of a 100 x 100 slide
        ((40.0, 40.0), (0, 20), (0, 20)),  # inside: unchanged
    ],
)
def test_pixels_outside_the_slide_mirror_the_inside(
    origin: tuple[float, float], rows: tuple[int, int], cols: tuple[int, int]
) -> None:
    tile = ramp(20, 20)
    out = mirror_outside(tile, origin, 2.0, (100, 100))
    (r0, r1), (c0, c1) = rows, cols
    assert out.shape == tile.shape and out.dtype == tile.dtype
    np.testing.assert_array_equal(out[r0:r1, c0:c1], tile[r0:r1, c0:c1])
    expected = np.pad(tile[r0:r1, c0:c1], ((r0, 20 - r1), (c0, 20 - c1), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(out, expected)


def test_a_pixel_belongs_to_the_slide_when_its_centre_does() -> None:
    tile = ramp(8, 8)
    # scale 1.5: column j's centre is at x = -3 + 1.5 (j + 0.5); columns 0 and 1 (centres -2.25, -0.75) are out.
    out = mirror_outside(tile, (-3.0, 0.0), 1.5, (1000, 1000))
    np.testing.assert_array_equal(out[:, 2:], tile[:, 2:])
    np.testing.assert_array_equal(out[:, 0], tile[:, 4])
    np.testing.assert_array_equal(out[:, 1], tile[:, 3])


def test_a_sliver_of_slide_wider_padding_is_mirrored_over_and_over() -> None:
    tile = ramp(4, 12)
    out = mirror_outside(tile, (0.0, 0.0), 1.0, (3, 4))  # 3 columns inside, 9 outside
    np.testing.assert_array_equal(out[:, :3], tile[:, :3])
    np.testing.assert_array_equal(out[0, :, 0], tile[0, [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1], 0])


def test_border_tiles_of_a_small_image_carry_no_white_band() -> None:
    img = np.full((96, 96, 3), (120, 60, 140), dtype=np.uint8)  # dark tissue up to the image edge
    reader = ArrayReader(img, mpp=0.25)
    plan = plan_tiles(reader, tile_size=32, padding=16, target_mpp=0.5)
    geometry = read_geometry(reader, plan)
    for tile in plan.tiles:
        rgb, _, _ = read_padded_tile(reader, plan, tile, geometry)
        assert rgb.shape == (64, 64, 3)
        assert (rgb == (120, 60, 140)).all(), f"tile {tile.index} shows the reader's white fill"
