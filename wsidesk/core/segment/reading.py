"""Padded tiles at the model's resolution, read ahead of the model on worker threads."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from wsidesk.core.slide.reader import SlideReader, best_level_for_downsample
from wsidesk.core.tiling.grid import Tile, TilePlan

logger = logging.getLogger(__name__)

SNAP_TOLERANCE = 0.01  # |ds - round(ds)| below this reads as an exact integer downsample
# Reads decode JPEG and resize outside the GIL: a few threads keep a GPU fed; leave a core to the rest.
DEFAULT_READ_WORKERS = min(8, max(2, (os.cpu_count() or 2) - 1))

ReaderFactory = Callable[[], SlideReader]


@dataclass(frozen=True, slots=True)
class ReadGeometry:
    """How a plan's tiles are read: at `level`, reduced by `factor` level px per output px."""

    level: int
    level_downsample: float  # level-0 px per level px (snapped when near an integer)
    factor: float  # level px per output px (snapped when near an integer)
    size: int  # output side: tile_size + 2 * padding

    @property
    def scale(self) -> float:
        """Level-0 px per output (label) px."""
        return self.level_downsample * self.factor

    @property
    def integer_factor(self) -> int | None:
        f = round(self.factor)
        return f if f >= 1 and f == self.factor else None


def snap(value: float, tolerance: float = SNAP_TOLERANCE) -> float:
    """`value` rounded to the nearest integer when it is within `tolerance` of it."""
    nearest = round(value)
    return float(nearest) if nearest >= 1 and abs(value - nearest) < tolerance else float(value)


def read_geometry(reader: SlideReader, plan: TilePlan) -> ReadGeometry:
    """The pyramid level to read `plan`'s tiles from and the resize factor from it."""
    target = snap(plan.downsample)
    level = best_level_for_downsample(reader, target)
    level_ds = snap(float(reader.level_downsamples[level]))
    return ReadGeometry(
        level=level,
        level_downsample=level_ds,
        factor=snap(target / level_ds),
        size=plan.tile_size + 2 * plan.padding,
    )


@dataclass(frozen=True, slots=True, eq=False)
class TileRead:
    """A read tile: `rgb` (size, size, 3) uint8 whose pixel [0, 0] starts at level-0 `origin`; or `error`."""

    tile: Tile
    rgb: np.ndarray | None
    origin: tuple[float, float]
    scale: float  # level-0 px per rgb px
    error: str | None = None
    seconds: float = 0.0
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


def tile_origin(plan: TilePlan, tile: Tile, geometry: ReadGeometry) -> tuple[float, float]:
    """Level-0 position of output pixel [0, 0]: the core's corner minus the padding."""
    pad = plan.padding * geometry.scale
    return (tile.x - pad, tile.y - pad)


def read_padded_tile(
    reader: SlideReader, plan: TilePlan, tile: Tile, geometry: ReadGeometry | None = None
) -> tuple[np.ndarray, tuple[float, float], float]:
    """(rgb, origin, scale) of `tile` plus its padding at the plan's resolution.

    Every tile comes out (tile_size + 2 * padding) px square, also at the slide's border and for the
    short last row/column, so tiles stack into one batch; outside the slide it mirrors the inside.
    """
    g = geometry or read_geometry(reader, plan)
    size = g.size
    x0, y0 = tile_origin(plan, tile, g)
    # The source window in level px: [lx, lx + size * factor), maybe fractional.
    lx, ly = x0 / g.level_downsample, y0 / g.level_downsample
    span = size * g.factor
    ix, iy = math.floor(lx + 1e-6), math.floor(ly + 1e-6)
    fx, fy = lx - ix, ly - iy
    exact = g.integer_factor is not None and fx < 1e-6 and fy < 1e-6
    if exact:
        margin = 0
        w = h = size * g.integer_factor  # type: ignore[operator]
    else:
        # Lanczos reaches 3 output px past each edge: read that much more so the border is not clamped.
        margin = math.ceil(3 * max(g.factor, 1.0))
        w = math.ceil(fx + span + 1e-6) + 2 * margin + 1
        h = math.ceil(fy + span + 1e-6) + 2 * margin + 1
    region = reader.read_region(
        round((ix - margin) * g.level_downsample), round((iy - margin) * g.level_downsample), g.level, w, h
    )
    if exact:
        rgb = _reduce(region, g.integer_factor)  # type: ignore[arg-type]
    else:
        bx, by = fx + margin, fy + margin
        rgb = _resize(region, (bx, by, bx + span, by + span), size)
    if rgb.shape != (size, size, 3):  # a reader that returned the wrong size must not poison a batch
        msg = f"tile {tile.index}: read {rgb.shape}, expected {(size, size, 3)}"
        raise ValueError(msg)
    return mirror_outside(rgb, (x0, y0), g.scale, plan.dimensions), (x0, y0), g.scale


