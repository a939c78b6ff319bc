"""Slide and job fingerprints: what changes them and what does not."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from wsidesk.core.cache.fingerprint import NotCacheable, fingerprint_job
from wsidesk.core.segment.models import ModelStore
from wsidesk.core.slide.fingerprint import slide_fingerprint


def write_tiff(path: Path, image: np.ndarray) -> Path:
    tifffile.imwrite(path, image, tile=(128, 128), compression="zlib", photometric="rgb", metadata=None)
    return path


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((1024, 1024, 3)) * 40 + 180).astype(np.uint8)


def test_slide_fingerprint_follows_content_not_path(tmp_path, image):
    a = write_tiff(tmp_path / "a.tif", image)
    moved = tmp_path / "sub" / "renamed.tif"
    moved.parent.mkdir()
    shutil.copy(a, moved)
    fp = slide_fingerprint(a)
    assert fp.kind == "tiff" and fp.size == a.stat().st_size
    assert slide_fingerprint(moved).digest == fp.digest


def test_one_changed_tile_anywhere_changes_the_slide_fingerprint(tmp_path, image):
    base = slide_fingerprint(write_tiff(tmp_path / "a.tif", image)).digest
    for row, col in ((3, 5), (6, 2), (0, 7)):  # 8x8 tiles; tiles the sampler does not read included
        edited = image.copy()
        edited[row * 128 + 10 : row * 128 + 20, col * 128 + 10 : col * 128 + 20] = 0
        path = write_tiff(tmp_path / f"edit{row}{col}.tif", edited)
        assert slide_fingerprint(path).digest != base, (row, col)


def test_non_tiff_files_are_fingerprinted_by_sampled_bytes(tmp_path):
    path = tmp_path / "slide.bin"
    data = bytearray(np.random.default_rng(1).integers(0, 255, 3_000_000, dtype=np.uint8).tobytes())
    path.write_bytes(data)
    fp = slide_fingerprint(path)
    assert fp.kind == "bytes"
    data[-10] ^= 0xFF  # the tail is always read
    path.write_bytes(data)
    assert slide_fingerprint(path).digest != fp.digest


def _segment_fp(image: Path, params: dict, **kw) -> str:
    return fingerprint_job(
        job_type="segment", params=params, image=image, base_dir=image.parent, models_dir=None, upstream={}, **kw
    ).digest


def test_job_fingerprint_parts(tmp_path, image):
    slide = write_tiff(tmp_path / "s.tif", image)
    model = ModelStore(tmp_path / "models").resolve("wsidesk_test_nuclei")
    mine = tmp_path / "mine" / "instanseg.pt"
    mine.parent.mkdir()
    shutil.copy(model, mine)
    base = _segment_fp(slide, {"model": "wsidesk_test_nuclei"})
    # the same bytes under another name or path: same model
    assert _segment_fp(slide, {"model": str(mine)}) == base
    # defaults written out, and the cache switch, change nothing
    assert _segment_fp(slide, {"model": "wsidesk_test_nuclei", "min_tissue": 0.0, "cache": False}) == base
    # any param that shapes results does
    assert _segment_fp(slide, {"model": "wsidesk_test_nuclei", "min_cell_area": 5.0}) != base
    # another model (one byte differs) misses
    data = bytearray(mine.read_bytes())
    data[-1] ^= 0xFF
    mine.write_bytes(data)
    assert _segment_fp(slide, {"model": str(mine)}) != base
    # a file-valued param enters by its content, not its path
    roi = tmp_path / "roi.geojson"
    roi.write_text('{"type": "FeatureCollection", "features": []}')
    with_roi = fingerprint_job(
        job_type="tissue", params={"roi": "roi.geojson"}, image=slide, base_dir=tmp_path, models_dir=None, upstream={}
    )
    assert with_roi.parts["files"]["roi"]["path"] == str(roi)
    roi.write_text('{"type": "FeatureCollection", "features": [] }')
    again = fingerprint_job(
        job_type="tissue", params={"roi": "roi.geojson"}, image=slide, base_dir=tmp_path, models_dir=None, upstream={}
    )
    assert again.digest != with_roi.digest


def test_upstream_fingerprints_enter_and_missing_ones_refuse(tmp_path):
    def export(upstream):
        return fingerprint_job(
            job_type="export", params={}, image=None, base_dir=tmp_path, models_dir=None, upstream=upstream
        )

    assert export({"a": "1" * 64}).digest != export({"a": "2" * 64}).digest
    with pytest.raises(NotCacheable, match="without a complete fingerprinted result: a"):
        export({"a": None})


def test_roi_naming_saved_annotations_enters_by_their_content(tmp_path, image):
    from wsidesk.core.annotations.store import AnnotationStore

    slide = write_tiff(tmp_path / "s.tif", image)
    profile_dir = tmp_path / "profiles" / "alice"
    saved = AnnotationStore(profile_dir).path_for(slide)
    saved.parent.mkdir(parents=True)
    saved.write_text('{"type": "FeatureCollection", "features": []}')

    def fp() -> str:
        return fingerprint_job(
            job_type="tissue",
            params={"roi": "Tumor"},
            image=slide,
            base_dir=tmp_path,
            models_dir=None,
            upstream={},
            profile_dir=profile_dir,
        ).digest

    before = fp()
    saved.write_text('{"type": "FeatureCollection", "features": [ ]}')  # the annotation was edited
    assert fp() != before
