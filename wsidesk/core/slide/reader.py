"""The SlideReader protocol every slide backend implements, and an in-memory reader for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from wsidesk.core.errors import SlideError


@runtime_checkable
class SlideReader(Protocol):
    """A multi-resolution RGB slide. Coordinates are level-0 pixels unless stated otherwise."""

    path: str
    vendor: str | None

    @property
    def dimensions(self) -> tuple[int, int]: ...  # level-0 (width, height)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]: ...

    @property
    def level_downsamples(self) -> tuple[float, ...]: ...

    @property
    def mpp(self) -> float | None: ...  # µm per level-0 pixel, None when the slide does not say

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 array (height, width, 3) at `level`; (x, y) is the top-left in level-0 px.

        Areas outside the slide read as white (glass).
        """
        ...

    def thumbnail(self, max_size: int) -> np.ndarray:
        """RGB uint8 image of the whole slide whose longer side is at most `max_size`."""
        ...

    def close(self) -> None: ...


def best_level_for_downsample(reader: SlideReader, downsample: float) -> int:
    """Highest-resolution level that is not finer than needed (never upsample from a coarser level)."""
    best = 0
    for level, ds in enumerate(reader.level_downsamples):
        if ds <= downsample * 1.001:
            best = level
    return best


def require_mpp(reader: SlideReader, override: float | None = None) -> float:
    """The slide's µm/px, or `override`; a clear error when neither is known."""
    if override is not None:
        if override <= 0:
            msg = f"µm/px override for {reader.path} must be positive, got {override}"
            raise SlideError(msg)
        return float(override)
    if reader.mpp is None:
        msg = (
            f"slide {reader.path} does not record its pixel size (µm/px); "
            "set it with --target-mpp or the job param 'mpp'"
        )
        raise SlideError(msg)
    return reader.mpp


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
    from wsidesk.core.slide.openslide_reader import OpenSlideReader

    return OpenSlideReader(Path(path), mpp=mpp)


def is_slide(path: str | Path) -> bool:
    """Whether OpenSlide recognises the file as a slide (reads headers only)."""
    import openslide

    try:
        return Path(path).is_file() and openslide.OpenSlide.detect_format(str(path)) is not None
    except (OSError, openslide.OpenSlideError):
        return False
