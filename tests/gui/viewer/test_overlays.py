"""Overlay layers: cells (polygons and density), tile grid states, tissue mask."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QImage

from wsidesk.core.segment.cells import Cell
from wsidesk.core.slide.reader import ArrayReader
from wsidesk.core.tiling.grid import Tile, TilePlan
from wsidesk.core.tiling.tissue import TissueMask
from wsidesk.gui.viewer import CellOverlay, SlideView, TileGridOverlay

W, H = 4096, 3072
GLASS = 235


@pytest.fixture
def view(view):
    """The shown view (conftest) on a blank glass slide."""
    img = np.full((H, W, 3), GLASS, dtype=np.uint8)
    view.set_reader(ArrayReader(img, levels=4, mpp=0.5, path="<glass>"))
    return view


def _cells(n: int, seed: int = 0, radius: float = 5.0) -> list[Cell]:
    rng = np.random.default_rng(seed)
    centres = rng.uniform((20, 20), (W - 20, H - 20), size=(n, 2))
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius
    out = []
    for i, (cx, cy) in enumerate(centres):
        poly = ring + (cx, cy)
        out.append(
            Cell(
                polygon=poly,
                centroid=(float(cx), float(cy)),
                bbox=(cx - radius, cy - radius, cx + radius, cy + radius),
                tile=0,
                id=i + 1,
            )
        )
    return out


def _count_near(image: QImage, rgb: tuple[int, int, int], tol: int = 40) -> int:
    img = image.convertToFormat(QImage.Format.Format_RGB32)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8).reshape(img.height(), img.bytesPerLine())
    px = arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4)[..., 2::-1].astype(int)
    return int((np.abs(px - np.array(rgb)).max(axis=2) <= tol).sum())


def _settle(qtbot, view: SlideView) -> QImage:
    view.cell_overlay.flush()
    qtbot.wait(20)
    return view.grab().toImage()


def test_view_has_named_overlays_that_hide_and_fade(view):
    assert set(view.overlays) == {"tissue", "tiles", "cells"}
    assert view.overlay("cells") is view.cell_overlay
    cells = view.overlay("cells")
    cells.setOpacity(0.5)
    cells.setVisible(False)
    assert cells.opacity() == 0.5 and not cells.isVisible()
    with pytest.raises(KeyError, match="no overlay"):
        view.overlay("nope")


def test_cell_overlay_paints_20k_cells_and_switches_to_density_when_zoomed_out(qtbot, view):
    overlay = view.cell_overlay
    batch = _cells(20_000)
    for i in range(0, len(batch), 2000):  # streamed in batches, as segmentation delivers them
        overlay.add_cells(batch[i : i + 2000])
    assert overlay.cell_count == 20_000
    view.set_scale_factor(1.0)
    view.center_on(2000, 1500)
    shot = _settle(qtbot, view)
    assert overlay.last_paint_mode == "polygons"
    assert _count_near(shot, (0, 230, 255)) > 2000  # the default cyan outlines are on screen
    overlay.set_mode("filled")
    shot = _settle(qtbot, view)
    assert _count_near(shot, (0, 230, 255), tol=120) > 2000

    view.set_scale_factor(view.min_scale())  # cells are ~10 px: < 3 screen px below scale 0.3
    shot = _settle(qtbot, view)
    assert overlay.last_paint_mode == "density"
    centre = shot.pixelColor(shot.width() // 2, shot.height() // 2)
    assert (centre.red(), centre.green(), centre.blue()) != (GLASS, GLASS, GLASS)


def test_density_raster_counts_every_cell_and_updates_incrementally(qtbot):
    overlay = CellOverlay(bucket_size=1024)
    overlay.set_extent(W, H)
    overlay.add_cells(_cells(500, seed=1))
    first = overlay.density_image()
    assert first is not None
    assert (first.width(), first.height()) == (W // overlay.density_bin, H // overlay.density_bin)
    overlay.add_cells(_cells(700, seed=2))
    counts = overlay._counts  # noqa: SLF001
    assert int(counts.sum()) == 1200
    image = overlay.density_image()
    assert image is not None
    rows, cols = np.nonzero(counts)
    assert image.pixelColor(int(cols[0]), int(rows[0])).alpha() > 0
    empty_r, empty_c = np.argwhere(counts == 0)[0]
    assert image.pixelColor(int(empty_c), int(empty_r)).alpha() == 0
    overlay.clear()
    assert overlay.cell_count == 0 and overlay.density_image() is None


def test_cell_overlay_repaints_are_throttled(qtbot):
    overlay = CellOverlay(repaint_interval_ms=100)
    overlay.add_cells(_cells(10))
    assert overlay._timer.isActive()  # noqa: SLF001 - one repaint scheduled
    for seed in range(20):
        overlay.add_cells(_cells(10, seed=seed))
    assert overlay._timer.isActive()  # noqa: SLF001 - still that same one
    qtbot.waitUntil(lambda: not overlay._timer.isActive(), timeout=1000)  # noqa: SLF001


def test_cell_overlay_only_draws_buckets_in_the_exposed_rect():
    overlay = CellOverlay(bucket_size=1024)
    overlay.add_cells(_cells(2000))
    keys = overlay.bucket_keys_in(QRectF(0, 0, 900, 900))
    assert (0, 0) in keys
    assert all(k[0] <= 1 and k[1] <= 1 for k in keys)
    with pytest.raises(ValueError, match="mode"):
        overlay.set_mode("sparkles")


def _plan() -> TilePlan:
    tiles = []
    i = 0
    for row in range(2):
        for col in range(2):
            tiles.append(Tile(i, row, col, col * 2048, row * 1536, 2048, 1536, tissue=1.0))
            i += 1
    return TilePlan("<glass>", W, H, 0.5, 0.5, 2048, 0, 1.0, tuple(tiles))


def test_tile_grid_colours_tiles_by_state(qtbot, view):
    grid: TileGridOverlay = view.tile_overlay
    grid.set_plan(_plan())
    assert grid.set_tile_states({0: "running", 1: "done", 2: "failed"}) == 3
    assert grid.set_tile_states({0: "running"}) == 0  # unchanged: nothing to repaint
    assert grid.tile_state(2) == "failed"
    qtbot.wait(20)
    shot = view.grab().toImage()

    def colour_at(x: float, y: float) -> QColor:
        p = view.map_from_level0(QPointF(x, y))
        return shot.pixelColor(int(p.x()), int(p.y()))

    running, done, failed, pending = (colour_at(1024 + (i % 2) * 2048, 768 + (i // 2) * 1536) for i in range(4))
    assert running.red() > running.blue() + 20 and running.green() > running.blue() + 20  # yellow tint
    assert done.green() > done.red() + 12  # a light green tint
    assert failed.red() > failed.green() + 20  # red tint
    assert (pending.red(), pending.green(), pending.blue()) == (GLASS, GLASS, GLASS)  # outline only
    with pytest.raises(ValueError, match="unknown tile state"):
        grid.set_tile_states({3: "exploded"})


def test_tissue_overlay_tints_tissue_only(qtbot, view):
    mask = np.zeros((48, 64), dtype=bool)
    mask[:, :32] = True
    view.tissue_overlay.set_mask(TissueMask.for_slide(mask, (W, H)))
    qtbot.wait(20)
    shot = view.grab().toImage()
    left = view.map_from_level0(QPointF(1000, 1500))
    right = view.map_from_level0(QPointF(3000, 1500))
    cl = shot.pixelColor(int(left.x()), int(left.y()))
    cr = shot.pixelColor(int(right.x()), int(right.y()))
    assert cl.green() > cl.red() + 20
    assert (cr.red(), cr.green(), cr.blue()) == (GLASS, GLASS, GLASS)
    view.tissue_overlay.setVisible(False)
    shot = view.grab().toImage()
    cl = shot.pixelColor(int(left.x()), int(left.y()))
    assert (cl.red(), cl.green(), cl.blue()) == (GLASS, GLASS, GLASS)


def test_cells_streamed_after_the_first_paint_appear_next_to_earlier_ones(qtbot, view):
    # Live batches repaint only their own rect over the cached drawing: both batches must show.
    view.set_scale_factor(1.0)
    view.center_on(1000, 800)
    overlay = view.cell_overlay

    def ring(cx: float, cy: float, ident: int) -> Cell:
        angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        poly = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 30 + (cx, cy)
        return Cell(polygon=poly, centroid=(cx, cy), bbox=(cx - 30, cy - 30, cx + 30, cy + 30), tile=0, id=ident)

    overlay.add_cells([ring(900, 700, 1)])
    first = _settle(qtbot, view)
    left = QRectF(view.mapFromScene(QPointF(860, 660)), view.mapFromScene(QPointF(940, 740))).toRect()
    right = QRectF(view.mapFromScene(QPointF(1060, 860)), view.mapFromScene(QPointF(1140, 940))).toRect()
    assert _count_near(first.copy(left), (0, 230, 255)) > 20
    assert _count_near(first.copy(right), (0, 230, 255)) == 0
    overlay.add_cells([ring(1100, 900, 2)])
    second = _settle(qtbot, view)
    assert _count_near(second.copy(left), (0, 230, 255)) > 20
    assert _count_near(second.copy(right), (0, 230, 255)) > 20


def test_tile_grid_done_tint_fades_once_no_tile_is_pending_or_running(qtbot, view):
    from wsidesk.gui.viewer.overlays import FADED

    grid: TileGridOverlay = view.tile_overlay
    grid.set_plan(_plan())
    grid.set_tile_states({0: "running", 1: "done"})
    assert grid.fade == 1.0 and not grid.finished
    grid.set_tile_states({0: "done", 2: "done", 3: "failed"})
    assert grid.finished
    qtbot.waitUntil(lambda: grid.fade == pytest.approx(FADED), timeout=5000)
    grid.set_plan(_plan())  # a new run's plan starts at full strength
    assert grid.fade == 1.0
