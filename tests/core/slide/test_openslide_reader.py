from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from wsidesk.core.errors import SlideError
from wsidesk.core.slide import (
    OpenSlideReader,
    SlideReader,
    best_level_for_downsample,
    open_slide,
    require_mpp,
)
from wsidesk.core.slide.demo import load_truth, write_demo_slide


def _gradient(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx % 251, yy % 241, (xx + yy) % 239], axis=-1).astype(np.uint8)


def _write_generic_tiff(path: Path, image: np.ndarray, *, mpp: float | None) -> None:
    """A plain tiled TIFF pyramid (no vendor metadata); reduced levels marked subfiletype=1."""
    resolution = {}
    if mpp is not None:
        resolution = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tif:
        level = image
        for k in range(3):
            tif.write(
                level,
                tile=(128, 128),
                photometric="rgb",
                compression="zlib",
                metadata=None,
                subfiletype=1 if k else 0,
                **(resolution if k == 0 else {}),
            )
            level = level[::2, ::2]


@pytest.fixture(scope="module")
def small_aperio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "small.svs"
    write_demo_slide(out, width=1024, height=768, seed=2)
    return out


# -- happy paths -----------------------------------------------------------------------------------
def test_demo_slide_opens_as_aperio_with_all_levels_and_mpp(demo_slide) -> None:
    with OpenSlideReader(demo_slide.path) as reader:
        assert isinstance(reader, SlideReader)
        assert reader.path == str(demo_slide.path)
        assert reader.vendor == "aperio"
        assert reader.dimensions == (4096, 3072)
        assert reader.level_dimensions == ((4096, 3072), (1024, 768))
        assert reader.level_downsamples == pytest.approx((1.0, 4.0))
        assert all(isinstance(d, float) for d in reader.level_downsamples)
        assert reader.mpp == pytest.approx(0.5)
        assert best_level_for_downsample(reader, 5.0) == 1
        assert best_level_for_downsample(reader, 2.0) == 0


def test_open_slide_returns_an_openslide_reader_with_mpp_override(demo_slide) -> None:
    reader = open_slide(str(demo_slide.path), mpp=0.25)
    try:
        assert isinstance(reader, OpenSlideReader)
        assert reader.mpp == 0.25
        assert require_mpp(reader) == 0.25
    finally:
        reader.close()


def test_read_region_is_rgb_uint8_and_shows_a_nucleus(demo_slide) -> None:
    truth = load_truth(demo_slide.path)
    x, y = truth.nuclei[0, :2]
    with OpenSlideReader(demo_slide.path) as reader:
        region = reader.read_region(int(x) - 32, int(y) - 16, 0, 64, 32)
    assert region.shape == (32, 64, 3)
    assert region.dtype == np.uint8
    assert region[16, 32].mean() < 150  # the nucleus centre is dark


def test_read_region_outside_the_slide_is_white(demo_slide) -> None:
    with OpenSlideReader(demo_slide.path) as reader:
        outside = reader.read_region(-1000, -1000, 0, 300, 200)
        assert (outside == 255).all()
        beyond = reader.read_region(4096 + 10, 100, 1, 50, 40)
        assert (beyond == 255).all()
        # straddling the right edge: the part past the edge is white, the rest is the slide
        edge = reader.read_region(4096 - 64, 1000, 0, 128, 64)
        assert (edge[:, 64:] == 255).all()
        assert (edge[:, :64] < 255).any()


def test_reduced_level_matches_downsampled_level0(demo_slide) -> None:
    with OpenSlideReader(demo_slide.path) as reader:
        full = reader.read_region(1024, 1024, 0, 1024, 1024).astype(float)
        low = reader.read_region(1024, 1024, 1, 256, 256).astype(float)
    down = full.reshape(256, 4, 256, 4, 3).mean(axis=(1, 3))
    assert np.abs(down - low).mean() < 6


def test_thumbnail_fits_max_size_and_keeps_aspect(demo_slide) -> None:
    with OpenSlideReader(demo_slide.path) as reader:
        thumb = reader.thumbnail(256)
    assert thumb.shape == (192, 256, 3)
    assert thumb.dtype == np.uint8
    assert (thumb[0, 0] > 220).all()  # glass margin


def test_concurrent_reads_from_threads_agree(demo_slide) -> None:
    with OpenSlideReader(demo_slide.path) as reader:
        spots = [(x, y) for x in range(0, 4096, 700) for y in range(0, 3072, 700)]
        expected = [reader.read_region(x, y, 0, 200, 200) for x, y in spots]
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda p: reader.read_region(p[0], p[1], 0, 200, 200), spots))
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))


