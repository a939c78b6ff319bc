"""TileLoader: background reads, merged duplicates, stale requests dropped, errors reported."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from wsidesk.core.slide.reader import ArrayReader
from wsidesk.gui.viewer.tile_cache import TileCache, TileKey
from wsidesk.gui.viewer.tile_loader import TileLoader, read_tile, rgb_to_qimage, tile_level0_rect


class CountingReader(ArrayReader):
    """A real in-memory reader that records every read_region call and the thread it ran on."""

    def __init__(self, image: np.ndarray, **kw: object) -> None:
        super().__init__(image, **kw)  # type: ignore[arg-type]
        self.calls: list[tuple[int, int, int, int, int]] = []
        self.thread_ids: set[int] = set()
        self._lock = threading.Lock()

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        with self._lock:
            self.calls.append((x, y, level, width, height))
            self.thread_ids.add(threading.get_native_id())
        return super().read_region(x, y, level, width, height)


class BlockingReader(CountingReader):
    """Every read waits for `release`, so requests pile up in the queue behind the first."""

    def __init__(self, image: np.ndarray, **kw: object) -> None:
        super().__init__(image, **kw)
        self.started = threading.Event()
        self.release = threading.Event()

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        self.started.set()
        assert self.release.wait(10), "test forgot to release the reader"
        return super().read_region(x, y, level, width, height)


class FailingReader(ArrayReader):
    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        msg = "boom: corrupt JPEG tile"
        raise OSError(msg)


def _slide(w: int = 1500, h: int = 1100) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture
def cleanup():
    loaders: list[TileLoader] = []
    yield loaders.append
    for loader in loaders:
        loader.shutdown()


def test_rgb_to_qimage_keeps_pixels():
    rgb = np.zeros((3, 5, 3), dtype=np.uint8)
    rgb[1, 2] = (10, 200, 30)
    img = rgb_to_qimage(rgb)
    c = img.pixelColor(2, 1)
    assert (c.red(), c.green(), c.blue()) == (10, 200, 30)
    assert (img.width(), img.height()) == (5, 3)


def test_read_tile_cuts_edge_tiles_and_maps_level0_extent():
    reader = ArrayReader(_slide(), levels=2)
    key = TileKey(reader.path, 1, 1, 1)  # level 1 is 750x550: tile (1,1) is 238x38
    img = read_tile(reader, key)
    assert (img.width(), img.height()) == (238, 38)
    assert tile_level0_rect(reader, key) == (1024.0, 1024.0, 1500.0, 1100.0)
    with pytest.raises(ValueError, match="outside"):
        read_tile(reader, TileKey(reader.path, 1, 2, 0))


def test_loader_reads_off_the_gui_thread_and_fills_the_cache(qtbot, cleanup):
    reader = CountingReader(_slide(), levels=2)
    cache = TileCache(64 << 20)
    loader = TileLoader(reader, cache, max_threads=2)
    cleanup(loader)
    key = TileKey(reader.path, 0, 1, 0)
    with qtbot.waitSignal(loader.tile_loaded, timeout=5000) as blocker:
        assert loader.request(key)
    assert blocker.args == [key]
    assert key in cache
    assert threading.get_native_id() not in reader.thread_ids
    img = cache.peek(key)
    assert img is not None
    c = img.pixelColor(0, 0)
    assert (c.red(), c.green(), c.blue()) == tuple(reader.read_region(512, 0, 0, 1, 1)[0, 0])


def test_duplicate_in_flight_requests_are_merged_into_one_read(qtbot, cleanup):
    reader = BlockingReader(_slide(), levels=2)
    cache = TileCache(64 << 20)
    loader = TileLoader(reader, cache, max_threads=3)
    cleanup(loader)
    key = TileKey(reader.path, 0, 0, 0)
    assert loader.request(key) is True
    assert reader.started.wait(5)
    assert loader.request(key) is False
    assert loader.request(key) is False
    with qtbot.waitSignal(loader.tile_loaded, timeout=5000):
        reader.release.set()
    assert len(reader.calls) == 1
    assert loader.stats.merged == 2
    assert loader.request(key) is False  # now cached: no second read
    qtbot.wait(50)
    assert len(reader.calls) == 1


def test_queued_requests_go_stale_after_a_generation_bump_and_are_not_read(qtbot, cleanup):
    reader = BlockingReader(_slide(), levels=2)
    cache = TileCache(64 << 20)
    loader = TileLoader(reader, cache, max_threads=1)
    cleanup(loader)
    k0, k1, k2 = (TileKey(reader.path, 0, c, 0) for c in range(3))
    loader.request(k0)
    assert reader.started.wait(5)  # k0 is being read; k1, k2 wait in the queue
    loader.request(k1)
    loader.request(k2)
    loader.set_generation()  # the user panned...
    loader.request(k2)  # ...and k2 is still visible
    reader.release.set()
    qtbot.waitUntil(lambda: loader.pending_count == 0, timeout=5000)
    read_cols = sorted(x // 512 for x, _, _, _, _ in reader.calls)
    assert read_cols == [0, 2]
    assert k1 not in cache
    assert k2 in cache
    assert loader.stats.dropped == 1


def test_read_errors_emit_tile_failed_and_do_not_crash(qtbot, cleanup):
    reader = FailingReader(_slide())
    loader = TileLoader(reader, TileCache(1 << 20), max_threads=1)
    cleanup(loader)
    key = TileKey(reader.path, 0, 0, 0)
    with qtbot.waitSignal(loader.tile_failed, timeout=5000) as blocker:
        loader.request(key)
    assert blocker.args[0] == key
    assert "boom" in blocker.args[1] and "level=0" in blocker.args[1]
    assert loader.stats.failed == 1
    # The loader still works: a later request is read (and fails) again.
    with qtbot.waitSignal(loader.tile_failed, timeout=5000):
        assert loader.request(key)


def test_shutdown_drops_queued_reads_and_joins_threads(qtbot):
    reader = BlockingReader(_slide(), levels=2)
    loader = TileLoader(reader, TileCache(64 << 20), max_threads=2)
    for c in range(3):
        for r in range(2):
            loader.request(TileKey(reader.path, 0, c, r))
    assert reader.started.wait(5)
    reader.release.set()
    loader.shutdown()
    assert loader.is_shut_down
    assert len(reader.calls) <= 6
    assert loader.request(TileKey(reader.path, 1, 0, 0)) is False
    if os.path.isdir("/proc/self/task"):
        qtbot.waitUntil(
            lambda: not any(os.path.exists(f"/proc/self/task/{t}") for t in reader.thread_ids),
            timeout=3000,
        )
