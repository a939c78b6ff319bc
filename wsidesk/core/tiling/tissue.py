"""Tissue mask of an H&E slide from its thumbnail: saturation + optical density, pen marks removed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

# Thresholds act on a white-balanced thumbnail (glass -> ~255). Otsu adapts them to the stain; the floors
# keep an all-glass slide empty (Otsu would otherwise split noise), the caps keep pale tissue when Otsu
# lands between eosin and haematoxylin on a slide that is mostly tissue.
SATURATION_FLOOR = 0.05
SATURATION_CAP = 0.07
OD_FLOOR = 0.15  # summed over R, G, B, relative to the glass
OD_CAP = 0.40
OD_MIN_SATURATION = 0.03  # dark but neutral grey is dust, shadow or pen fringe, not stained tissue

# Pen marks: H&E is pink to violet (hue ~260°..360°/0°..40°); green, cyan and blue ink is not.
PEN_HUE_RANGE = (70.0 / 360.0, 230.0 / 360.0)
PEN_MIN_SATURATION = 0.08
BLACK_MAX_VALUE = 45  # max channel below this: black marker, slide edge or other near-black artefact


@dataclass(frozen=True, slots=True, eq=False)
class TissueMask:
    """Boolean tissue mask plus its scale: `downsample` level-0 px per mask px (x; y may differ)."""

    mask: np.ndarray
    downsample: float
    downsample_y: float | None = None
    _integral: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask)
        if mask.ndim != 2:
            msg = f"tissue mask must be 2-D, got shape {mask.shape}"
            raise ValueError(msg)
        if not self.downsample > 0 or (self.downsample_y is not None and not self.downsample_y > 0):
            msg = f"tissue mask downsample must be positive, got {self.downsample}, {self.downsample_y}"
            raise ValueError(msg)
        mask = mask.astype(bool, copy=False)
        mask.flags.writeable = False
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "downsample", float(self.downsample))
        object.__setattr__(
            self, "downsample_y", float(self.downsample if self.downsample_y is None else self.downsample_y)
        )
        integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
        np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1, out=integral[1:, 1:])
        integral.flags.writeable = False
        object.__setattr__(self, "_integral", integral)

    @classmethod
    def for_slide(cls, mask: np.ndarray, slide_dimensions: tuple[int, int]) -> TissueMask:
        """A mask covering a whole slide of level-0 (width, height)."""
        h, w = np.asarray(mask).shape[:2]
        return cls(mask, slide_dimensions[0] / w, slide_dimensions[1] / h)

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def fractions(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Tissue fraction of many level-0 rectangles at once (vectorised; O(1) each).

        Every mask pixel the rectangle touches counts (floor/ceil), so rounding never hides tissue.
        The part of a rectangle outside the mask is not counted in the area.
        """
        mh, mw = self.mask.shape
        sy = self.downsample_y if self.downsample_y is not None else self.downsample
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        c0 = np.clip(np.floor(x / self.downsample), 0, mw).astype(np.int64)
        c1 = np.clip(np.ceil((x + np.asarray(w, dtype=np.float64)) / self.downsample), 0, mw).astype(np.int64)
        r0 = np.clip(np.floor(y / sy), 0, mh).astype(np.int64)
        r1 = np.clip(np.ceil((y + np.asarray(h, dtype=np.float64)) / sy), 0, mh).astype(np.int64)
        ii = self._integral
        count = ii[r1, c1] - ii[r0, c1] - ii[r1, c0] + ii[r0, c0]
        area = (r1 - r0) * (c1 - c0)
        out = np.zeros(np.broadcast(count, area).shape, dtype=np.float64)
        np.divide(count, area, out=out, where=area > 0)
        return out

    def fraction_in(self, x: float, y: float, w: float, h: float) -> float:
        """Tissue fraction of one level-0 rectangle (0.0 when it lies outside the mask)."""
        return float(self.fractions(np.array([x]), np.array([y]), np.array([w]), np.array([h]))[0])


