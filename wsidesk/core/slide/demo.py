"""Synthetic H&E-like pyramidal demo slides (Aperio-style tiled JPEG TIFF) with ground truth.

The slide is described by a few small arrays (a coarse tissue field and a list of nuclei) and
rendered tile by tile, so level 0 is never held in memory. Colours follow Beer-Lambert optical
density with standard haematoxylin/eosin stain vectors, so stain-aware tools behave as on real H&E.

    demo = write_demo_slide("demo.svs", width=8192, height=6144, seed=0)
    truth = load_truth(demo.path)                 # or demo.truth_path
    truth.nuclei_in(x, y, w, h)                   # (k, 5): x, y, rx, ry, angle (level-0 px, degrees)
    truth.is_tissue(xs, ys)                       # coarse tissue mask lookup
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Macenko's reference stain vectors (unit optical density per unit concentration, log10).
_H_OD = np.array([0.5626, 0.7201, 0.4062], dtype=np.float32)
_E_OD = np.array([0.2159, 0.8012, 0.5581], dtype=np.float32)
_GLASS_OD = np.array([0.016, 0.018, 0.016], dtype=np.float32)

FIELD_DOWNSAMPLE = 32  # level-0 px per step of the coarse tissue grid
LEVEL_FACTOR = 4  # each reduced level is 4x smaller
MIN_LEVEL_SIZE = 1024  # stop adding levels once the longer side is at most this
THUMBNAIL_SIZE = 768
JPEG_QUALITY = 90
_NUCLEUS_GAP_UM = 1.0  # minimum glass/stroma between two nuclei
_MAX_RADIUS_UM = 6.0
_EDGE_NOISE_PX = 3.0


@dataclass(frozen=True, slots=True)
class DemoTruth:
    """What `write_demo_slide` wrote."""

    path: Path
    truth_path: Path
    width: int
    height: int
    mpp: float
    seed: int
    n_nuclei: int
    tissue_fraction: float
    level_dimensions: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True, eq=False)
class DemoGroundTruth:
    """The ground truth of a demo slide, as loaded from `<slide>.truth.json`.

    `nuclei` is an (N, 5) float array of x, y (centre), rx, ry (semi-axes), angle (degrees, the rx
    axis turned from +x towards +y), all in level-0 pixels. `tissue_mask[i, j]` tells whether
    level-0 point (j * tissue_downsample, i * tissue_downsample) is tissue.
    """

    width: int
    height: int
    mpp: float
    seed: int
    nuclei: np.ndarray
    tissue_downsample: int
    tissue_mask: np.ndarray
    tissue_fraction: float
    extra: dict[str, object] = field(default_factory=dict)

    def nuclei_in(self, x: float, y: float, width: float, height: float) -> np.ndarray:
        """Rows of `nuclei` whose centre lies in the level-0 rectangle [x, x+w) x [y, y+h)."""
        n = self.nuclei
        keep = (n[:, 0] >= x) & (n[:, 0] < x + width) & (n[:, 1] >= y) & (n[:, 1] < y + height)
        return n[keep]

    def is_tissue(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Tissue mask at level-0 positions (nearest coarse grid point)."""
        ds = self.tissue_downsample
        rows, cols = self.tissue_mask.shape
        i = np.clip(np.rint(np.asarray(y, dtype=float) / ds).astype(int), 0, rows - 1)
        j = np.clip(np.rint(np.asarray(x, dtype=float) / ds).astype(int), 0, cols - 1)
        return np.asarray(self.tissue_mask[i, j])


# -- noise ----------------------------------------------------------------------------------------
# Textures are periodic noise images (Gaussian-filtered with wrap-around), stored twice in each
# direction so any tile-sized window is a plain slice. Different periods keep the sum from
# repeating visibly.
_TEXTURES = (  # (name, period px, feature scale px)
    ("grain", 504, 0.0),
    ("fibre", 520, 1.2),
    ("edge", 540, 4.0),
    ("mid", 560, 5.0),
    ("big", 1050, 17.0),
)


