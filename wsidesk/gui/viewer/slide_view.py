"""SlideView: a tiled, multi-resolution whole-slide viewer. The scene is in level-0 px."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QPointF, QRect, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPixmapCache,
    QResizeEvent,
    QShowEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QFrame, QGestureEvent, QGraphicsScene, QGraphicsView, QPinchGesture, QWidget

from wsidesk.core.slide.reader import SlideReader
from wsidesk.core.slide.reader import open_slide as open_slide_file
from wsidesk.gui.viewer.display import DisplaySettings, apply_display
from wsidesk.gui.viewer.minimap import MinimapPainter, ScaleBarPainter
from wsidesk.gui.viewer.overlays import CellOverlay, OverlayItem, TileGridOverlay, TissueOverlay
from wsidesk.gui.viewer.tile_cache import TileCache, TileKey
from wsidesk.gui.viewer.tile_loader import TILE_SIZE, TileLoader, level_grid, rgb_to_qimage, tile_level0_rect

logger = logging.getLogger(__name__)

BACKGROUND = QColor(46, 46, 48)
GLASS = QColor(255, 255, 255)
MAX_SCALE = 4.0  # screen px per level-0 px
MAX_VISIBLE_TILES = 400  # beyond this (a one-level slide zoomed out) the thumbnail stands in
ZOOM_STEP = 1.5


def level_for_scale(downsamples: tuple[float, ...] | list[float], scale: float) -> int:
    """The coarsest level still at least as fine as the screen: the largest downsample <= 1/scale.

    So a finer level is never replaced by upsampling a coarser one.
    """
    if scale <= 0:
        msg = f"scale must be positive, got {scale}"
        raise ValueError(msg)
    target = 1.0 / scale
    best = 0
    for level, ds in enumerate(downsamples):
        if ds <= target * 1.001:
            best = level
    return best


def _align(world: QTransform, rect: QRectF) -> QRectF:
    """Device rect of a scene rect with each edge rounded on its own, so abutting tiles never leave
    a hairline seam between them."""
    r = world.mapRect(rect)
    return QRectF(QPointF(round(r.left()), round(r.top())), QPointF(round(r.right()), round(r.bottom())))


class SlideView(QGraphicsView):
    """Pan/zoom view of one slide with tiles loaded in the background and overlay layers on top.

    Signals: `cursor_moved(x, y)` level-0 px under the mouse; `zoom_changed(scale)` screen px per
    level-0 px; `slide_opened(path)`; `slide_closed(path)`; `files_dropped(paths)` local files dropped
    on the view; `tile_failed(message)` a tile could not be read (shown as the placeholder).
    """

    cursor_moved = Signal(float, float)
    zoom_changed = Signal(float)
    slide_opened = Signal(str)
    slide_closed = Signal(str)
    files_dropped = Signal(list)
    tile_failed = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        cache: TileCache | None = None,
        loader_threads: int = 3,
        tile_size: int = TILE_SIZE,
        thumbnail_size: int = 1024,
    ) -> None:
        super().__init__(parent)
        self.cache = cache if cache is not None else TileCache()
        self.tile_size = tile_size
        self._loader_threads = loader_threads
        self._thumbnail_size = thumbnail_size
        self._reader: SlideReader | None = None
        self._owns_reader = False
        self._loader: TileLoader | None = None
        self._thumbnail: QImage | None = None
        self._thumbnail_rgb: np.ndarray | None = None
        self._display = DisplaySettings()
        self._keep_fitted = False
        self._requested: frozenset[TileKey] = frozenset()
        self._failed: set[TileKey] = set()
        self._minimap_dragging = False
        # Gets mouse and key events first (the annotation tools): methods mouse_press, mouse_move,
        # mouse_release, mouse_double_click, key_press return True when they handled the event.
        self.interaction: Any = None
        self.minimap = MinimapPainter()
        self.scale_bar = ScaleBarPainter()

        scene = QGraphicsScene(self)
        scene.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.setScene(scene)
        self.overlays: dict[str, OverlayItem] = {
            "tissue": TissueOverlay(),
            "tiles": TileGridOverlay(),
            "cells": CellOverlay(),
        }
        for z, item in enumerate(self.overlays.values(), start=1):
            item.setZValue(z * 10)
            scene.addItem(item)

        # The cell layer caches its drawing per viewport (DeviceCoordinateCache) in QPixmapCache, whose
        # 10 MB default is smaller than one full-HD ARGB viewport; raise it (never lower it).
        QPixmapCache.setCacheLimit(max(QPixmapCache.cacheLimit(), 64 * 1024))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)  # zoom anchors itself
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        # Overlay updates repaint only their rect over a cached slide background: a live run's batches
        # then cost a small blit instead of redrawing every tile (scrollContentsBy repaints all on pan,
        # for the viewport-fixed minimap and scale bar).
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.viewport().setMouseTracking(True)
        self.viewport().grabGesture(Qt.GestureType.PinchGesture)
        app = QCoreApplication.instance()
        if app is not None:
            # Child widgets get no closeEvent when their window closes: join the readers on quit too.
            app.aboutToQuit.connect(self._on_about_to_quit)

    # -- overlays -----------------------------------------------------------------------------------
    def overlay(self, name: str) -> OverlayItem:
        try:
            return self.overlays[name]
        except KeyError:
            msg = f"no overlay named {name!r}; have {sorted(self.overlays)}"
            raise KeyError(msg) from None

    @property
    def tissue_overlay(self) -> TissueOverlay:
        return self.overlays["tissue"]  # type: ignore[return-value]

    @property
    def tile_overlay(self) -> TileGridOverlay:
        return self.overlays["tiles"]  # type: ignore[return-value]

    @property
    def cell_overlay(self) -> CellOverlay:
        return self.overlays["cells"]  # type: ignore[return-value]

    # -- slide lifecycle ----------------------------------------------------------------------------
    @property
    def reader(self) -> SlideReader | None:
        return self._reader

    @property
    def loader(self) -> TileLoader | None:
        return self._loader

    @property
    def thumbnail_rgb(self) -> np.ndarray | None:
        """The open slide's overview image (RGB uint8), as read when it was opened."""
        return self._thumbnail_rgb

    @property
    def slide_path(self) -> str | None:
        return None if self._reader is None else self._reader.path

    def open_slide(self, path: str | Path) -> SlideReader:
        """Open a slide file (raises SlideError when it cannot be opened; the old one stays open)."""
        reader = open_slide_file(path)
        self.set_reader(reader, owned=True)
        return reader

    def set_reader(self, reader: SlideReader, *, owned: bool = False) -> None:
        """Show `reader`'s slide; `owned` readers are closed when replaced or when the view closes.

        Raises what `reader.thumbnail` raises (SlideError for a damaged file); the current slide stays.
        """
        try:
            thumb = reader.thumbnail(self._thumbnail_size)
        except Exception:
            # Keep showing the current slide; the caller reports the error.
            if owned:
                reader.close()
            raise
        self.close_slide()
        self._reader = reader
        self._owns_reader = owned
        self._thumbnail = rgb_to_qimage(apply_display(thumb, self._display))
        self._thumbnail_rgb = thumb
        self._failed.clear()
        self._requested = frozenset()
        loader = TileLoader(reader, self.cache, tile_size=self.tile_size, max_threads=self._loader_threads, parent=self)
        loader.tile_loaded.connect(self._on_tile_loaded)
        loader.tile_failed.connect(self._on_tile_failed)
        self._loader = loader
        w, h = reader.dimensions
        margin = 0.5 * max(w, h)  # lets the slide edge be panned to the middle of the view
        self.setSceneRect(QRectF(-margin, -margin, w + 2 * margin, h + 2 * margin))
        for item in self.overlays.values():
            item.clear()
        self.cell_overlay.set_extent(w, h)
        self.minimap.set_thumbnail(self._thumbnail, QSize(w, h))
        self.resetCachedContent()
        self._keep_fitted = True
        if self.isVisible() and self._viewport_ready():
            self.zoom_to_fit()
        logger.info("viewing %s (%dx%d, %d levels)", reader.path, w, h, len(reader.level_dimensions))
        self.slide_opened.emit(reader.path)
        self.viewport().update()

    def close_slide(self) -> None:
        """Stop loading, wait for running reads, close an owned reader. Safe to call twice."""
        loader, reader = self._loader, self._reader
        self._loader = None
        self._reader = None
        if loader is not None:
            loader.tile_loaded.disconnect(self._on_tile_loaded)
            loader.tile_failed.disconnect(self._on_tile_failed)
            loader.shutdown()
            loader.deleteLater()
        if reader is None:
            return
        self.cache.discard_path(reader.path)
        if self._owns_reader:
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - closing must not stop the view from moving on
                logger.exception("closing slide %s failed", reader.path)
        self._thumbnail = None
        self._thumbnail_rgb = None
        self.minimap.set_thumbnail(None, QSize())
        self.resetCachedContent()
        for item in self.overlays.values():
            item.clear()
        self._requested = frozenset()
        self.slide_closed.emit(reader.path)
        self.viewport().update()

    def shutdown(self) -> None:
        """Close the slide and join the loader's threads (also done by closeEvent)."""
        self.close_slide()

    @Slot()
    def _on_about_to_quit(self) -> None:
        self.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    # -- display ----------------------------------------------------------------------------------
    @property
    def display(self) -> DisplaySettings:
        return self._display

    def set_display(self, settings: DisplaySettings) -> None:
        """Show the slide with other brightness/contrast/gamma or a stain view.

        Tiles are keyed by their display, so the loader threads read and convert the visible ones while
        the (converted) thumbnail stands in; tiles seen before with these settings come from the cache.
        """
        if settings == self._display:
            return
        self._display = settings
        if self._thumbnail_rgb is not None:
            self._thumbnail = rgb_to_qimage(apply_display(self._thumbnail_rgb, settings))
        self._failed.clear()
        self.resetCachedContent()
        self.viewport().update()

    # -- geometry -----------------------------------------------------------------------------------
    def scale_factor(self) -> float:
        """Screen px per level-0 px."""
        return self.transform().m11()

    def level_for_scale(self, scale: float) -> int:
        """Pyramid level drawn at `scale` (see module `level_for_scale`)."""
        if self._reader is None:
            return 0
        return level_for_scale(self._reader.level_downsamples, scale) if scale > 0 else 0

    def current_level(self) -> int:
        return self.level_for_scale(self.scale_factor() * self.devicePixelRatioF())

    def map_to_level0(self, pos: QPointF) -> QPointF:
        """Viewport position (float) to level-0 px."""
        inverse, _ = self.viewportTransform().inverted()
        return inverse.map(QPointF(pos))

    def map_from_level0(self, point: QPointF) -> QPointF:
        return self.viewportTransform().map(QPointF(point))

    def visible_scene_rect(self) -> QRectF:
        inverse, _ = self.viewportTransform().inverted()
        return inverse.mapRect(QRectF(self.viewport().rect()))

    def fit_scale(self) -> float:
        if self._reader is None or not self._viewport_ready():
            return 1.0
        w, h = self._reader.dimensions
        vp = self.viewport().size()
        return min(vp.width() / w, vp.height() / h)

    def min_scale(self) -> float:
        return min(self.fit_scale() / 2.0, MAX_SCALE)

    def _viewport_ready(self) -> bool:
        vp = self.viewport().size()
        return vp.width() > 1 and vp.height() > 1

    # -- zoom & pan ---------------------------------------------------------------------------------
    def zoom_to_fit(self) -> None:
        if self._reader is None:
            return
        if not self._viewport_ready():
            self._keep_fitted = True
            return
        w, h = self._reader.dimensions
        self._set_scale(self.fit_scale(), None)
        self.centerOn(QPointF(w / 2.0, h / 2.0))
        # Stay fitted through resizes until the user zooms or pans.
        self._keep_fitted = True
        self.viewport().update()

    def zoom_in(self) -> None:
        self.zoom_by(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(1.0 / ZOOM_STEP)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Multiply the scale, keeping the level-0 point under `anchor` (viewport px; default centre)."""
        self._set_scale(self.scale_factor() * factor, anchor)

    def set_scale_factor(self, scale: float, anchor: QPointF | None = None) -> None:
        self._set_scale(scale, anchor)

    def center_on(self, x: float, y: float) -> None:
        self._keep_fitted = False
        self.centerOn(QPointF(x, y))
        self.viewport().update()

    def pan_by(self, dx: int, dy: int) -> None:
        """Scroll by viewport px."""
        self._keep_fitted = False
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + dx)
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + dy)

    def _set_scale(self, scale: float, anchor: QPointF | None) -> None:
        if self._reader is None or not math.isfinite(scale) or scale <= 0:
            return
        lo = self.min_scale() if self._viewport_ready() else 1e-6
        scale = min(max(scale, lo), MAX_SCALE)
        self._keep_fitted = False
        old = self.scale_factor()
        vp_center = QPointF(self.viewport().width() / 2.0, self.viewport().height() / 2.0)
        anchor_vp = QPointF(anchor) if anchor is not None else vp_center
        anchor_scene = self.map_to_level0(anchor_vp)
        self.setTransform(QTransform.fromScale(scale, scale))
        self.resetCachedContent()  # the cached background was drawn at the old scale
        # Put the anchor's level-0 point back under the anchor.
        centre = anchor_scene + (vp_center - anchor_vp) * (1 / scale)
        self.centerOn(centre)
        if not math.isclose(old, scale, rel_tol=1e-9):
            self.zoom_changed.emit(scale)
        self.viewport().update()

    # -- painting -----------------------------------------------------------------------------------
    def visible_tile_keys(self) -> list[TileKey]:
        """Tiles of the current level the viewport shows (what the view asks the loader for)."""
        if self._reader is None:
            return []
        w, h = self._reader.dimensions
        area = self.visible_scene_rect().intersected(QRectF(0, 0, w, h))
        return self._visible_keys(self.current_level(), area) if not area.isEmpty() else []

    def _visible_keys(self, level: int, rect: QRectF) -> list[TileKey]:
        assert self._reader is not None
        ds = self._reader.level_downsamples[level]
        span = self.tile_size * ds
        cols, rows = level_grid(self._reader, level, self.tile_size)
        c0 = max(int(math.floor(rect.left() / span)), 0)
        r0 = max(int(math.floor(rect.top() / span)), 0)
        c1 = min(int(math.ceil(rect.right() / span)), cols)
        r1 = min(int(math.ceil(rect.bottom() / span)), rows)
        if c1 <= c0 or r1 <= r0:
            return []
        path = self._reader.path
        display = self._display
        return [TileKey(path, level, c, r, display) for r in range(r0, r1) for c in range(c0, c1)]

    def _tile_rect(self, key: TileKey) -> QRectF:
        assert self._reader is not None
        x0, y0, x1, y1 = tile_level0_rect(self._reader, key, self.tile_size)
        return QRectF(QPointF(x0, y0), QPointF(x1, y1))

    def drawBackground(self, painter: QPainter, rect: QRectF | QRect) -> None:  # noqa: N802 - Qt override
        rect = QRectF(rect)
        painter.fillRect(rect, BACKGROUND)
        reader = self._reader
        if reader is None:
            return
        w, h = reader.dimensions
        slide = QRectF(0, 0, w, h)
        world = painter.worldTransform()
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.fillRect(_align(world, slide), GLASS)
        if self._thumbnail is not None:
            painter.drawImage(_align(world, slide), self._thumbnail, QRectF(self._thumbnail.rect()))
        level = self.current_level()
        area = rect.intersected(slide)
        keys = self._visible_keys(level, area) if not area.isEmpty() else []
        if len(keys) > MAX_VISIBLE_TILES:
            keys = []
        images = {k: self.cache.get(k) for k in keys}
        missing = [k for k, img in images.items() if img is None]
        if missing:
            # Cached coarser tiles are sharper than the thumbnail: draw them under the gaps.
            gap = QRectF()
            for k in missing:
                gap = gap.united(self._tile_rect(k))
            for coarser in range(len(reader.level_dimensions) - 1, level, -1):
                for k in self._visible_keys(coarser, gap.intersected(area)):
                    img = self.cache.peek(k)
                    if img is not None:
                        painter.drawImage(_align(world, self._tile_rect(k)), img, QRectF(img.rect()))
        for k, img in images.items():
            if img is not None:
                painter.drawImage(_align(world, self._tile_rect(k)), img, QRectF(img.rect()))
        painter.restore()
        self._request_visible()

    def _request_visible(self) -> None:
        loader = self._loader
        if loader is None or self._reader is None:
            return
        view = self.visible_scene_rect()
        keys = self.visible_tile_keys()
        if len(keys) > MAX_VISIBLE_TILES:
            keys = []
        centre = view.center()

        def distance(k: TileKey) -> float:
            r = self._tile_rect(k)
            return (r.center() - centre).manhattanLength()

        keys.sort(key=distance)
        # Never ask for more than the cache holds, or loading would evict what it just loaded, forever.
        fits = max(1, int(0.8 * self.cache.max_bytes) // (self.tile_size * self.tile_size * 4))
        del keys[fits:]
        wanted = frozenset(keys)
        if wanted != self._requested:
            # The view moved: reads queued for tiles no longer wanted go stale and are skipped.
            loader.set_generation()
            self._requested = wanted
        for key in keys:
            if key not in self._failed and self.cache.peek(key) is None:
                loader.request(key)

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:  # noqa: N802 - Qt override
        rect = QRectF(rect)
        if self._reader is None:
            return
        painter.save()
        painter.resetTransform()
        vp = self.viewport().size()
        self.scale_bar.paint(painter, vp, self.scale_factor(), self._reader.mpp)
        self.minimap.paint(painter, vp, self.visible_scene_rect())
        painter.restore()

    @Slot(object)
    def _on_tile_loaded(self, key: TileKey) -> None:
        if self._reader is not None and key.path == self._reader.path:
            self.invalidateScene(self._tile_rect(key), QGraphicsScene.SceneLayer.BackgroundLayer)

    @Slot(object, str)
    def _on_tile_failed(self, key: TileKey, message: str) -> None:
        self._failed.add(key)
        self.tile_failed.emit(message)

    # -- input --------------------------------------------------------------------------------------
    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 - Qt override
        super().scrollContentsBy(dx, dy)
        self.viewport().update()  # the minimap and scale bar stay put: a blit would drag them along

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._keep_fitted and self._viewport_ready():
            self.zoom_to_fit()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._keep_fitted and self._viewport_ready():
            self.zoom_to_fit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        delta = event.angleDelta().y()
        if delta == 0:
            delta = event.pixelDelta().y()
        if delta == 0 or self._reader is None:
            event.ignore()
            return
        self.zoom_by(2.0 ** (delta / 360.0), event.position())  # one notch (120) = x1.26
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        if event.button() == Qt.MouseButton.LeftButton and self.minimap.contains(pos, self.viewport().size()):
            self._minimap_dragging = True
            target = self.minimap.to_scene(pos, self.viewport().size())
            self.center_on(target.x(), target.y())
            event.accept()
            return
        if self.interaction is not None and self.interaction.mouse_press(event):
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self.interaction is not None and self.interaction.mouse_double_click(event):
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._reader is not None:
            p = self.map_to_level0(event.position())
            self.cursor_moved.emit(p.x(), p.y())
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._keep_fitted = False  # a hand-drag pan
        if self._minimap_dragging:
            target = self.minimap.to_scene(event.position(), self.viewport().size())
            self.center_on(target.x(), target.y())
            event.accept()
            return
        if self.interaction is not None and self.interaction.mouse_move(event):
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._minimap_dragging:
            self._minimap_dragging = False
            event.accept()
            return
        if self.interaction is not None and self.interaction.mouse_release(event):
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if self.interaction is not None and self.interaction.key_press(event):
            event.accept()
            return
        key = event.key()
        step_x = max(self.viewport().width() // 5, 1)
        step_y = max(self.viewport().height() // 5, 1)
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.zoom_out()
        elif key == Qt.Key.Key_0:
            self.zoom_to_fit()
        elif key == Qt.Key.Key_Left:
            self.pan_by(-step_x, 0)
        elif key == Qt.Key.Key_Right:
            self.pan_by(step_x, 0)
        elif key == Qt.Key.Key_Up:
            self.pan_by(0, -step_y)
        elif key == Qt.Key.Key_Down:
            self.pan_by(0, step_y)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind == QEvent.Type.Gesture and isinstance(event, QGestureEvent):
            pinch = event.gesture(Qt.GestureType.PinchGesture)
            if isinstance(pinch, QPinchGesture):
                flags = pinch.changeFlags()
                if flags & QPinchGesture.ChangeFlag.ScaleFactorChanged:
                    centre = self.viewport().mapFromGlobal(pinch.centerPoint().toPoint())
                    self.zoom_by(pinch.scaleFactor(), QPointF(centre))
                event.accept(pinch)
                return True
        if kind == QEvent.Type.NativeGesture and isinstance(event, QNativeGestureEvent):
            if event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self.zoom_by(1.0 + event.value(), event.position())
                event.accept()
                return True
        return super().viewportEvent(event)

    # -- drag and drop: handled by the view, the scene would reject it --------------------------------
    @staticmethod
    def _local_paths(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[str]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt override
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = self._local_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.files_dropped.emit(paths)
