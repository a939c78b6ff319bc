"""How slide pixels are shown: brightness, contrast, gamma and colour-deconvolution views (Qt-free maths).

Applied per tile on the loader threads; `DisplaySettings` is hashable so it can be part of a tile's cache
key. Stain views use scikit-image's H&E-DAB matrices (Ruifrok & Johnston): a stain's optical density is
separated as in `skimage.color.rgb2hed` and shown alone, recombined as in `skimage.color.hed2rgb`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache

import numpy as np

# name -> (label, index of the stain in skimage's hed matrices); "rgb" shows the slide as scanned
STAINS: dict[str, tuple[str, int | None]] = {
    "rgb": ("Original (RGB)", None),
    "hematoxylin": ("Hematoxylin only", 0),
    "eosin": ("Eosin only", 1),
    "dab": ("DAB only", 2),
}
_EPS = 1e-6  # skimage's floor before the log; its log_adjust compensates for it


@dataclass(frozen=True, slots=True)
class DisplaySettings:
    """brightness in [-1, 1] (added), contrast in (0, 4] (scales around mid-grey), gamma in (0, 5]."""

    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    stain: str = "rgb"

    def __post_init__(self) -> None:
        if self.stain not in STAINS:
            msg = f"unknown stain view {self.stain!r}; use one of {', '.join(STAINS)}"
            raise ValueError(msg)
        checks = (
            ("brightness", self.brightness, -1.0, 1.0),
            ("contrast", self.contrast, 0.0, 4.0),
            ("gamma", self.gamma, 0.0, 5.0),
        )
        for name, value, lo, hi in checks:
            low_ok = value >= lo if name == "brightness" else value > lo
            if not (math.isfinite(value) and low_ok and value <= hi):
                msg = f"display {name} must be within {lo:g}..{hi:g}, got {value}"
                raise ValueError(msg)

    @property
    def is_identity(self) -> bool:
        return self == DisplaySettings()


@cache
def _tone_lut(brightness: float, contrast: float, gamma: float) -> np.ndarray:
    """256-entry uint8 table: contrast around 0.5, then brightness, then gamma (out = v ** (1/gamma))."""
    v = np.arange(256, dtype=np.float64) / 255.0
    v = np.clip((v - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0)
    v = v ** (1.0 / gamma)
    return np.round(v * 255.0).astype(np.uint8)


_STEPS = 8192  # fixed-point steps per unit of stain amount: output within 1 level of skimage's float maths


@cache
def _stain_tables(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point tables for one stain: per channel (3 x 256, int32), a pixel's contribution to the stain's
    amount (rgb2hed's optical density times the stain's column of hed_from_rgb); and the colour each amount
    is shown in ((n, 3) uint8: hed2rgb of that amount of the stain alone)."""
    from skimage.color import hed_from_rgb, rgb_from_hed

    od = np.log(np.maximum(np.arange(256, dtype=np.float64) / 255.0, _EPS)) / np.log(_EPS)  # rgb2hed's OD
    tables = np.round(np.stack([od * hed_from_rgb[c, index] for c in range(3)]) * _STEPS).astype(np.int32)
    top = int(np.maximum(tables.max(axis=1), 0).sum())
    amount = np.arange(top + 1, dtype=np.float64) / _STEPS
    # hed2rgb: exp(-(amount * -log eps) * rgb_from_hed[stain]), in (0, 1]
    colours = np.exp(amount[:, None] * (np.log(_EPS) * rgb_from_hed[index])[None, :])
    return tables, np.ascontiguousarray(np.clip(np.round(colours * 255.0), 0, 255).astype(np.uint8).T)


def stain_only(rgb: np.ndarray, stain: str) -> np.ndarray:
    """The image as if only `stain` were on the slide (hed2rgb of rgb2hed with the other stains zeroed).

    Integer table look-ups only: a 512² tile costs a few ms, and numpy releases the GIL meanwhile.
    """
    index = STAINS[stain][1]
    if index is None:
        return rgb
    tables, colours = _stain_tables(index)
    amount = tables[0][rgb[..., 0]]
    amount += tables[1][rgb[..., 1]]
    amount += tables[2][rgb[..., 2]]
    np.clip(amount, 0, colours.shape[1] - 1, out=amount)
    out = np.empty(rgb.shape, dtype=np.uint8)
    for c in range(3):  # three flat look-ups beat one gather of 3-byte rows
        out[..., c] = colours[c][amount]
    return out


def warm_up() -> threading.Thread:
    """Import scikit-image's colour module and build the stain tables on a worker thread: done on the GUI
    thread at the first stain view, the import alone stalls it for about a second."""

    def build() -> None:
        for _, index in STAINS.values():
            if index is not None:
                _stain_tables(index)

    thread = threading.Thread(target=build, name="wsidesk-stain-tables", daemon=True)
    thread.start()
    return thread


def apply_display(rgb: np.ndarray, settings: DisplaySettings) -> np.ndarray:
    """`rgb` (H, W, 3) uint8 as `settings` show it; the input is returned unchanged for the identity."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        msg = f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}"
        raise ValueError(msg)
    if settings.is_identity:
        return rgb
    out = stain_only(rgb, settings.stain)
    if (settings.brightness, settings.contrast, settings.gamma) != (0.0, 1.0, 1.0):
        out = _tone_lut(settings.brightness, settings.contrast, settings.gamma)[out]
    return out