def _make_textures(seed: int, tile: int) -> dict[str, tuple[int, np.ndarray]]:
    import scipy.fft

    rng = np.random.default_rng([seed, 0x7E47])
    out = {}
    for name, base, sigma in _TEXTURES:
        period = base if base >= tile else base + tile
        noise = rng.standard_normal((period, period), dtype=np.float32)
        if sigma > 0:  # Gaussian blur in the Fourier domain: periodic by construction
            fy = np.fft.fftfreq(period).astype(np.float32)[:, None]
            fx = np.fft.rfftfreq(period).astype(np.float32)[None, :]
            gain = np.exp(np.float32(-2.0 * (math.pi * sigma) ** 2) * (fy * fy + fx * fx))
            noise = scipy.fft.irfft2(scipy.fft.rfft2(noise) * gain, s=noise.shape)
        noise *= 0.4 / max(float(noise.std()), 1e-12)
        out[name] = (period, np.tile(noise.astype(np.float32), (2, 2)))
    return out


def _texture(textures: dict[str, tuple[int, np.ndarray]], name: str, x0: int, y0: int, size: int) -> np.ndarray:
    period, doubled = textures[name]
    i, j = y0 % period, x0 % period
    return doubled[i : i + size, j : j + size]


def _bilinear(grid: np.ndarray, ds: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample a coarse grid (point (i, j) at level-0 (j*ds, i*ds)) at level-0 positions xs x ys."""
    gx = np.clip(xs / ds, 0, grid.shape[1] - 1.000001)
    gy = np.clip(ys / ds, 0, grid.shape[0] - 1.000001)
    ix = gx.astype(np.int64)
    iy = gy.astype(np.int64)
    fx = (gx - ix).astype(np.float32)
    fy = (gy - iy).astype(np.float32)[:, None]
    jx, jy = int(ix[0]), int(iy[0])  # xs, ys ascend: work on the small window they touch
    grid = grid[jy : int(iy[-1]) + 2, jx : int(ix[-1]) + 2]
    ix, iy = ix - jx, iy - jy
    rows = grid[:, ix] * (1 - fx) + grid[:, ix + 1] * fx  # separable: x first on few rows
    return rows[iy] * (1 - fy) + rows[iy + 1] * fy


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise: np.ndarray = gaussian_filter(rng.standard_normal(shape), sigma=max(sigma, 0.5), mode="reflect")
    std = float(noise.std())
    return noise / std if std > 0 else noise


# -- slide description ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class _Scene:
    width: int
    height: int
    mpp: float
    seed: int
    ds: int
    dist: np.ndarray  # coarse grid, approx. signed distance (level-0 px) to the tissue edge
    eosin: np.ndarray  # coarse grid, eosin concentration of stroma
    nuclei: np.ndarray  # (N, 8): x, y, rx, ry, angle_rad, haematoxylin, kind, texture salt
    textures: dict[str, tuple[int, np.ndarray]]


def _tissue_grid(
    rng: np.random.Generator, width: int, height: int, mpp: float, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    ds = FIELD_DOWNSAMPLE
    rows = math.ceil(height / ds) + 1
    cols = math.ceil(width / ds) + 1
    ys = (np.arange(rows) * ds)[:, None].astype(np.float64)
    xs = (np.arange(cols) * ds)[None, :].astype(np.float64)
    short = float(min(width, height))
    eosin = np.clip(0.26 + 0.07 * _smooth_noise(rng, (rows, cols), (150 / mpp) / ds), 0.12, 0.45).astype(np.float32)
    if fraction <= 0:
        return np.full((rows, cols), -1e4, dtype=np.float32), eosin

    # A few irregular blobs: elliptical cones whose outlines are bent by smooth noise.
    blobs = np.full((rows, cols), -10.0)
    for _ in range(int(rng.integers(3, 7))):
        cx = rng.uniform(0.2, 0.8) * width
        cy = rng.uniform(0.2, 0.8) * height
        a = rng.uniform(0.12, 0.30) * short
        b = a * rng.uniform(0.5, 1.0)
        t = rng.uniform(0, math.pi)
        dx, dy = xs - cx, ys - cy
        u = (dx * math.cos(t) + dy * math.sin(t)) / a
        v = (-dx * math.sin(t) + dy * math.cos(t)) / b
        blobs = np.maximum(blobs, 1.0 - np.sqrt(u * u + v * v))
    large = _smooth_noise(rng, (rows, cols), short / ds / 14)
    small = _smooth_noise(rng, (rows, cols), (45 / mpp) / ds)  # lumina, tears, fat: ~50 µm
    f = blobs + 0.30 * large + 0.10 * small
    # Keep a band of glass along every border, as on a real slide.
    margin = max(0.05 * short, 2.0 * ds)
    border = np.minimum(np.minimum(xs, width - xs), np.minimum(ys, height - ys))
    f = f - 3.0 * np.clip(1.0 - border / margin, 0.0, 1.0) ** 2
    inside = (xs <= width) & (ys <= height)
    thr = float(np.quantile(f[np.broadcast_to(inside, f.shape)], 1.0 - fraction))
    gy, gx = np.gradient(f, ds)
    grad = np.maximum(np.hypot(gx, gy), 0.3 / short)
    dist = np.clip((f - thr) / grad, -1e4, 1e4).astype(np.float32)
    return dist, eosin


def _rows(keep: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """The `keep` rows of each column."""
    return tuple(a[keep] for a in columns)


def _place_nuclei(rng: np.random.Generator, width: int, height: int, mpp: float, dist: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    ds = FIELD_DOWNSAMPLE
    if not (dist > 0).any():
        return np.zeros((0, 8))
    px_um2 = mpp * mpp
    # Candidates: an inhomogeneous Poisson process; Matérn-II thinning below keeps nuclei apart.
    density = np.clip(1.0 + 0.45 * _smooth_noise(rng, dist.shape, (120 / mpp) / ds), 0.35, 1.8).astype(np.float32)
    lam_max = 1.8 / 300.0  # candidates per µm² where density is highest
    n = int(rng.poisson(lam_max * width * height * px_um2))
    x = rng.uniform(0, width, n)
    y = rng.uniform(0, height, n)
    gx = np.clip(x / ds, 0, dist.shape[1] - 1.000001)
    gy = np.clip(y / ds, 0, dist.shape[0] - 1.000001)
    ix, iy = gx.astype(np.int64), gy.astype(np.int64)
    fx, fy = gx - ix, gy - iy
    d00, d01 = dist[iy, ix], dist[iy, ix + 1]
    d10, d11 = dist[iy + 1, ix], dist[iy + 1, ix + 1]
    d = (d00 * (1 - fx) + d01 * fx) * (1 - fy) + (d10 * (1 - fx) + d11 * fx) * fy
    dens = (density[iy, ix] * (1 - fx) + density[iy, ix + 1] * fx) * (1 - fy) + (
        density[iy + 1, ix] * (1 - fx) + density[iy + 1, ix + 1] * fx
    ) * fy
    corners_in = (d00 > 0) & (d01 > 0) & (d10 > 0) & (d11 > 0)
    keep = corners_in & (rng.uniform(0, 1.8, n) < dens)
    x, y, d = x[keep], y[keep], d[keep]
    n = x.size

    # Kinds: 0 lymphocyte (small, round, dark), 1 epithelial (large, pale, vesicular),
    # 2 fibroblast (elongated, fairly dark).
    kind = rng.choice(3, size=n, p=[0.25, 0.5, 0.25])
    rx_um = np.select(
        [kind == 0, kind == 1],
        [rng.uniform(3.0, 3.8, n), rng.uniform(4.2, 6.0, n)],
        rng.uniform(4.5, 6.0, n),
    )
    aspect = np.select(
        [kind == 0, kind == 1],
        [rng.uniform(0.85, 1.0, n), rng.uniform(0.62, 0.95, n)],
        rng.uniform(0.42, 0.55, n),
    )
    ry_um = np.maximum(rx_um * aspect, 2.5)
    hema = np.select(
        [kind == 0, kind == 1],
        [rng.uniform(1.05, 1.35, n), rng.uniform(0.65, 0.9, n)],
        rng.uniform(0.85, 1.1, n),
    )
    angle = rng.uniform(0.0, math.pi, n)
    rx, ry = rx_um / mpp, ry_um / mpp
    inside = (
        (d > rx + _EDGE_NOISE_PX + 3.0)
        & (x - rx - 2 >= 0)
        & (x + rx + 2 < width)
        & (y - rx - 2 >= 0)
        & (y + rx + 2 < height)
    )
    x, y, rx, ry, angle, hema, kind = _rows(inside, x, y, rx, ry, angle, hema, kind)

    if x.size > 1:
        gap = _NUCLEUS_GAP_UM / mpp
        tree = cKDTree(np.column_stack([x, y]))
        pairs = tree.query_pairs(2 * _MAX_RADIUS_UM / mpp + gap, output_type="ndarray")
        if pairs.size:
            i, j = pairs[:, 0], pairs[:, 1]
            close = np.hypot(x[i] - x[j], y[i] - y[j]) < rx[i] + rx[j] + gap
            i, j = i[close], j[close]
            priority = rng.permutation(x.size)
            losers = np.where(priority[i] < priority[j], i, j)
            alive = np.ones(x.size, dtype=bool)
            alive[losers] = False
            x, y, rx, ry, angle, hema, kind = _rows(alive, x, y, rx, ry, angle, hema, kind)
    order = np.argsort(y, kind="stable")
    salts = rng.integers(0, 2**31, x.size)
    out = np.column_stack([x, y, rx, ry, angle, hema, kind, salts]).astype(np.float64)
    return out[order]


def _build_scene(width: int, height: int, mpp: float, seed: int, fraction: float, tile: int) -> _Scene:
    rng = np.random.default_rng(seed)
    dist, eosin = _tissue_grid(rng, width, height, mpp, fraction)
    nuclei = _place_nuclei(rng, width, height, mpp, dist)
    textures = _make_textures(seed, tile)
    return _Scene(width, height, mpp, seed, FIELD_DOWNSAMPLE, dist, eosin, nuclei, textures)


# -- rendering -----------------------------------------------------------------------------------
def _draw_nuclei(
    nuclei: np.ndarray,
    x0: int,
    y0: int,
    size: int,
    hema: np.ndarray,
    eos: np.ndarray,
    alpha: np.ndarray,
    chromatin: np.ndarray,
) -> None:
    for cx, cy, rx, ry, ang, h, kind, _unused in nuclei:
        r = rx + 2.0
        ax0, ax1 = max(int(cx - r) - x0, 0), min(int(cx + r) + 2 - x0, size)
        ay0, ay1 = max(int(cy - r) - y0, 0), min(int(cy + r) + 2 - y0, size)
        if ax0 >= ax1 or ay0 >= ay1:
            continue
        c, s = math.cos(ang), math.sin(ang)
        dx = np.arange(ax0 + x0 + 0.5 - cx, ax1 + x0 - cx, dtype=np.float32)[None, :]
        dy = np.arange(ay0 + y0 + 0.5 - cy, ay1 + y0 - cy, dtype=np.float32)[:, None]
        u = (dx * (c / rx) + dy * (s / rx)) ** 2
        u += (dy * (c / ry) - dx * (s / ry)) ** 2
        rho = np.sqrt(u)
        # ~1.5 px soft edge, measured along the local radius
        k = math.sqrt(rx * ry) / 1.5
        a = np.clip(k - k * rho + 0.5, 0.0, 1.0)
        win = (slice(ay0, ay1), slice(ax0, ax1))
        chrom = np.clip(chromatin[win], -0.8, 0.8)
        if kind == 1:  # vesicular chromatin with a darker nuclear membrane
            conc = h * (1.0 + 0.55 * chrom) + 0.45 * h * np.exp(-(((rho - 0.9) * 8.0) ** 2))
        else:
            conc = h * (1.0 + 0.3 * chrom)
        hw = hema[win]
        hw += (conc - hw) * a
        eos[win] *= 1.0 - 0.55 * a
        np.maximum(alpha[win], a, out=alpha[win])


_LN10 = np.float32(math.log(10.0))
_GLASS_RGB = (255.0 * np.power(10.0, -_GLASS_OD)).astype(np.float32)


def _render_tile(scene: _Scene, nuclei: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3) level-0 tile whose top-left pixel is (x0, y0)."""
    tex = scene.textures
    grain = _texture(tex, "grain", x0, y0, size) * np.float32(4.0)
    ds = scene.ds
    corners = scene.dist[y0 // ds : (y0 + size) // ds + 2, x0 // ds : (x0 + size) // ds + 2]
    if not nuclei.size and (corners.size == 0 or float(corners.max()) < -2 * _EDGE_NOISE_PX - 2):
        # glass only (bilinear values never exceed their grid corners)
        out = np.empty((size, size, 3), dtype=np.uint8)
        for c in range(3):
            out[..., c] = np.clip(grain + (_GLASS_RGB[c] + 0.5), 0, 255)
        return out
    xs = x0 + np.arange(size) + 0.5
    ys = y0 + np.arange(size) + 0.5
    dist = _bilinear(scene.dist, ds, xs, ys)
    dist += _texture(tex, "edge", x0, y0, size) * np.float32(_EDGE_NOISE_PX * 2.0)
    t = np.clip(dist * np.float32(1 / 2.5) + np.float32(0.5), 0.0, 1.0)
    alpha = t * t * (3 - 2 * t)
    fib = _texture(tex, "fibre", x0, y0, size)
    mid = _texture(tex, "mid", x0, y0, size)
    big = _texture(tex, "big", x0, y0, size)
    eos = _bilinear(scene.eosin, ds, xs, ys)
    eos *= 0.82 + 0.45 * mid + 0.35 * fib + 0.01 * grain
    # loose stroma and small clefts: pale wavy gaps where the coarse noise is low
    eos *= np.clip(1.9 + 2.5 * big + 0.5 * fib, 0.15, 1.0)
    hema = 0.05 + 0.05 * mid
    if nuclei.size:
        _draw_nuclei(nuclei, x0, y0, size, hema, eos, alpha, fib)
    np.maximum(eos, 0, out=eos)
    out = np.empty((size, size, 3), dtype=np.uint8)
    for c in range(3):  # planar: broadcasting over a trailing axis of 3 is slow in numpy
        od = hema * (-_LN10 * _H_OD[c])
        od += eos * (-_LN10 * _E_OD[c])
        od *= alpha
        od += -_LN10 * _GLASS_OD[c]
        np.exp(od, out=od)
        od *= np.float32(255.0)
        od += grain
        od += np.float32(0.5)
        out[..., c] = np.clip(od, 0, 255, out=od)
    return out


def _nuclei_window(nuclei: np.ndarray, key: int, lo: float, hi: float) -> np.ndarray:
    """Nuclei whose column `key` lies in [lo, hi); `nuclei` must be sorted by that column."""
    col = nuclei[:, key]
    return nuclei[np.searchsorted(col, lo, "left") : np.searchsorted(col, hi, "left")]


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Box-filter an RGB uint8 image by an integer factor (edges padded by replication)."""
    h, w = a.shape[:2]
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="edge")
    rows = a[0::f].astype(np.uint16)
    for k in range(1, f):
        rows += a[k::f]
    out = rows[:, 0::f].copy()
    for k in range(1, f):
        out += rows[:, k::f]
    out += (f * f) // 2
    out //= f * f
    return out.astype(np.uint8)


def _level0_tiles(scene: _Scene, tile: int, level1: np.ndarray) -> Iterator[np.ndarray]:
    """Yield level-0 tiles row by row; fill `level1` (the 4x reduced image) as a side effect."""
    nuclei = scene.nuclei
    margin = _MAX_RADIUS_UM / scene.mpp + 3.0
    f = LEVEL_FACTOR
    sub = tile // f
    for y0 in range(0, scene.height, tile):
        row = _nuclei_window(nuclei, 1, y0 - margin, y0 + tile + margin)
        row = row[np.argsort(row[:, 0], kind="stable")]
        for x0 in range(0, scene.width, tile):
            here = _nuclei_window(row, 0, x0 - margin, x0 + tile + margin)
            rgb = _render_tile(scene, here, x0, y0, tile)
            ly, lx = y0 // f, x0 // f
            small = _block_mean(rgb, f)
            dst = level1[ly : ly + sub, lx : lx + sub]
            dst[...] = small[: dst.shape[0], : dst.shape[1]]
            yield rgb


def _pyramid_dims(width: int, height: int) -> list[tuple[int, int]]:
    dims = [(width, height)]
    while max(dims[-1]) > MIN_LEVEL_SIZE:
        w, h = dims[-1]
        dims.append((math.ceil(w / LEVEL_FACTOR), math.ceil(h / LEVEL_FACTOR)))
    return dims


def _rle(mask: np.ndarray) -> list[int]:
    """Run lengths of a flattened bool mask, starting with a (possibly empty) run of False."""
    flat = mask.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    return [int(r) for r in runs]


def _unrle(runs: list[int], shape: tuple[int, int]) -> np.ndarray:
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(shape)


def _truth_path(path: Path) -> Path:
    return path.with_name(path.name + ".truth.json")


def write_demo_slide(
    path: str | Path,
    *,
    width: int = 8192,
    height: int = 6144,
    mpp: float = 0.5,
    seed: int = 0,
    tile: int = 256,
    tissue: bool = True,
    tissue_fraction: float | None = None,
) -> DemoTruth:
    """Write a synthetic H&E slide OpenSlide opens as `aperio`, plus `<path>.truth.json`.

    `tissue=False` (or `tissue_fraction=0`) writes an empty slide (glass only, no nuclei);
    otherwise a seeded fraction of 0.30-0.45 of the slide is tissue unless `tissue_fraction` says.
    """
    import tifffile

    path = Path(path)
    if width < 16 or height < 16:
        msg = f"demo slide {path}: width and height must be at least 16 px, got {width}x{height}"
        raise ValueError(msg)
    if not (math.isfinite(mpp) and 0.05 <= mpp <= 50):
        msg = f"demo slide {path}: mpp must be between 0.05 and 50 µm/px, got {mpp}"
        raise ValueError(msg)
    if tile < 16 or tile % 16:
        msg = f"demo slide {path}: tile must be a positive multiple of 16, got {tile}"
        raise ValueError(msg)
    if tissue_fraction is not None and not 0.0 <= tissue_fraction <= 0.9:
        msg = f"demo slide {path}: tissue_fraction must be in [0, 0.9], got {tissue_fraction}"
        raise ValueError(msg)

    rng = np.random.default_rng([seed, 0x5EED])
    drawn_fraction = float(rng.uniform(0.30, 0.45))
    fraction = drawn_fraction if tissue_fraction is None else tissue_fraction
    if not tissue:
        fraction = 0.0
    scene = _build_scene(width, height, mpp, seed, fraction, tile)
    dims = _pyramid_dims(width, height)
    f = LEVEL_FACTOR
    l1w, l1h = math.ceil(width / f), math.ceil(height / f)
    level1_full = np.empty((l1h, l1w, 3), dtype=np.uint8)  # the only full-slide buffer (1/16)

    header = f"Aperio Image Library v12.0.0 \n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile})"
    meta = f"AppMag = 20|MPP = {mpp:.4f}|Filename = wsidesk-demo|Title = wsidesk synthetic demo slide"
    common: dict[str, Any] = {"photometric": "rgb", "metadata": None, "software": False}
    tiled: dict[str, Any] = {
        **common,
        "tile": (tile, tile),
        "compression": "jpeg",
        "compressionargs": {"level": JPEG_QUALITY},
        "subfiletype": 0,
    }
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    bigtiff = width * height * 3 > 2**31
    try:
        with tifffile.TiffWriter(part, bigtiff=bigtiff) as tif:
            tif.write(
                _level0_tiles(scene, tile, level1_full),
                shape=(height, width, 3),
                dtype=np.uint8,
                description=f"{header} JPEG/RGB Q={JPEG_QUALITY}|{meta}",
                **tiled,
            )
            level = level1_full[:l1h, :l1w]
            thumb = _thumbnail(level, THUMBNAIL_SIZE)
            tif.write(
                thumb,
                rowsperstrip=16,
                compression="zlib",
                description=f"{header} -> {thumb.shape[1]}x{thumb.shape[0]} - |{meta}",
                **common,
            )
            for k, (lw, lh) in enumerate(dims[1:], start=1):
                if k > 1:
                    level = _block_mean(level, f)[:lh, :lw]
                tif.write(
                    np.ascontiguousarray(level),
                    description=f"{header} -> {lw}x{lh} JPEG/RGB Q={JPEG_QUALITY}",
                    **tiled,
                )
        del level1_full, level
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)

    mask = scene.dist >= 0
    rows = min(mask.shape[0], height // scene.ds + 1)
    cols = min(mask.shape[1], width // scene.ds + 1)
    measured = float(mask[:rows, :cols].mean()) if fraction > 0 else 0.0
    n = scene.nuclei
    truth = {
        "format": "wsidesk-demo-truth/1",
        "width": width,
        "height": height,
        "mpp": mpp,
        "seed": seed,
        "tile": tile,
        "level_dimensions": [list(d) for d in dims],
        "nuclei_fields": "x, y: centre; rx, ry: semi-axes; angle: degrees, rx axis from +x towards +y (level-0 px)",
        "nuclei": [
            {
                "x": round(float(x), 2),
                "y": round(float(y), 2),
                "rx": round(float(rx), 2),
                "ry": round(float(ry), 2),
                "angle": round(math.degrees(a), 2),
            }
            for x, y, rx, ry, a in n[:, :5]
        ],
        "tissue": {
            "downsample": scene.ds,
            "shape": list(mask.shape),
            "fraction": round(measured, 4),
            "description": "mask[i][j] is level-0 point (j*downsample, i*downsample); rle: run "
            "lengths of the row-major mask, alternating false/true, starting with false",
            "rle": _rle(mask),
        },
    }
    truth_path = _truth_path(path)
    tmp = truth_path.with_name(truth_path.name + ".part")
    tmp.write_text(json.dumps(truth, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, truth_path)
    logger.info("wrote demo slide %s (%dx%d, %d nuclei)", path, width, height, len(n))
    return DemoTruth(
        path=path,
        truth_path=truth_path,
        width=width,
        height=height,
        mpp=mpp,
        seed=seed,
        n_nuclei=len(n),
        tissue_fraction=measured,
        level_dimensions=tuple(dims),
    )


def _thumbnail(level: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    h, w = level.shape[:2]
    scale = min(1.0, size / max(w, h))
    if scale >= 1.0:
        return np.ascontiguousarray(level)
    out = Image.fromarray(np.ascontiguousarray(level)).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX
    )
    return np.asarray(out)


def load_truth(path: str | Path) -> DemoGroundTruth:
    """Load the ground truth of a demo slide (give the slide path or the `.truth.json` path)."""
    from wsidesk.core.errors import SlideError

    path = Path(path)
    truth_path = path if path.name.endswith(".truth.json") else _truth_path(path)
    try:
        data = json.loads(truth_path.read_text(encoding="utf-8"))
        nuclei = np.array(
            [[d["x"], d["y"], d["rx"], d["ry"], d["angle"]] for d in data["nuclei"]], dtype=float
        ).reshape(-1, 5)
        t = data["tissue"]
        shape = (int(t["shape"][0]), int(t["shape"][1]))
        mask = _unrle(t["rle"], shape)
        extra = {k: v for k, v in data.items() if k not in {"nuclei", "tissue"}}
        return DemoGroundTruth(
            width=int(data["width"]),
            height=int(data["height"]),
            mpp=float(data["mpp"]),
            seed=int(data["seed"]),
            nuclei=nuclei,
            tissue_downsample=int(t["downsample"]),
            tissue_mask=mask,
            tissue_fraction=float(t["fraction"]),
            extra=extra,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"cannot read demo slide truth {truth_path}: {exc}"
        raise SlideError(msg) from exc