def test_generic_tiled_tiff_with_reduced_levels(tmp_path: Path) -> None:
    image = _gradient(1024, 768)
    path = tmp_path / "generic.tif"
    _write_generic_tiff(path, image, mpp=0.5)
    with OpenSlideReader(path) as reader:
        assert reader.vendor == "generic-tiff"
        assert reader.level_dimensions == ((1024, 768), (512, 384), (256, 192))
        assert reader.level_downsamples == pytest.approx((1.0, 2.0, 4.0))
        assert reader.mpp == pytest.approx(0.5)
        np.testing.assert_array_equal(reader.read_region(100, 50, 0, 300, 200), image[50:250, 100:400])
        np.testing.assert_array_equal(reader.read_region(200, 100, 1, 64, 32), image[::2, ::2][50:82, 100:164])
        assert reader.thumbnail(128).shape == (96, 128, 3)


def test_missing_mpp_is_none_and_require_mpp_explains(tmp_path: Path) -> None:
    path = tmp_path / "nompp.tif"
    _write_generic_tiff(path, _gradient(512, 512), mpp=None)
    with OpenSlideReader(path) as reader:
        assert reader.mpp is None
        with pytest.raises(SlideError, match="pixel size") as info:
            require_mpp(reader)
        assert str(path) in str(info.value)
        assert require_mpp(reader, 0.3) == 0.3
    with OpenSlideReader(path, mpp=0.3) as reader:
        assert reader.mpp == 0.3


def test_real_cmu_small_region_opens(shared_data: Path) -> None:
    path = shared_data / "CMU-1-Small-Region.svs"
    if not path.exists():
        pytest.skip(f"{path} not present")
    with open_slide(path) as reader:
        assert reader.vendor == "aperio"
        assert reader.dimensions == (2220, 2967)
        assert reader.mpp == pytest.approx(0.499, abs=1e-3)
        region = reader.read_region(1000, 1000, 0, 256, 256)
        assert region.shape == (256, 256, 3)
        assert reader.thumbnail(512).shape[0] == 512


# -- errors ----------------------------------------------------------------------------------------
def _assert_slide_error(path: Path, match: str | None = None, **kwargs) -> SlideError:
    with pytest.raises(SlideError) as info:
        OpenSlideReader(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    if match:
        assert match in message
    return info.value


def test_nonexistent_path_raises_slide_error(tmp_path: Path) -> None:
    _assert_slide_error(tmp_path / "nope.svs", "no such file")


def test_directory_raises_slide_error(tmp_path: Path) -> None:
    _assert_slide_error(tmp_path, "directory")


def test_text_file_named_svs_raises_slide_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.svs"
    path.write_text("this is not a slide\n" * 50)
    err = _assert_slide_error(path, "not a slide format")
    assert err.__cause__ is not None


def test_truncated_slide_raises_slide_error(tmp_path: Path, small_aperio: Path) -> None:
    path = tmp_path / "truncated.svs"
    path.write_bytes(small_aperio.read_bytes()[:2048])
    _assert_slide_error(path)


def test_invalid_mpp_override_raises_slide_error(small_aperio: Path) -> None:
    _assert_slide_error(small_aperio, "positive", mpp=0.0)


def test_corrupt_tile_fails_on_read_with_slide_error(tmp_path: Path, small_aperio: Path) -> None:
    path = tmp_path / "corrupt.svs"
    shutil.copyfile(small_aperio, path)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[5], page.databytecounts[5]  # tile (row 1, col 1)
        tile_w = page.tilewidth
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\x00" * count)
    reader = OpenSlideReader(path)  # the header is intact: opening works
    try:
        assert reader.read_region(0, 0, 0, 64, 64).shape == (64, 64, 3)
        with pytest.raises(SlideError) as info:
            reader.read_region(tile_w, tile_w, 0, 64, 64)
        assert str(path) in str(info.value)
        assert "damaged" in str(info.value)
        assert info.value.__cause__ is not None
        # OpenSlide handles are dead after an error: say so instead of a confusing repeat
        with pytest.raises(SlideError, match="earlier read failed"):
            reader.read_region(0, 0, 0, 64, 64)
    finally:
        reader.close()


def test_closed_reader_raises_slide_error(small_aperio: Path) -> None:
    reader = OpenSlideReader(small_aperio)
    reader.close()
    reader.close()  # idempotent
    for call in (lambda: reader.read_region(0, 0, 0, 8, 8), lambda: reader.thumbnail(64)):
        with pytest.raises(SlideError, match="closed") as info:
            call()
        assert str(small_aperio) in str(info.value)


def test_bad_level_or_size_raises_slide_error(small_aperio: Path) -> None:
    with OpenSlideReader(small_aperio) as reader:
        with pytest.raises(SlideError, match="level"):
            reader.read_region(0, 0, 5, 8, 8)
        with pytest.raises(SlideError, match="positive"):
            reader.read_region(0, 0, 0, 0, 8)