def detect_tissue(
    thumbnail: np.ndarray,
    *,
    min_object_px: int = 9,
    dilation_px: int = 2,
) -> np.ndarray:
    """Boolean tissue mask of an RGB H&E thumbnail, at the thumbnail's resolution.

    Glass, pen marks (green/cyan/blue ink, black marker) and near-black artefacts are excluded; specks
    smaller than `min_object_px` are dropped, holes filled, and the result dilated by `dilation_px` so
    that tissue edges are kept.
    """
    from scipy import ndimage as ndi
    from skimage.color import rgb2hsv
    from skimage.morphology import remove_small_holes, remove_small_objects

    rgb = _as_rgb(thumbnail)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return np.zeros(rgb.shape[:2], dtype=bool)
    # Planar float32 (3, H, W): per-channel maths on interleaved RGB is several times slower.
    planes = np.ascontiguousarray(np.moveaxis(rgb, 2, 0), dtype=np.float32)
    # Smooth first: saturation is a ratio and amplifies per-pixel noise on bright glass.
    smooth = ndi.uniform_filter(planes, size=(1, 3, 3), mode="nearest")

    hue, sat, val = rgb2hsv(smooth, channel_axis=0)  # value stays in 0..255: float input is not rescaled
    pen = (sat > PEN_MIN_SATURATION) & (hue >= PEN_HUE_RANGE[0]) & (hue < PEN_HUE_RANGE[1])
    black = val < BLACK_MAX_VALUE  # of the smoothed image: one dark noise pixel is not a mark
    excluded = ndi.binary_dilation(pen | black, structure=_disk(2))

    background = _glass_colour(smooth, sat, excluded)
    balanced = smooth * (255.0 / background)[:, None, None]
    np.clip(balanced, 0.0, 255.0, out=balanced)
    sat_b = rgb2hsv(balanced, channel_axis=0)[1]
    od = -np.log((balanced + 1.0) / 256.0).sum(axis=0)

    usable = ~excluded
    t_sat = _clipped_otsu(sat_b[usable], SATURATION_FLOOR, SATURATION_CAP)
    t_od = _clipped_otsu(od[usable], OD_FLOOR, OD_CAP)
    tissue = ((sat_b > t_sat) | ((od > t_od) & (sat_b > OD_MIN_SATURATION))) & usable
    logger.debug(
        "tissue thresholds: saturation %.3f, OD %.3f, glass %s; %.1f%% tissue before cleaning",
        t_sat,
        t_od,
        np.round(background, 1).tolist(),
        100.0 * tissue.mean(),
    )

    if tissue.any():
        tissue = ndi.binary_closing(tissue, structure=_disk(1), border_value=0)
        # max_size is inclusive: objects and holes of fewer than the given pixels are removed.
        if min_object_px > 1:
            tissue = remove_small_objects(tissue, max_size=min_object_px - 1, connectivity=1)
        tissue = remove_small_holes(tissue, max_size=max(64, tissue.size // 1000) - 1, connectivity=1)
        if dilation_px > 0:
            tissue = ndi.binary_dilation(tissue, structure=_disk(dilation_px))
        # Pen cores stay out even after dilation; the dilated fringe may be tissue the ink touches.
        tissue &= ~(pen | black)
    return np.asarray(tissue, dtype=bool)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        msg = f"thumbnail must be an (H, W, 3) RGB image, got shape {image.shape}"
        raise ValueError(msg)
    image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def _glass_colour(planes: np.ndarray, sat: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Per-channel colour of the glass: the median of bright, unsaturated pixels; white when none."""
    darkest = np.minimum(np.minimum(planes[0], planes[1]), planes[2])
    candidates = (sat < 0.1) & (darkest > 150) & ~excluded
    if candidates.sum() < max(16, candidates.size // 200):
        return np.array([255.0, 255.0, 255.0], dtype=np.float32)
    colour = np.array([np.median(p[candidates]) for p in planes], dtype=np.float32)
    return np.clip(colour, 1.0, 255.0)


def _clipped_otsu(values: np.ndarray, floor: float, cap: float) -> float:
    from skimage.filters import threshold_otsu

    if values.size < 2 or float(values.min()) == float(values.max()):
        return floor
    threshold = float(threshold_otsu(values, nbins=256))  # type: ignore[no-untyped-call]
    return min(max(threshold, floor), cap)


def _disk(radius: int) -> np.ndarray:
    from skimage.morphology import disk

    return np.asarray(disk(radius, dtype=bool))  # type: ignore[no-untyped-call]


MASK_UM_PER_PX = 4.0  # fine enough that a lone nucleus (6-12 µm) still covers mask pixels
MIN_THUMBNAIL, MAX_THUMBNAIL = 1024, 2048


def mask_thumbnail_size(dimensions: tuple[int, int], mpp: float) -> int:
    """Longer side of the thumbnail to detect tissue on: ~4 µm/px, within 1024-2048 px.

    Small slides do not need a 2048 px thumbnail; decoding and filtering one costs seconds.
    """
    longest_um = max(dimensions) * mpp
    return int(min(MAX_THUMBNAIL, max(MIN_THUMBNAIL, np.ceil(longest_um / MASK_UM_PER_PX))))
