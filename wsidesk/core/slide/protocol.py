"""The SlideReader protocol every slide backend implements, and helpers that work on any reader."""

from __future__ import annotations

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


def objective_power(reader: SlideReader) -> float | None:
    """The scanner's objective magnification (e.g. 20 or 40) from the slide's properties, if recorded."""
    props = getattr(reader, "properties", None) or {}
    for key in ("openslide.objective-power", "aperio.AppMag"):
        try:
            value = float(props[key])
        except (KeyError, TypeError, ValueError):
            continue
        if value > 0 and np.isfinite(value):
            return value
    return None


def looks_grayscale(rgb: np.ndarray, *, tolerance: int = 2) -> bool:
    """Whether an RGB image (e.g. a slide's thumbnail) has no colour: every pixel's channels are equal
    within `tolerance`. Grayscale and single-channel slides read as such through OpenSlide; brightfield
    models expect stained (coloured) tissue and find nothing on them."""
    if rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 1):
        return True
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.size == 0:
        return False
    channels = rgb[..., :3].astype(np.int16)
    spread = channels.max(axis=2) - channels.min(axis=2)
    return bool(spread.max() <= tolerance)
