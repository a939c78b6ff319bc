"""Per-cell measurements, computed for all objects of a label image at once (bincount, no per-object loop).

Shape measurements use the target resolution (label px) and are reported in µm; stain measurements
project optical density OD = -log10(I / 255) on the Ruifrok & Johnston H&E-DAB stain vectors (the
matrix skimage's `rgb2hed` uses), so `hematoxylin_od_mean` is high for purple nuclei and low for pink
eosin, in OD units.
"""

from __future__ import annotations

import math

import numpy as np

# The order of every table and export (CSV columns after id, x, y).
MEASUREMENTS: tuple[str, ...] = (
    "area_um2",
    "perimeter_um",
    "circularity",
    "solidity",
    "eccentricity",
    "major_axis_um",
    "minor_axis_um",
    "hematoxylin_od_mean",
    "eosin_od_mean",
)

_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED)
# OD of each 8-bit value; 0 is treated as 1 so black stays finite.
_OD_LUT = -np.log10(np.maximum(np.arange(256, dtype=np.float64), 1.0) / 255.0)


def _foreground(labels: np.ndarray, select: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of labelled pixels and their labels, limited to the `select`ed labels."""
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    ids = flat[fg]
    if select is not None:
        keep = select[ids]
        fg, ids = fg[keep], ids[keep]
    return fg, ids


def moment_measurements(labels: np.ndarray, n: int, *, select: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Pixel moments of objects 1..n of a consecutive label image: arrays of length n + 1 (index = label).

    Returns `area` (px), `row`, `col` (centroid, pixel-centre coordinates), `major`, `minor` (axis
    lengths in px, skimage's convention 4·sqrt(eigenvalue)) and `eccentricity`. `select` (bool,
    length n + 1) limits the work to some labels; the others come back as zero.
    """
    fg, ids = _foreground(labels, select)
    rows, cols = np.divmod(fg, labels.shape[1])
    size = n + 1
    area = np.bincount(ids, minlength=size).astype(np.float64)
    safe = np.maximum(area, 1.0)
    mr = np.bincount(ids, rows, size) / safe
    mc = np.bincount(ids, cols, size) / safe
    # Central moments from per-object offsets: no cancellation on large coordinates.
    dr = rows - mr[ids]
    dc = cols - mc[ids]
    a = np.bincount(ids, dr * dr, size) / safe
    b = np.bincount(ids, dr * dc, size) / safe
    c = np.bincount(ids, dc * dc, size) / safe
    half_tr = (a + c) / 2
    root = np.sqrt(((a - c) / 2) ** 2 + b * b)
    l1 = half_tr + root
    l2 = np.maximum(half_tr - root, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ecc = np.where(l1 > 0, np.sqrt(np.clip(1.0 - l2 / np.where(l1 > 0, l1, 1.0), 0.0, 1.0)), 0.0)
    return {
        "area": area,
        "row": mr,
        "col": mc,
        "major": 4.0 * np.sqrt(l1),
        "minor": 4.0 * np.sqrt(l2),
        "eccentricity": ecc,
    }


def stain_measurements(
    labels: np.ndarray, rgb: np.ndarray, n: int, *, select: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Mean haematoxylin and eosin OD inside objects 1..n: arrays of length n + 1 (index = label)."""
    fg, ids = _foreground(labels, select)
    pixels = np.asarray(rgb)[..., :3].reshape(-1, 3)[fg]
    hed = np.maximum(_OD_LUT[pixels] @ HED_FROM_RGB, 0.0)
    size = n + 1
    count = np.maximum(np.bincount(ids, minlength=size), 1)
    return {
        "hematoxylin_od_mean": np.bincount(ids, hed[:, 0], size) / count,
        "eosin_od_mean": np.bincount(ids, hed[:, 1], size) / count,
    }


def combine(
    *,
    moments: dict[str, np.ndarray],
    stains: dict[str, np.ndarray] | None,
    label: int,
    perimeter_px: float,
    polygon_area_px: float,
    hull_area_px: float,
    mpp: float,
) -> dict[str, float]:
    """The MEASUREMENTS of one object, in MEASUREMENTS order (stain values left out without `stains`)."""
    area_px = float(moments["area"][label])
    area_um2 = area_px * mpp * mpp
    perimeter_um = perimeter_px * mpp
    out = {
        "area_um2": area_um2,
        "perimeter_um": perimeter_um,
        "circularity": min(1.0, 4.0 * math.pi * area_um2 / perimeter_um**2) if perimeter_um > 0 else 0.0,
        "solidity": min(1.0, polygon_area_px / hull_area_px) if hull_area_px > 0 else 1.0,
        "eccentricity": float(moments["eccentricity"][label]),
        "major_axis_um": float(moments["major"][label]) * mpp,
        "minor_axis_um": float(moments["minor"][label]) * mpp,
    }
    if stains is not None:
        out["hematoxylin_od_mean"] = float(stains["hematoxylin_od_mean"][label])
        out["eosin_od_mean"] = float(stains["eosin_od_mean"][label])
    return {k: round(v, 6) for k, v in out.items()}


__all__ = ["HED_FROM_RGB", "MEASUREMENTS", "combine", "moment_measurements", "stain_measurements"]
