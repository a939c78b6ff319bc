"""Viewing controls: brightness/contrast/gamma and stain views, per tile, cached by display settings."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from wsidesk.core.slide.reader import ArrayReader
from wsidesk.gui.viewer.display import DisplaySettings, apply_display, stain_only
from wsidesk.gui.viewer.display_controls import DisplayControls
from wsidesk.gui.viewer.tile_cache import TileKey
from wsidesk.gui.viewer.tile_loader import qimage_to_rgb, read_tile


def _tile() -> np.ndarray:
    """A small H&E-like tile: pink stroma, purple nuclei, white glass, and a ramp."""
    rng = np.random.default_rng(3)
    rgb = np.empty((64, 64, 3), np.uint8)
    rgb[:] = (235, 160, 200)  # eosin pink
    rgb[8:24, 8:24] = (90, 60, 150)  # hematoxylin purple
    rgb[40:, 40:] = 255  # glass
    rgb[:4] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None]
    return np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)


def test_identity_leaves_the_tile_alone():
    rgb = _tile()
    assert apply_display(rgb, DisplaySettings()) is rgb


def test_brightness_contrast_and_gamma_change_pixels_as_expected():
    rgb = _tile()
    brighter = apply_display(rgb, DisplaySettings(brightness=0.2)).astype(int)
    assert brighter.mean() > rgb.mean() + 20
    assert brighter[rgb == 0].min() == 51  # 0 + 0.2 * 255
    ramp = rgb[0, :, 0].astype(float) / 255
    contrasty = apply_display(rgb, DisplaySettings(contrast=2.0)).astype(int)
    expected = np.round(np.clip((ramp - 0.5) * 2 + 0.5, 0, 1) * 255)  # steeper around mid-grey
    np.testing.assert_allclose(contrasty[0, :, 0], expected, atol=1)
    gamma = apply_display(rgb, DisplaySettings(gamma=2.0)).astype(int)
    np.testing.assert_allclose(gamma[0, :, 0], np.round(np.sqrt(ramp) * 255), atol=1)
    assert (gamma[rgb == 255] == 255).all() and (gamma[rgb == 0] == 0).all()


@pytest.mark.parametrize(("stain", "index"), [("hematoxylin", 0), ("eosin", 1), ("dab", 2)])
def test_stain_views_match_scikit_image_deconvolution(stain, index):
    from skimage.color import hed2rgb, rgb2hed

    rgb = _tile()
    hed = rgb2hed(rgb)
    only = np.zeros_like(hed)
    only[..., index] = hed[..., index]
    expected = np.round(hed2rgb(only) * 255)
    got = apply_display(rgb, DisplaySettings(stain=stain)).astype(float)
    assert np.abs(got - expected).max() <= 1


def test_hematoxylin_view_keeps_nuclei_and_drops_eosin():
    h = stain_only(_tile(), "hematoxylin").astype(int)
    nucleus, stroma = h[16, 16], h[30, 30]
    assert nucleus.sum() < stroma.sum() - 100  # nuclei stay dark blue, pink stroma goes pale
    assert (h[50, 50] >= 254).all()  # glass stays white


def test_bad_display_settings_are_refused():
    with pytest.raises(ValueError, match="unknown stain view"):
        DisplaySettings(stain="trichrome")
    with pytest.raises(ValueError, match="gamma"):
        DisplaySettings(gamma=0)


def test_tiles_are_read_and_cached_per_display_setting():
    reader = ArrayReader(np.tile(_tile(), (4, 4, 1)), path="synthetic")
    plain = TileKey("synthetic", 0, 0, 0)
    stained = TileKey("synthetic", 0, 0, 0, DisplaySettings(stain="eosin"))
    assert plain != stained and len({plain, stained}) == 2
    a, b = read_tile(reader, plain, 128), read_tile(reader, stained, 128)
    assert a.pixelColor(16, 16) != b.pixelColor(16, 16)
    # From the tile as scanned (cached) instead of decoding it again: the same pixels.
    assert read_tile(reader, stained, 128, plain=a) == b
    assert qimage_to_rgb(a).tobytes() == reader.read_region(0, 0, 0, 128, 128).tobytes()


def test_slide_view_repaints_visible_tiles_in_the_chosen_stain_view(qtbot, view):
    reader = ArrayReader(np.tile(_tile(), (16, 16, 1)), path="synthetic-view")
    view.set_reader(reader)
    view.zoom_to_fit()
    view.set_scale_factor(1.0)
    view.center_on(512, 512)
    qtbot.waitUntil(lambda: view.loader.pending_count == 0 and len(view.cache) > 0, timeout=5000)
    point = view.map_from_level0(QPointF(16 + 64 * 8, 16 + 64 * 8)).toPoint()  # inside a nucleus
    before = view.grab().toImage().pixelColor(point)
    view.set_display(DisplaySettings(stain="eosin"))
    keys = view.visible_tile_keys()
    assert keys and all(k.display.stain == "eosin" for k in keys)
    qtbot.waitUntil(lambda: all(k in view.cache for k in keys), timeout=5000)
    after = view.grab().toImage().pixelColor(point)
    assert (after.red(), after.green(), after.blue()) != (before.red(), before.green(), before.blue())
    assert after.blue() > before.blue()  # a nucleus is pale in the eosin-only view
    view.set_display(DisplaySettings())  # back to RGB: served from the cache, no new reads
    reads = view.loader.stats.reads
    view.grab()
    assert view.loader.stats.reads == reads


def test_display_controls_emit_settings(qtbot):
    controls = DisplayControls()
    qtbot.addWidget(controls)
    with qtbot.waitSignal(controls.display_changed, timeout=1000) as signal:
        controls.stain.setCurrentIndex(controls.stain.findData("hematoxylin"))
    assert signal.args[0] == DisplaySettings(stain="hematoxylin")
    with qtbot.waitSignal(controls.display_changed, timeout=1000) as signal:
        controls.sliders["gamma"].setValue(150)
    assert signal.args[0].gamma == 1.5 and signal.args[0].stain == "hematoxylin"
    with qtbot.waitSignal(controls.display_changed, timeout=1000) as signal:
        controls.reset()
    assert signal.args[0] == DisplaySettings()
