"""Opening slides (`open_slide`, `is_slide`), and an in-memory reader for tests.

The SlideReader protocol lives in `protocol.py`, which the backends import; it is re-exported here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsidesk.core.errors import SlideError
from wsidesk.core.slide.openslide_reader import OpenSlideReader
from wsidesk.core.slide.protocol import SlideReader, best_level_for_downsample, require_mpp

__all__ = ["ArrayReader", "SlideReader", "best_level_for_downsample", "is_slide", "open_slide", "require_mpp"]


class ArrayReader:
    """A SlideReader over an in-memory RGB array, with power-of-two levels built by striding."""

    vendor = "array"

    def __init__(self, image: np.ndarray, *, mpp: float | None = 0.5, levels: int = 1, path: str = "<array>") -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            msg = f"ArrayReader needs an (H, W, 3) uint8 array, got {image.shape} {image.dtype}"
            raise SlideError(msg)
        self.path = path
        self._mpp = mpp
        self._levels = [image[:: 2**i, :: 2**i] for i in range(levels)]

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((a.shape[1], a.shape[0]) for a in self._levels)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(2**i) for i in range(len(self._levels)))

    @property
    def mpp(self) -> float | None:
        return self._mpp

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        ds = 2**level
        src = self._levels[level]
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        lx, ly = x // ds, y // ds
        x0, y0 = max(lx, 0), max(ly, 0)
        x1, y1 = min(lx + width, src.shape[1]), min(ly + height, src.shape[0])
        if x1 > x0 and y1 > y0:
            out[y0 - ly : y1 - ly, x0 - lx : x1 - lx] = src[y0:y1, x0:x1]
        return out

    def thumbnail(self, max_size: int) -> np.ndarray:
        w, h = self.dimensions
        step = max(1, int(np.ceil(max(w, h) / max_size)))
        return np.ascontiguousarray(self._levels[0][::step, ::step])

    def close(self) -> None:
        self._levels = []


def open_slide(path: str | Path, *, mpp: float | None = None) -> SlideReader:
    """Open a slide file with OpenSlide; `mpp` overrides (or supplies) the pixel size."""
    return OpenSlideReader(Path(path), mpp=mpp)


def is_slide(path: str | Path) -> bool:
    """Whether OpenSlide recognises the file as a slide (reads headers only)."""
    import openslide

    try:
        return Path(path).is_file() and openslide.OpenSlide.detect_format(str(path)) is not None
    except (OSError, openslide.OpenSlideError):
        return False
