"""TileCache: byte bound, LRU order, statistics, thread safety."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtGui import QImage

from wsidesk.gui.viewer.tile_cache import TileCache, TileKey


def _image(w: int = 16, h: int = 16) -> QImage:
    img = QImage(w, h, QImage.Format.Format_RGB32)
    img.fill(0xFF808080)
    return img


def _key(col: int, row: int = 0, level: int = 0) -> TileKey:
    return TileKey("slide.svs", level, col, row)


def test_tile_key_is_immutable_and_hashable():
    k = _key(1, 2)
    assert k == TileKey("slide.svs", 0, 1, 2)
    assert {k: 1}[TileKey("slide.svs", 0, 1, 2)] == 1
    with pytest.raises(AttributeError):
        k.col = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="non-negative"):
        TileKey("s", -1, 0, 0)


def test_cache_stays_within_its_byte_bound_and_evicts_least_recently_used():
    tile = 16 * 16 * 4
    cache = TileCache(max_bytes=3 * tile)
    for c in range(3):
        cache.put(_key(c), _image())
    assert cache.stats.bytes == 3 * tile
    assert cache.get(_key(0)) is not None  # 0 becomes most recently used; 1 is now the oldest
    cache.put(_key(3), _image())
    assert cache.stats.bytes <= 3 * tile
    assert _key(1) not in cache
    assert cache.keys() == [_key(2), _key(0), _key(3)]
    cache.put(_key(4), _image())
    assert _key(2) not in cache
    assert cache.stats.evictions == 2


def test_cache_counts_bytes_as_width_times_height_times_four():
    cache = TileCache(max_bytes=10_000)
    cache.put(_key(0), _image(10, 20))
    cache.put(_key(0), _image(10, 20))  # replacing does not double count
    assert cache.stats.bytes == 800
    assert len(cache) == 1


def test_cache_does_not_store_a_tile_larger_than_itself():
    cache = TileCache(max_bytes=100)
    cache.put(_key(0), _image(16, 16))
    assert len(cache) == 0


def test_cache_counts_hits_and_misses_but_peek_does_not():
    cache = TileCache(max_bytes=1 << 20)
    cache.put(_key(0), _image())
    assert cache.get(_key(0)) is not None
    assert cache.get(_key(1)) is None
    assert cache.peek(_key(1)) is None
    assert cache.peek(_key(0)) is not None
    s = cache.stats
    assert (s.hits, s.misses) == (1, 1)


def test_cache_discards_one_slides_tiles():
    cache = TileCache(max_bytes=1 << 20)
    cache.put(TileKey("a", 0, 0, 0), _image())
    cache.put(TileKey("b", 0, 0, 0), _image())
    cache.discard_path("a")
    assert cache.keys() == [TileKey("b", 0, 0, 0)]
    assert cache.stats.bytes == 16 * 16 * 4


def test_cache_survives_concurrent_writers_and_readers():
    tile = 16 * 16 * 4
    cache = TileCache(max_bytes=50 * tile)
    img = _image()

    def writer(offset: int) -> None:
        for i in range(500):
            cache.put(_key(offset + i % 80), img)
            cache.get(_key((offset + i) % 80))

    threads = [threading.Thread(target=writer, args=(o,)) for o in (0, 1000, 2000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = cache.stats
    assert s.bytes <= 50 * tile
    assert s.bytes == s.count * tile


def test_cache_rejects_a_non_positive_bound():
    with pytest.raises(ValueError, match="positive"):
        TileCache(0)
