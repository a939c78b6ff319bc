"""Label tile -> cells, with the rules that make the final cell set independent of the tile grid.

As in QuPath's InstanSeg extension: an object touching an inner edge of the padded tile is cut, so it
is dropped (a neighbouring tile sees it whole); an object is kept only by the tile whose core holds its
centroid. With padding at least the object size, each object is kept exactly once and never cut.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from wsidesk.core.segment.cells import Cell
from wsidesk.core.segment.measure import combine, moment_measurements, stain_measurements
from wsidesk.core.tiling.grid import Tile, TilePlan

logger = logging.getLogger(__name__)

SIMPLIFY_TOLERANCE_PX = 0.5  # Douglas-Peucker tolerance in label px: drops the staircase, keeps shape


def extract_cells(
    labels: np.ndarray,
    rgb: np.ndarray | None,
    *,
    tile: Tile,
    plan: TilePlan,
    origin: tuple[float, float],
    scale: float,
) -> list[Cell]:
    """Cells of one padded label tile, in level-0 px; see the module docstring for which are kept.

    `labels` (H, W) integer instance ids (0 = background) at the target resolution, `rgb` (H, W, 3)
    uint8 the same pixels (None skips stain measurements), `origin` the level-0 (x, y) of the top-left
    corner of labels pixel (0, 0), `scale` level-0 px per label px.
    """
    import shapely

    labels = np.asarray(labels)
    if labels.ndim != 2:
        msg = f"tile {tile.index}: labels must be a 2-D array, got shape {labels.shape}"
        raise ValueError(msg)
    if rgb is not None and np.asarray(rgb).shape[:2] != labels.shape:
        msg = f"tile {tile.index}: rgb {np.asarray(rgb).shape} does not match labels {labels.shape}"
        raise ValueError(msg)
    if scale <= 0:
        msg = f"tile {tile.index}: scale (level-0 px per label px) must be positive, got {scale}"
        raise ValueError(msg)
    lab, n = consecutive_labels(labels)
    if n == 0:
        return []
    height, width = lab.shape
    ox, oy = float(origin[0]), float(origin[1])

    drop = np.zeros(n + 1, dtype=bool)
    for edge_is_inner, line in zip(
        inner_edges(origin=(ox, oy), shape=(height, width), scale=scale, plan=plan),
        (lab[:, 0], lab[0, :], lab[:, -1], lab[-1, :]),
        strict=True,
    ):
        if edge_is_inner:
            drop[line] = True
    drop[0] = True

    moments = moment_measurements(lab, n, select=~drop)
    cx = ox + (moments["col"] + 0.5) * scale
    cy = oy + (moments["row"] + 0.5) * scale
    keep = (
        ~drop
        & (moments["area"] > 0)
        & (cx >= tile.x)
        & (cx < tile.x + tile.w)
        & (cy >= tile.y)
        & (cy < tile.y + tile.h)
    )
    if not keep.any():
        return []
    stains = stain_measurements(lab, rgb, n, select=keep) if rgb is not None else None

    kept, coords, ring_start = trace_outlines(lab, keep)
    # Shape measures on the unsimplified outline (marching squares through crack-edge midpoints).
    nxt = np.roll(coords, -1, axis=0)
    last = np.append(ring_start[1:], len(coords)) - 1
    nxt[last] = coords[ring_start]
    ring_of = np.repeat(np.arange(len(ring_start)), np.diff(np.append(ring_start, len(coords))))
    seg = nxt - coords
    perimeter = np.bincount(ring_of, np.hypot(seg[:, 0], seg[:, 1]), len(ring_start))
    poly_area = np.abs(np.bincount(ring_of, coords[:, 0] * nxt[:, 1] - nxt[:, 0] * coords[:, 1], len(ring_start))) / 2
    geoms = shapely.polygons(shapely.linearrings(coords, indices=ring_of))
    simple = shapely.simplify(geoms, SIMPLIFY_TOLERANCE_PX, preserve_topology=False)
    bad = ~shapely.is_valid(simple) | (shapely.get_num_coordinates(simple) < 4)
    if bad.any():  # plain Douglas-Peucker can fold a thin part over itself: keep those unsimplified
        simple[bad] = geoms[bad]
    simple = _fix_invalid(simple)
    hull_area = shapely.area(shapely.convex_hull(simple))
    exterior = shapely.get_exterior_ring(simple)
    flat, index = shapely.get_coordinates(exterior, return_index=True)
    flat = flat * scale
    flat[:, 0] += ox
    flat[:, 1] += oy
    splits = np.flatnonzero(np.diff(index)) + 1
    mpp = float(plan.target_mpp)

    cells: list[Cell] = []
    for i, (k, ring) in enumerate(zip(kept.tolist(), np.split(flat, splits), strict=True)):
        ring = ring[:-1]  # Cell rings are not closed
        cells.append(
            Cell(
                polygon=ring,
                centroid=(float(cx[k]), float(cy[k])),
                bbox=(
                    float(ring[:, 0].min()),
                    float(ring[:, 1].min()),
                    float(ring[:, 0].max()),
                    float(ring[:, 1].max()),
                ),
                tile=tile.index,
                measurements=combine(
                    moments=moments,
                    stains=stains,
                    label=k,
                    perimeter_px=float(perimeter[i]),
                    polygon_area_px=float(poly_area[i]),
                    hull_area_px=float(hull_area[i]),
                    mpp=mpp,
                ),
            )
        )
    return cells


_DX = np.array([1, 0, -1, 0])  # directions E, S, W, N in image coordinates (y down)
_DY = np.array([0, 1, 0, -1])


def trace_outlines(labels: np.ndarray, select: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outer outline of every selected object of a consecutive label image, all objects at once.

    Returns (label of each ring, (N, 2) x, y vertices in label px with pixel (r, c) covering
    [c, c + 1) x [r, r + 1), start offset of each ring). Vertices are the midpoints of the object's
    crack edges, i.e. marching squares at 0.5 on its mask; diagonal neighbours are joined
    (8-connectivity) without the ring touching itself. An object in several pieces keeps its largest.
    """
    height, width = labels.shape
    padded = np.zeros((height + 2, width + 2), dtype=np.int32)
    padded[1:-1, 1:-1] = np.where(select, np.arange(len(select), dtype=np.int32), 0)[labels]
    ncx = width + 3  # corners per row of the padded image

    # Crack edges, walked with the object on the right-hand side:
    # top side of a pixel east from (j, i+1), bottom side west from (j+1, i+1),
    # left side north from (j+1, i+1), right side south from (j+1, i) (padded corner coordinates).
    parts = []
    upper, lower = padded[:-1, :], padded[1:, :]
    ii, jj = np.nonzero(upper != lower)
    a, b = upper[ii, jj], lower[ii, jj]
    m = b != 0
    parts.append((b[m], jj[m], ii[m] + 1, 0))
    m = a != 0
    parts.append((a[m], jj[m] + 1, ii[m] + 1, 2))
    left, right = padded[:, :-1], padded[:, 1:]
    ii, jj = np.nonzero(left != right)
    a, b = left[ii, jj], right[ii, jj]
    m = b != 0
    parts.append((b[m], jj[m] + 1, ii[m] + 1, 3))
    m = a != 0
    parts.append((a[m], jj[m] + 1, ii[m], 1))
    lab = np.concatenate([p[0] for p in parts]).astype(np.int64)
    sx = np.concatenate([p[1] for p in parts])
    sy = np.concatenate([p[2] for p in parts])
    direction = np.concatenate([np.full(len(p[0]), p[3], np.int8) for p in parts])
    ex, ey = sx + _DX[direction], sy + _DY[direction]
    n_edges = len(lab)
    n_vertices = (height + 3) * ncx
    start_key = lab * n_vertices + sy * ncx + sx
    end_key = lab * n_vertices + ey * ncx + ex

    # Successor: the edge of the same object leaving the end corner; at a saddle corner (two diagonal
    # pixels) take the left turn, which joins the diagonal pixels.
    order = np.argsort(start_key, kind="stable")
    sorted_keys = start_key[order]
    pos = np.searchsorted(sorted_keys, end_key)
    succ = order[pos]
    second = np.minimum(pos + 1, n_edges - 1)
    saddle = (pos + 1 < n_edges) & (sorted_keys[second] == end_key)
    if saddle.any():
        alt = order[second]
        left_turn = (direction.astype(np.int64) - 1) % 4
        use_alt = saddle & (direction[succ] != left_turn) & (direction[alt] == left_turn)
        succ = np.where(use_alt, alt, succ)

    # Rings of the successor permutation by pointer jumping: ring id = smallest edge index on it,
    # position = distance to the ring's head.
    rounds = max(1, int(np.ceil(np.log2(max(n_edges, 2)))) + 1)
    ring = np.arange(n_edges)
    jump = succ.copy()
    for _ in range(rounds):
        ring = np.minimum(ring, ring[jump])
        jump = jump[jump]
    head = ring == np.arange(n_edges)
    link = np.where(head[succ], np.arange(n_edges), succ)
    rank = (link != np.arange(n_edges)).astype(np.int64)
    for _ in range(rounds):
        rank = rank + rank[link]
        link = link[link]
    order = np.lexsort((-rank, ring))
    ring_sorted = ring[order]
    mx = (sx[order] + ex[order]) / 2 - 1.0  # corner coordinates of the padded image -> label px
    my = (sy[order] + ey[order]) / 2 - 1.0
    starts = np.flatnonzero(np.r_[True, ring_sorted[1:] != ring_sorted[:-1]])
    ring_index = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n_edges)))

    # Outer rings have positive signed area with this orientation; keep each object's largest.
    nx_ = np.roll(mx, -1)
    ny_ = np.roll(my, -1)
    ends = np.append(starts[1:], n_edges) - 1
    nx_[ends], ny_[ends] = mx[starts], my[starts]
    signed = np.bincount(ring_index, mx * ny_ - nx_ * my, len(starts)) / 2
    ring_lab = lab[order][starts]
    best = np.lexsort((-signed, ring_lab))
    first = np.r_[True, ring_lab[best][1:] != ring_lab[best][:-1]]
    chosen = np.sort(best[first & (signed[best] > 0)])
    chosen_ring = np.zeros(len(starts), dtype=bool)
    chosen_ring[chosen] = True
    take = chosen_ring[ring_index]
    x, y, ri = mx[take], my[take], ring_index[take]

    # Drop collinear vertices (straight pixel runs); exact on these half-integer coordinates.
    r_starts = np.flatnonzero(np.r_[True, ri[1:] != ri[:-1]])
    r_ends = np.append(r_starts[1:], len(ri)) - 1
    px_, py_ = np.roll(x, 1), np.roll(y, 1)
    px_[r_starts], py_[r_starts] = x[r_ends], y[r_ends]
    qx, qy = np.roll(x, -1), np.roll(y, -1)
    qx[r_ends], qy[r_ends] = x[r_starts], y[r_starts]
    corner = (x - px_) * (qy - y) - (y - py_) * (qx - x) != 0
    x, y, ri = x[corner], y[corner], ri[corner]
    new_starts = np.flatnonzero(np.r_[True, ri[1:] != ri[:-1]])
    return ring_lab[chosen], np.column_stack((x, y)), new_starts


