"""Byte-bounded, thread-safe LRU of decoded slide tiles, keyed by an immutable TileKey."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PySide6.QtGui import QImage

from wsidesk.gui.viewer.display import DisplaySettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TileKey:
    """One tile of one pyramid level: column/row in tile units at that level (not level-0 px), as
    `display` shows it (a tile is cached once per display setting)."""

    path: str
    level: int
    col: int
    row: int
    display: DisplaySettings = DisplaySettings()

    def __post_init__(self) -> None:
        if self.level < 0 or self.col < 0 or self.row < 0:
            msg = f"tile key needs non-negative level/col/row, got {self.level}/{self.col}/{self.row}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    bytes: int
    count: int
    max_bytes: int


def image_bytes(image: QImage) -> int:
    """What a tile costs in the cache: width * height * 4 (tiles are stored as 32-bit RGB)."""
    return image.width() * image.height() * 4


class TileCache:
    """LRU of QImage tiles bounded by total bytes. Loader threads insert; the GUI thread reads.

    One lock guards everything; the work under it is dictionary bookkeeping only, never decoding.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes <= 0:
            msg = f"tile cache size must be positive, got {max_bytes} bytes"
            raise ValueError(msg)
        self._max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._items: OrderedDict[TileKey, tuple[QImage, int]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def get(self, key: TileKey) -> QImage | None:
        """The tile, marked most recently used; None (a miss) when absent."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return entry[0]

    def peek(self, key: TileKey) -> QImage | None:
        """The tile without touching recency or statistics (for drawing fallbacks)."""
        with self._lock:
            entry = self._items.get(key)
            return None if entry is None else entry[0]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[TileKey]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._items)

    def put(self, key: TileKey, image: QImage) -> None:
        """Insert (or refresh) a tile, evicting least recently used tiles past the byte bound."""
        size = image_bytes(image)
        if size > self._max_bytes:
            logger.debug("tile %s (%d bytes) is larger than the whole cache; not cached", key, size)
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (image, size)
            self._bytes += size
            while self._bytes > self._max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted
                self._evictions += 1

    def discard_path(self, path: str) -> None:
        """Drop every tile of one slide (after it is closed)."""
        with self._lock:
            for key in [k for k in self._items if k.path == path]:
                self._bytes -= self._items.pop(key)[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                bytes=self._bytes,
                count=len(self._items),
                max_bytes=self._max_bytes,
            )