def mirror_outside(
    rgb: np.ndarray, origin: tuple[float, float], scale: float, slide_size: tuple[int, int]
) -> np.ndarray:
    """`rgb` with its pixels outside the slide replaced by a mirror image of those inside.

    The reader fills outside the slide with white, which the model reads as an edge: it finds fewer and
    smaller nuclei along it. On the 24 CoNSeP crops (every tile reaches the border) InstanSeg's own call
    scores mean F1 0.544; adding 64 px of white around its input drops it to 0.510, 64 px of mirror image
    gives 0.547 (benchmarks/bench_accuracy.py). Mirroring continues the texture, as InstanSeg's reflect
    padding does. A pixel is inside when its centre is.
    """
    size_y, size_x = rgb.shape[:2]
    x0, y0 = origin
    width, height = slide_size

    def inside(start: float, extent: int, n: int) -> tuple[int, int]:
        lo = math.ceil(-start / scale - 0.5 - 1e-9)
        hi = math.ceil((extent - start) / scale - 0.5 - 1e-9)
        return max(0, lo), min(n, hi)

    c0, c1 = inside(x0, width, size_x)
    r0, r1 = inside(y0, height, size_y)
    if (c0, c1, r0, r1) == (0, size_x, 0, size_y) or c0 >= c1 or r0 >= r1:
        return rgb
    pad = ((r0, size_y - r1), (c0, size_x - c1), (0, 0))
    return np.pad(rgb[r0:r1, c0:c1], pad, mode="reflect")


def _reduce(region: np.ndarray, factor: int) -> np.ndarray:
    """Exact box average by an integer factor (anti-aliased, no interpolation)."""
    if factor == 1:
        return np.ascontiguousarray(region)
    from PIL import Image

    # Pillow's box reduce: same rounded means as a numpy reshape-sum, ~20x faster.
    return np.asarray(Image.fromarray(np.ascontiguousarray(region)).reduce(factor))


def _resize(region: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Resample `box` (source px, fractional) of `region` to size x size; anti-aliased when reducing."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(region))
    out = image.resize((size, size), Image.Resampling.LANCZOS, box=box)
    return np.asarray(out)


class TileReader:
    """Reads tiles in order on worker threads, at most `max_ahead` tiles ahead of the consumer.

    Each worker thread has its own slide handle from `reader_factory` (OpenSlide handles die after a read
    error: that thread's handle is reopened and the tile read once more). A tile that fails twice comes
    out as a `TileRead` with `error` set; iteration never raises for a bad tile.
    """

    def __init__(
        self,
        reader_factory: ReaderFactory,
        plan: TilePlan,
        tiles: Sequence[Tile],
        *,
        workers: int = DEFAULT_READ_WORKERS,
        max_ahead: int = 32,
        retries: int = 1,
        geometry: ReadGeometry | None = None,
    ) -> None:
        if workers < 1 or max_ahead < 1 or retries < 0:
            msg = f"tile reader needs workers >= 1, max_ahead >= 1, retries >= 0; got {workers}, {max_ahead}, {retries}"
            raise ValueError(msg)
        self._factory = reader_factory
        self._plan = plan
        self._tiles = list(tiles)
        self._workers = workers
        self._max_ahead = max_ahead
        self._retries = retries
        self._geometry = geometry
        self._local = threading.local()
        self._lock = threading.Lock()
        self._readers: list[SlideReader] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[TileRead]] = deque()
        self._closed = False
        self.busy_seconds = 0.0  # summed over workers
        self.started = 0  # tiles handed to workers so far (read-ahead accounting, for tests)

    @property
    def max_ahead(self) -> int:
        return self._max_ahead

    def __iter__(self) -> Iterator[TileRead]:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="wsidesk-read")
        queue = iter(self._tiles)
        try:
            for tile in queue:
                self._submit(tile)
                if len(self._pending) >= self._max_ahead:
                    break
            while self._pending:
                result = self._pending.popleft().result()
                yield result
                # Refill once the consumer is back: read + held tiles never exceed max_ahead.
                nxt = next(queue, None)
                if nxt is not None:
                    self._submit(nxt)
        finally:
            self.close()

    def _submit(self, tile: Tile) -> None:
        assert self._pool is not None
        self.started += 1
        self._pending.append(self._pool.submit(self._read, tile))

    def _reader(self) -> SlideReader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._factory()
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        return reader

    def _discard_reader(self) -> None:
        reader = getattr(self._local, "reader", None)
        self._local.reader = None
        if reader is not None:
            with self._lock:
                if reader in self._readers:
                    self._readers.remove(reader)
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - a dead handle may fail to close; it is dropped anyway
                logger.debug("closing a failed slide handle raised", exc_info=True)

    def _read(self, tile: Tile) -> TileRead:
        start = time.perf_counter()
        errors: list[str] = []
        for attempt in range(1, self._retries + 2):
            if self._closed:
                return TileRead(tile, None, (0.0, 0.0), 0.0, error="reader closed", attempts=attempt)
            try:
                reader = self._reader()
                geometry = self._geometry or read_geometry(reader, self._plan)
                rgb, origin, scale = read_padded_tile(reader, self._plan, tile, geometry)
            except Exception as exc:  # noqa: BLE001 - any read failure becomes this tile's reason
                errors.append(f"{type(exc).__name__}: {exc}")
                logger.warning("read of tile %d failed (attempt %d): %s", tile.index, attempt, exc)
                self._discard_reader()  # OpenSlide latches errors: the retry needs a fresh handle
                continue
            seconds = time.perf_counter() - start
            with self._lock:
                self.busy_seconds += seconds
            return TileRead(tile, rgb, origin, scale, seconds=seconds, attempts=attempt)
        seconds = time.perf_counter() - start
        with self._lock:
            self.busy_seconds += seconds
        return TileRead(
            tile,
            None,
            (0.0, 0.0),
            0.0,
            error=f"read failed: {errors[-1]}",
            seconds=seconds,
            attempts=len(errors),
        )

    def close(self) -> None:
        """Stop reading ahead and close every slide handle the workers opened."""
        if self._closed:
            return
        self._closed = True
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        with self._lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            try:
                reader.close()
            except Exception:  # noqa: BLE001
                logger.debug("closing a slide handle raised", exc_info=True)
