"""One intensity normalisation per slide: per-channel 0.1/99.9 percentiles of its tissue, at low resolution.

InstanSeg normalises each image by its own percentiles; per tile that makes a tile of glass or of dense
nuclei look alike, and it makes neighbouring tiles disagree at seams. Taking the percentiles once from a
thumbnail of the tissue gives every tile the same mapping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from wsidesk.core.tiling.tissue import TissueMask

logger = logging.getLogger(__name__)

LOW_PERCENTILE = 0.1
HIGH_PERCENTILE = 99.9
EPSILON = 1e-3  # InstanSeg's floor on the percentile range
MIN_TISSUE_PIXELS = 64  # fewer tissue pixels than this: use the whole thumbnail


@dataclass(frozen=True, slots=True)
class SlideNormaliser:
    """x -> (x - low) / max(high - low, 1e-3), per RGB channel, for uint8 tiles of one slide."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self) -> None:
        low = tuple(float(v) for v in self.low)
        high = tuple(float(v) for v in self.high)
        if len(low) != 3 or len(high) != 3 or not all(np.isfinite(low + high)):
            msg = f"normaliser needs three finite lows and highs, got {self.low} and {self.high}"
            raise ValueError(msg)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def scale(self) -> tuple[float, float, float]:
        """1 / (high - low) per channel, with InstanSeg's epsilon floor."""
        return tuple(1.0 / max(EPSILON, h - lo) for lo, h in zip(self.low, self.high, strict=True))  # type: ignore[return-value]

    @classmethod
    def from_image(
        cls,
        rgb: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        percentiles: tuple[float, float] = (LOW_PERCENTILE, HIGH_PERCENTILE),
    ) -> SlideNormaliser:
        """Percentiles of the pixels of `rgb` (H, W, 3) inside `mask`; of all pixels when `mask` is empty.

        `mask` may have another shape than `rgb` (a tissue mask of a different thumbnail): it is resized
        by nearest neighbour.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
            msg = f"normaliser needs an (H, W, 3) RGB image, got shape {rgb.shape}"
            raise ValueError(msg)
        rgb = rgb[:, :, :3]
        pixels = rgb.reshape(-1, 3)
        if mask is not None:
            m = _fit_mask(np.asarray(mask, dtype=bool), rgb.shape[:2])
            if int(m.sum()) >= MIN_TISSUE_PIXELS:
                pixels = rgb[m]
            else:
                logger.info("normalising on the whole thumbnail: only %d tissue pixels", int(m.sum()))
        lo, hi = np.percentile(pixels, list(percentiles), axis=0)
        return cls(tuple(lo.tolist()), tuple(hi.tolist()))

    @classmethod
    def from_thumbnail(cls, thumbnail: np.ndarray, mask: TissueMask | None) -> SlideNormaliser:
        """The slide normaliser from its tissue thumbnail and tissue mask (as `plan_from_reader` returns)."""
        return cls.from_image(thumbnail, None if mask is None else mask.mask)

    def apply(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) (or one (H, W, 3) tile) -> float32 (N, 3, H, W) normalised."""
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4 or batch.shape[3] != 3:
            msg = f"normaliser needs uint8 tiles shaped (N, H, W, 3), got {batch.shape}"
            raise ValueError(msg)
        lut = self._lut()
        out = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), dtype=np.float32)
        for c in range(3):
            np.take(lut[c], batch[..., c], out=out[:, c])
        return out

    def _lut(self) -> np.ndarray:
        """(3, 256) float32: the normalised value of each uint8 level per channel (one gather per pixel)."""
        low = np.asarray(self.low, dtype=np.float32)
        scale = np.asarray(self.scale, dtype=np.float32)
        return (np.arange(256, dtype=np.float32)[None, :] - low[:, None]) * scale[:, None]

    def to_tensor(self, batch: np.ndarray, device: str = "cpu") -> Any:
        """uint8 (N, H, W, 3) -> normalised float32 torch tensor (N, 3, H, W) on `device`, channels_last.

        The uint8 batch is moved first (4x fewer bytes to copy) and normalised on the device; permuting
        NHWC to NCHW gives channels_last strides without a copy.
        """
        import torch

        batch = np.ascontiguousarray(batch)
        if batch.ndim != 4 or batch.shape[3] != 3 or batch.dtype != np.uint8:
            msg = f"normaliser needs uint8 tiles shaped (N, H, W, 3), got {batch.shape} {batch.dtype}"
            raise ValueError(msg)
        if device == "cpu":
            # NHWC float via the lookup table, then a free permute: channels_last with one pass over memory.
            lut = self._lut()
            out = np.empty(batch.shape, dtype=np.float32)
            for c in range(3):
                np.take(lut[c], batch[..., c], out=out[..., c])
            return torch.from_numpy(out).permute(0, 3, 1, 2)
        x = torch.from_numpy(batch)
        x = x.pin_memory() if device.startswith("cuda") else x
        x = x.to(device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        low = torch.tensor(self.low, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        scale = torch.tensor(self.scale, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        x = (x - low) * scale
        return x.contiguous(memory_format=torch.channels_last)


def _fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask
    rows = (np.arange(shape[0]) * mask.shape[0] // max(shape[0], 1)).clip(0, mask.shape[0] - 1)
    cols = (np.arange(shape[1]) * mask.shape[1] // max(shape[1], 1)).clip(0, mask.shape[1] - 1)
    fitted: np.ndarray = mask[rows][:, cols]
    return fitted
