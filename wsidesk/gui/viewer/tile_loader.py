"""Reads slide tiles on a private QThreadPool: merged duplicate requests, stale ones dropped."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage

from wsidesk.core.slide.reader import SlideReader
from wsidesk.gui.viewer.display import DisplaySettings, apply_display
from wsidesk.gui.viewer.tile_cache import TileCache, TileKey

logger = logging.getLogger(__name__)

TILE_SIZE = 512


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A 32-bit QImage (Format_RGB32, fast to paint) holding a copy of an (H, W, 3) uint8 array."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        msg = f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}"
        raise ValueError(msg)
    h, w = rgb.shape[:2]
    image = QImage(w, h, QImage.Format.Format_RGB32)
    bpl = image.bytesPerLine()
    buf = np.frombuffer(image.bits(), dtype=np.uint8).reshape(h, bpl)[:, : w * 4].reshape(h, w, 4)
    # Format_RGB32 is 0xffRRGGBB in native (little-endian) order: B, G, R, 0xff in memory.
    buf[..., 0] = rgb[..., 2]
    buf[..., 1] = rgb[..., 1]
    buf[..., 2] = rgb[..., 0]
    buf[..., 3] = 255
    return image


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """An (H, W, 3) uint8 copy of a Format_RGB32 QImage (what `rgb_to_qimage` makes)."""
    h, w = image.height(), image.width()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(h, image.bytesPerLine())[:, : w * 4]
    return np.ascontiguousarray(buf.reshape(h, w, 4)[..., 2::-1])  # B, G, R, 0xff in memory


def level_grid(reader: SlideReader, level: int, tile_size: int = TILE_SIZE) -> tuple[int, int]:
    """(columns, rows) of tiles covering one level."""
    lw, lh = reader.level_dimensions[level]
    return -(-lw // tile_size), -(-lh // tile_size)


def tile_level0_rect(
    reader: SlideReader, key: TileKey, tile_size: int = TILE_SIZE
) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) level-0 extent of a tile. Neighbours share edges exactly (no seams)."""
    ds = reader.level_downsamples[key.level]
    lw, lh = reader.level_dimensions[key.level]
    x0 = min(key.col * tile_size, lw) * ds
    y0 = min(key.row * tile_size, lh) * ds
    x1 = min((key.col + 1) * tile_size, lw) * ds
    y1 = min((key.row + 1) * tile_size, lh) * ds
    return x0, y0, x1, y1


def read_tile(reader: SlideReader, key: TileKey, tile_size: int = TILE_SIZE, *, plain: QImage | None = None) -> QImage:
    """Read one tile (edge tiles are cut to the level's size) as a QImage, as `key.display` shows it.

    `plain`, the same tile as scanned (e.g. from the cache), saves decoding it again for another display.
    """
    if key.level >= len(reader.level_dimensions):
        msg = f"tile {key} asks for level {key.level}; the slide has {len(reader.level_dimensions)}"
        raise ValueError(msg)
    lw, lh = reader.level_dimensions[key.level]
    lx, ly = key.col * tile_size, key.row * tile_size
    if lx >= lw or ly >= lh:
        msg = f"tile {key} lies outside level {key.level} ({lw}x{lh})"
        raise ValueError(msg)
    w, h = min(tile_size, lw - lx), min(tile_size, lh - ly)
    if plain is not None and (plain.width(), plain.height()) == (w, h):
        return rgb_to_qimage(apply_display(qimage_to_rgb(plain), key.display))
    ds = reader.level_downsamples[key.level]
    rgb = reader.read_region(int(round(lx * ds)), int(round(ly * ds)), key.level, w, h)
    rgb = np.asarray(rgb)
    if rgb.shape[:2] != (h, w):
        msg = f"reader returned {rgb.shape[:2]} for tile {key}, expected {(h, w)}"
        raise ValueError(msg)
    return rgb_to_qimage(apply_display(rgb, key.display))


@dataclass(frozen=True, slots=True)
class LoaderStats:
    requested: int  # new reads queued
    merged: int  # requests folded into one already in flight
    reads: int  # reads actually started
    dropped: int  # queued reads skipped because they went stale
    failed: int


class _ReadTask(QRunnable):
    def __init__(self, loader: TileLoader, key: TileKey) -> None:
        super().__init__()
        self._loader = loader
        self._key = key

    def run(self) -> None:
        self._loader._run_read(self._key)  # noqa: SLF001 - the task is the loader's own worker


