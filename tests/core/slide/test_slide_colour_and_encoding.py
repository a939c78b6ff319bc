"""Slides the models cannot use are named for what they are: grayscale, or an unsupported encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from wsidesk.core.errors import SlideError
from wsidesk.core.slide import OpenSlideReader
from wsidesk.core.slide.protocol import looks_grayscale


def write_float_tiff(path: Path) -> Path:
    """A valid tiled TIFF with 32-bit float samples: OpenSlide opens it and cannot decode its pixels."""
    data = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32)
    tifffile.imwrite(path, data, tile=(256, 256), metadata=None, photometric="rgb")
    return path


def write_gray_tiff(path: Path) -> Path:
    data = np.random.default_rng(0).integers(0, 255, (512, 512), dtype=np.uint8)
    tifffile.imwrite(path, data, tile=(256, 256), metadata=None)
    return path


def test_a_valid_tiff_in_an_unsupported_encoding_is_called_unsupported_not_damaged(tmp_path: Path) -> None:
    reader = OpenSlideReader(write_float_tiff(tmp_path / "float.tif"))
    try:
        with pytest.raises(SlideError) as info:
            reader.thumbnail(64)
        assert "unsupported" in str(info.value)
        assert "damaged" not in str(info.value)
        with pytest.raises(SlideError) as again:
            reader.read_region(0, 0, 0, 8, 8)
        assert "not supported" in str(again.value) and "damaged" not in str(again.value)
    finally:
        reader.close()


def test_a_grayscale_slide_reads_as_rgb_but_looks_grayscale(tmp_path: Path) -> None:
    with OpenSlideReader(write_gray_tiff(tmp_path / "gray.tif")) as reader:
        thumb = reader.thumbnail(128)
    assert thumb.shape[2] == 3
    assert looks_grayscale(thumb)


def test_stained_rgb_does_not_look_grayscale(demo_slide) -> None:
    with OpenSlideReader(demo_slide.path) as reader:
        assert not looks_grayscale(reader.thumbnail(128))
    assert looks_grayscale(np.zeros((4, 4), np.uint8))
    assert looks_grayscale(np.full((4, 4, 3), 200, np.uint8))
