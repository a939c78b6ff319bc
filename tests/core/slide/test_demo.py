from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from wsidesk.core.errors import SlideError
from wsidesk.core.slide import OpenSlideReader, load_truth, write_demo_slide


def test_demo_slide_is_an_aperio_pyramid_with_thumbnail(demo_slide) -> None:
    import openslide

    slide = openslide.OpenSlide(str(demo_slide.path))
    try:
        assert slide.properties["openslide.vendor"] == "aperio"
        assert slide.level_count >= 2
        assert slide.dimensions == (demo_slide.width, demo_slide.height) == (4096, 3072)
        assert slide.level_dimensions == demo_slide.level_dimensions
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        assert slide.properties["openslide.objective-power"] == "20"
        assert "thumbnail" in slide.associated_images
    finally:
        slide.close()


def test_demo_slide_level_pages_are_tiled_jpeg(demo_slide) -> None:
    with tifffile.TiffFile(demo_slide.path) as tif:
        pages = list(tif.pages)
        assert pages[0].description.startswith("Aperio Image Library")
        assert pages[0].is_tiled and pages[0].compression == 7  # JPEG
        assert pages[0].tilewidth == 256
        assert not pages[1].is_tiled  # stripped thumbnail as the second page
        assert all(p.is_tiled for p in pages[2:])


def test_truth_nuclei_lie_inside_bounds_and_tissue(demo_slide) -> None:
    truth = load_truth(demo_slide.path)
    n = truth.nuclei
    assert len(n) == demo_slide.n_nuclei > 500
    x, y, rx, ry = n[:, 0], n[:, 1], n[:, 2], n[:, 3]
    assert (x - rx >= 0).all() and (x + rx < truth.width).all()
    assert (y - rx >= 0).all() and (y + rx < truth.height).all()
    assert truth.is_tissue(x, y).all()
    # radii 2.5-6 µm, ry <= rx
    assert (rx * truth.mpp <= 6.01).all() and (ry * truth.mpp >= 2.49).all() and (ry <= rx).all()
    # realistic density: about one nucleus per 400-800 µm² of tissue
    tissue_um2 = truth.tissue_fraction * truth.width * truth.height * truth.mpp**2
    assert 350 < tissue_um2 / len(n) < 900
    assert 0.25 < truth.tissue_fraction < 0.5


def test_truth_nuclei_do_not_overlap(demo_slide) -> None:
    from scipy.spatial import cKDTree

    n = load_truth(demo_slide.path).nuclei
    pairs = cKDTree(n[:, :2]).query_pairs(30.0, output_type="ndarray")
    d = np.hypot(*(n[pairs[:, 0], :2] - n[pairs[:, 1], :2]).T)
    assert (d >= n[pairs[:, 0], 2] + n[pairs[:, 1], 2]).all()


def test_pixels_show_purple_nuclei_on_pink_or_white(demo_slide) -> None:
    truth = load_truth(demo_slide.path)
    rng = np.random.default_rng(0)
    picks = truth.nuclei[rng.choice(len(truth.nuclei), 25, replace=False)]
    with OpenSlideReader(demo_slide.path) as reader:
        for x, y, rx, _ry, _angle in picks:
            half = int(rx) + 8
            patch = reader.read_region(int(x) - half, int(y) - half, 0, 2 * half, 2 * half)
            r, g, b = patch[half - 1 : half + 2, half - 1 : half + 2].reshape(-1, 3).mean(axis=0)
            assert (r + g + b) / 3 < 150, "nucleus centre should be dark"
            assert b > g and r > g, "haematoxylin is purple-blue"
            ring = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]]).astype(float)
            assert np.median(ring.mean(axis=1)) > 150, "pink stroma or glass around a nucleus"
            assert np.median(ring[:, 0] - ring[:, 1]) > 10, "eosin: red above green"


def test_tissue_mask_agrees_with_the_image(demo_slide) -> None:
    truth = load_truth(demo_slide.path)
    ds = truth.tissue_downsample
    with OpenSlideReader(demo_slide.path) as reader:
        low = reader.read_region(0, 0, 1, 1024, 768).astype(float)  # 4x reduced
    step = ds // 4
    samples = low[::step, ::step][: truth.tissue_mask.shape[0], : truth.tissue_mask.shape[1]]
    mask = truth.tissue_mask[: samples.shape[0], : samples.shape[1]]
    not_glass = samples.min(axis=2) < 225
    assert (not_glass == mask).mean() > 0.9
    assert (samples[~mask].min(axis=1) > 200).mean() > 0.95  # glass is near-white
    assert not mask[0].any() and not mask[:, 0].any()  # glass margins


def test_same_seed_gives_the_same_slide_and_truth(tmp_path: Path) -> None:
    a = write_demo_slide(tmp_path / "a.svs", width=1024, height=768, seed=7)
    b = write_demo_slide(tmp_path / "b.svs", width=1024, height=768, seed=7)
    c = write_demo_slide(tmp_path / "c.svs", width=1024, height=768, seed=8)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert json.loads(a.truth_path.read_text()) == json.loads(b.truth_path.read_text())
    assert not np.array_equal(load_truth(a.path).nuclei, load_truth(c.path).nuclei)


def test_empty_slide_has_no_tissue_and_no_nuclei(tmp_path: Path) -> None:
    demo = write_demo_slide(tmp_path / "empty.svs", width=1024, height=768, seed=3, tissue=False)
    assert demo.n_nuclei == 0
    truth = load_truth(demo.truth_path)
    assert truth.nuclei.shape == (0, 5)
    assert not truth.tissue_mask.any()
    with OpenSlideReader(demo.path) as reader:
        assert reader.vendor == "aperio"
        assert reader.thumbnail(256).min() > 220


def test_truth_json_has_the_documented_keys(demo_slide) -> None:
    data = json.loads(demo_slide.truth_path.read_text())
    assert {"width", "height", "mpp", "seed", "nuclei", "tissue"} <= data.keys()
    assert set(data["nuclei"][0]) == {"x", "y", "rx", "ry", "angle"}
    assert demo_slide.truth_path == demo_slide.path.with_name("demo.svs.truth.json")


def test_nuclei_in_region(demo_slide) -> None:
    truth = load_truth(demo_slide.path)
    x, y = truth.nuclei[10, :2]
    found = truth.nuclei_in(x - 1, y - 1, 2, 2)
    assert any((row == truth.nuclei[10]).all() for row in found)
    assert len(truth.nuclei_in(0, 0, 4096, 3072)) == len(truth.nuclei)


def test_load_truth_of_missing_file_raises_slide_error(tmp_path: Path) -> None:
    with pytest.raises(SlideError, match="truth"):
        load_truth(tmp_path / "none.svs")


@pytest.mark.parametrize("kwargs", [{"width": 8}, {"mpp": 0.0}, {"tile": 100}, {"tissue_fraction": 1.5}])
def test_invalid_arguments_raise_value_error(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        write_demo_slide(tmp_path / "x.svs", **kwargs)


def test_odd_sized_slide_has_ceil_reduced_levels(tmp_path: Path) -> None:
    demo = write_demo_slide(tmp_path / "odd.svs", width=1101, height=903, seed=4)
    with OpenSlideReader(demo.path) as reader:
        assert reader.level_dimensions == ((1101, 903), (276, 226))
        assert (reader.read_region(1101 - 8, 903 - 8, 0, 16, 16)[8:, 8:] == 255).all()