class TileLoader(QObject):
    """Reads tiles of one slide off the GUI thread into a TileCache.

    `request(key)` is tagged with the current generation. The view bumps it (`set_generation`) when the
    visible tile set changes and re-requests what is still visible; a queued read whose last request is
    older than the current generation is dropped when a worker picks it up, without reading.
    Create, use and shut it down on the GUI thread; `tile_loaded`/`tile_failed` arrive there.
    """

    tile_loaded = Signal(object)  # TileKey, now in the cache
    tile_failed = Signal(object, str)  # TileKey, message
    _read_finished = Signal(object, str)  # emitted on worker threads: key, error ("" when fine)

    def __init__(
        self,
        reader: SlideReader,
        cache: TileCache,
        *,
        tile_size: int = TILE_SIZE,
        max_threads: int = 3,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if tile_size < 16:
            msg = f"tile size must be at least 16 px, got {tile_size}"
            raise ValueError(msg)
        self.reader = reader
        self.cache = cache
        self.tile_size = tile_size
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, max_threads))
        self._lock = threading.Lock()
        self._inflight: dict[TileKey, int] = {}  # key -> generation of its latest request
        self._generation = 0
        self._closed = False
        self._requested = self._merged = self._reads = self._dropped = self._failed = 0
        self._read_finished.connect(self._on_read_finished, Qt.ConnectionType.QueuedConnection)

    # -- GUI thread API -------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    def set_generation(self, generation: int | None = None) -> int:
        """Start a new generation (default: the next one); queued reads from older ones go stale."""
        with self._lock:
            self._generation = self._generation + 1 if generation is None else int(generation)
            return self._generation

    def request(self, key: TileKey) -> bool:
        """Ask for a tile; True when a new read was queued (False: cached, merged, or shut down)."""
        with self._lock:
            if self._closed:
                return False
            if key in self._inflight:
                self._inflight[key] = self._generation
                self._merged += 1
                return False
            if key in self.cache:
                return False
            self._inflight[key] = self._generation
            self._requested += 1
        self._pool.start(_ReadTask(self, key))
        return True

    def is_pending(self, key: TileKey) -> bool:
        with self._lock:
            return key in self._inflight

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._inflight)

    @property
    def stats(self) -> LoaderStats:
        with self._lock:
            return LoaderStats(self._requested, self._merged, self._reads, self._dropped, self._failed)

    @property
    def is_shut_down(self) -> bool:
        return self._closed

    def shutdown(self) -> None:
        """Drop queued reads, wait for running ones and join the pool's threads. Idempotent."""
        with self._lock:
            self._closed = True
        self._pool.clear()
        self._pool.waitForDone()  # also stops the pool's idle threads
        with self._lock:
            self._inflight.clear()

    # -- worker threads -------------------------------------------------------------------------
    def _run_read(self, key: TileKey) -> None:
        with self._lock:
            generation = self._inflight.get(key)
            if generation is None:
                return
            if self._closed or generation < self._generation:
                del self._inflight[key]
                self._dropped += 1
                return
            self._reads += 1
        error = ""
        # A display change re-converts the tile as scanned when it is still cached, instead of decoding it.
        plain = None if key.display.is_identity else self.cache.peek(replace(key, display=DisplaySettings()))
        try:
            image = read_tile(self.reader, key, self.tile_size, plain=plain)
        except Exception as exc:  # noqa: BLE001 - a bad tile must never take the viewer down
            error = f"cannot read tile level={key.level} col={key.col} row={key.row} of {key.path}: {exc}"
        else:
            self.cache.put(key, image)
        with self._lock:
            self._inflight.pop(key, None)
            if error:
                self._failed += 1
            closed = self._closed
        if not closed:
            try:
                self._read_finished.emit(key, error)
            except RuntimeError:  # the loader's C++ side is gone (owner destroyed without shutdown)
                logger.debug("tile %s finished after its loader was destroyed", key)

    # -- back on the GUI thread -----------------------------------------------------------------
    @Slot(object, str)
    def _on_read_finished(self, key: TileKey, error: str) -> None:
        if self._closed:
            return
        if error:
            logger.warning("%s", error)
            self.tile_failed.emit(key, error)
        else:
            self.tile_loaded.emit(key)
