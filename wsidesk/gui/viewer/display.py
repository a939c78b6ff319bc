"""How slide pixels are shown: brightness, contrast, gamma and colour-deconvolution views (Qt-free maths).

Applied per tile on the loader threads; `DisplaySettings` is hashable so it can be part of a tile's cache
key. Stain views use scikit-image's H&E-DAB matrices (Ruifrok & Johnston): a stain's optical density is
separated as in `skimage.color.rgb2hed` and shown alone, recombined as in `skimage.color.hed2rgb`.
"""

from __future__ import annotations

import math
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


@cache
def _stain_tables(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel optical-density tables (3 x 256, scaled by the stain's column of hed_from_rgb) and the
    stain's colour row of rgb_from_hed, both float32."""
    from skimage.color import hed_from_rgb, rgb_from_hed

    od = np.log(np.maximum(np.arange(256, dtype=np.float64) / 255.0, _EPS)) / np.log(_EPS)  # rgb2hed's OD
    tables = np.stack([od * hed_from_rgb[c, index] for c in range(3)]).astype(np.float32)
    colour = (np.log(_EPS) * rgb_from_hed[index]).astype(np.float32)  # -(c * -log eps) @ row, folded
    return tables, colour


def stain_only(rgb: np.ndarray, stain: str) -> np.ndarray:
    """The image as if only `stain` were on the slide (equals hed2rgb of rgb2hed with the others zeroed)."""
    index = STAINS[stain][1]
    if index is None:
        return rgb
    tables, colour = _stain_tables(index)
    amount = tables[0][rgb[..., 0]]
    amount += tables[1][rgb[..., 1]]
    amount += tables[2][rgb[..., 2]]
    np.maximum(amount, 0.0, out=amount)
    out = np.empty(rgb.shape, dtype=np.uint8)
    for c in range(3):
        channel = np.exp(amount * colour[c])  # in (0, 1]: colour is <= 0 for these matrices
        np.multiply(channel, 255.0, out=channel)
        channel += 0.5
        out[..., c] = np.minimum(channel, 255.0)
    return out


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