def inner_edges(
    *, origin: tuple[float, float], shape: tuple[int, int], scale: float, plan: TilePlan
) -> tuple[bool, bool, bool, bool]:
    """(left, top, right, bottom): whether each edge of a label image lies inside the slide.

    An edge within half a label pixel of the slide border (or beyond it) is a slide edge: nothing more
    of an object touching it could be seen by another tile.
    """
    height, width = shape
    ox, oy = origin
    tol = 0.5 * scale
    return (
        ox > tol,
        oy > tol,
        ox + width * scale < plan.slide_width - tol,
        oy + height * scale < plan.slide_height - tol,
    )


def consecutive_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel arbitrary non-negative ids to 1..n (int32, 0 stays background); returns (labels, n)."""
    if labels.dtype.kind not in "iub":
        msg = f"labels must be integers, got {labels.dtype}"
        raise ValueError(msg)
    flat = labels.ravel()
    if flat.size == 0:
        return np.zeros(labels.shape, np.int32), 0
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0:
        msg = f"labels must be >= 0 (0 = background), got {lo}"
        raise ValueError(msg)
    if hi == 0:
        return np.zeros(labels.shape, np.int32), 0
    if hi <= 4 * flat.size:  # a lookup table is much faster than sorting
        labels = labels.astype(np.intp, copy=False)
        present = np.bincount(labels.ravel(), minlength=hi + 1) > 0
        present[0] = False
        lut = np.cumsum(present, dtype=np.int32)
        lut[~present] = 0
        return lut[labels], int(lut[-1])
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(labels.shape).astype(np.int32), int(len(ids) - (ids[0] == 0))


def _fix_invalid(geoms: np.ndarray) -> np.ndarray:
    """Replace invalid polygons by the largest polygon of their valid form (QuPath needs simple rings)."""
    import shapely

    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    for i in invalid.tolist():
        fixed = shapely.make_valid(geoms[i])
        parts: Sequence[shapely.Geometry] = [g for g in shapely.get_parts(fixed) if g.geom_type == "Polygon"]
        if parts:
            largest = max(parts, key=lambda g: g.area)
            geoms[i] = shapely.Polygon(largest.exterior)
        else:
            geoms[i] = shapely.convex_hull(geoms[i])
    return geoms


__all__ = ["SIMPLIFY_TOLERANCE_PX", "consecutive_labels", "extract_cells", "inner_edges", "trace_outlines"]
