"""The tile plan: a grid of tile cores at the model's µm/px, each marked tissue ("pending") or skipped."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsidesk.core.fileio import atomic_write
from wsidesk.core.slide.reader import SlideReader, require_mpp
from wsidesk.core.tiling.tissue import TissueMask, detect_tissue, mask_thumbnail_size

logger = logging.getLogger(__name__)

TILE_STATES = ("pending", "skipped", "done", "failed")
TILES_JSON_VERSION = 1


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile core in level-0 px; its padded read region comes from the plan's padding."""

    index: int
    row: int
    col: int
    x: int
    y: int
    w: int
    h: int
    tissue: float  # tissue fraction of the padded region
    state: str = "pending"

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0:
            msg = f"tile {self.index} has an empty core {self.w}x{self.h}"
            raise ValueError(msg)
        if self.state not in TILE_STATES:
            msg = f"tile {self.index} has unknown state {self.state!r}; expected one of {TILE_STATES}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class TilePlan:
    """Tiles covering a whole slide. `tile_size` and `padding` are px at `target_mpp`."""

    slide_path: str
    slide_width: int
    slide_height: int
    slide_mpp: float
    target_mpp: float
    tile_size: int
    padding: int
    downsample: float  # level-0 px per target px
    tiles: tuple[Tile, ...]
    min_tissue: float = 0.0
    regions: tuple[str, ...] = ()  # names of the regions (roi) the plan is limited to; () = the whole slide
    region_digest: str = ""  # identifies those regions' shapes (see annotations.regions.Regions.digest)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiles", tuple(self.tiles))
        object.__setattr__(self, "regions", tuple(self.regions))
        if self.tile_size <= 0 or self.padding < 0:
            msg = f"tile size must be > 0 and padding >= 0, got {self.tile_size} and {self.padding}"
            raise ValueError(msg)
        if self.slide_mpp <= 0 or self.target_mpp <= 0 or self.downsample <= 0:
            msg = f"µm/px must be positive: slide {self.slide_mpp}, target {self.target_mpp}"
            raise ValueError(msg)

    @property
    def dimensions(self) -> tuple[int, int]:
        return (self.slide_width, self.slide_height)

    @property
    def step(self) -> float:
        """Level-0 px between tile origins."""
        return self.tile_size * self.downsample

    @property
    def padding_level0(self) -> int:
        """Context read on each side of a core, in level-0 px (rounded up)."""
        return math.ceil(self.padding * self.downsample - 1e-9)

    @property
    def total(self) -> int:
        return len(self.tiles)

    @property
    def tissue(self) -> int:
        return sum(1 for t in self.tiles if t.state != "skipped")

    @property
    def skipped(self) -> int:
        return sum(1 for t in self.tiles if t.state == "skipped")

    @property
    def tissue_tiles(self) -> tuple[Tile, ...]:
        return tuple(t for t in self.tiles if t.state != "skipped")

    def padded_region(self, tile: Tile) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the core plus padding in level-0 px; may extend past the slide (reads white)."""
        p = self.padding_level0
        return (tile.x - p, tile.y - p, tile.w + 2 * p, tile.h + 2 * p)

    def to_json(self) -> dict[str, Any]:
        """The CONTRACT's tiles.json document."""
        return {
            "version": TILES_JSON_VERSION,
            "slide": {
                "path": self.slide_path,
                "width": self.slide_width,
                "height": self.slide_height,
                "mpp": self.slide_mpp,
            },
            "tile_size": self.tile_size,
            "padding": self.padding,
            "mpp": self.target_mpp,  # the resolution tile_size and padding are measured at
            "target_mpp": self.target_mpp,
            "slide_mpp": self.slide_mpp,
            "downsample": self.downsample,
            "padding_level0": self.padding_level0,
            "min_tissue": self.min_tissue,
            "total": self.total,
            "tissue": self.tissue,
            "skipped": self.skipped,
            **({"regions": {"names": list(self.regions), "digest": self.region_digest}} if self.regions else {}),
            "tiles": [
                {
                    "index": t.index,
                    "row": t.row,
                    "col": t.col,
                    "x": t.x,
                    "y": t.y,
                    "w": t.w,
                    "h": t.h,
                    "state": t.state,
                    "tissue": t.tissue,
                }
                for t in self.tiles
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TilePlan:
        try:
            slide = data["slide"]
            tiles = tuple(
                Tile(
                    index=int(t["index"]),
                    row=int(t["row"]),
                    col=int(t["col"]),
                    x=int(t["x"]),
                    y=int(t["y"]),
                    w=int(t["w"]),
                    h=int(t["h"]),
                    tissue=float(t.get("tissue", 0.0)),
                    state=str(t["state"]),
                )
                for t in data["tiles"]
            )
            return cls(
                slide_path=str(slide["path"]),
                slide_width=int(slide["width"]),
                slide_height=int(slide["height"]),
                slide_mpp=float(data.get("slide_mpp", slide["mpp"])),
                target_mpp=float(data.get("target_mpp", data["mpp"])),
                tile_size=int(data["tile_size"]),
                padding=int(data["padding"]),
                downsample=float(data["downsample"]),
                tiles=tiles,
                min_tissue=float(data.get("min_tissue", 0.0)),
                regions=tuple(str(n) for n in data.get("regions", {}).get("names", ())),
                region_digest=str(data.get("regions", {}).get("digest", "")),
            )
        except (KeyError, TypeError) as exc:
            msg = f"not a tile plan (tiles.json): missing or invalid {exc}"
            raise ValueError(msg) from exc

    def write_json(self, path: str | Path) -> Path:
        """Write tiles.json atomically (a reader never sees half a file)."""
        return write_plan_json(self.to_json(), Path(path))

    @classmethod
    def read_json(cls, path: str | Path) -> TilePlan:
        with Path(path).open(encoding="utf-8") as f:
            return cls.from_json(json.load(f))


def plan_tiles(
    reader: SlideReader,
    *,
    tile_size: int = 512,
    padding: int = 80,
    target_mpp: float = 0.5,
    min_tissue: float = 0.0,
    mpp: float | None = None,
    thumbnail_size: int | None = None,
    mask: TissueMask | None = None,
) -> TilePlan:
    """Tile plan of a slide. A tile is kept when the tissue fraction of its padded region > `min_tissue`.

    Without `mask` the tissue mask is detected on a thumbnail (`thumbnail_size` px, else ~4 µm/px).
    """
    if tile_size <= 0:
        msg = f"tile size must be a positive number of pixels, got {tile_size}"
        raise ValueError(msg)
    if padding < 0:
        msg = f"padding must be >= 0 pixels, got {padding}"
        raise ValueError(msg)
    if target_mpp is None or target_mpp <= 0:
        msg = f"target µm/px (--target-mpp) must be positive, got {target_mpp}"
        raise ValueError(msg)
    if not 0.0 <= min_tissue < 1.0:
        msg = f"min tissue (--min-tissue) is a fraction in [0, 1), got {min_tissue}"
        raise ValueError(msg)
    slide_mpp = require_mpp(reader, mpp)
    width, height = reader.dimensions
    if mask is None:
        size = thumbnail_size or mask_thumbnail_size((width, height), slide_mpp)
        mask = TissueMask.for_slide(detect_tissue(reader.thumbnail(size)), (width, height))

    downsample = float(target_mpp) / slide_mpp
    step = tile_size * downsample
    xs = _edges(width, step)
    ys = _edges(height, step)
    cols, rows = len(xs) - 1, len(ys) - 1
    x0 = np.tile(xs[:-1], rows)
    y0 = np.repeat(ys[:-1], cols)
    w = np.tile(np.diff(xs), rows)
    h = np.repeat(np.diff(ys), cols)

    pad = math.ceil(padding * downsample - 1e-9)
    # The padded region is what the model sees, so its tissue decides; clip it to the slide so that edge
    # tiles are not diluted by the glass-coloured area outside.
    px0 = np.maximum(x0 - pad, 0)
    py0 = np.maximum(y0 - pad, 0)
    px1 = np.minimum(x0 + w + pad, width)
    py1 = np.minimum(y0 + h + pad, height)
    frac = mask.fractions(px0, py0, px1 - px0, py1 - py0)
    keep = frac > min_tissue

    rr = np.repeat(np.arange(rows), cols)
    cc = np.tile(np.arange(cols), rows)
    states = np.where(keep, "pending", "skipped")
    tiles = tuple(
        Tile(i, r, c, xx, yy, ww, hh, f, s)
        for i, (r, c, xx, yy, ww, hh, f, s) in enumerate(
            zip(
                rr.tolist(),
                cc.tolist(),
                x0.tolist(),
                y0.tolist(),
                w.tolist(),
                h.tolist(),
                frac.tolist(),
                states.tolist(),
                strict=True,
            )
        )
    )
    plan = TilePlan(
        slide_path=str(reader.path),
        slide_width=int(width),
        slide_height=int(height),
        slide_mpp=slide_mpp,
        target_mpp=float(target_mpp),
        tile_size=int(tile_size),
        padding=int(padding),
        downsample=downsample,
        tiles=tiles,
        min_tissue=float(min_tissue),
    )
    logger.info(
        "planned %d tiles (%d tissue, %d skipped) of %d px at %.3f µm/px on %s",
        plan.total,
        int(keep.sum()),
        plan.total - int(keep.sum()),
        tile_size,
        target_mpp,
        reader.path,
    )
    return plan


def _edges(length: int, step: float) -> np.ndarray:
    """Integer tile edges 0 = e0 < e1 < ... < en = length, e_i = round(i * step)."""
    n = max(1, math.ceil(length / step - 1e-9))
    edges = np.round(np.arange(n + 1) * step).astype(np.int64)
    edges[-1] = length
    edges = np.minimum(edges, length)
    return np.unique(edges)  # drops a zero-width last tile that rounding could make


def render_tissue_png(
    thumbnail: np.ndarray,
    mask: TissueMask | np.ndarray,
    plan: TilePlan,
    path: str | Path,
) -> Path:
    """Save the thumbnail with the tissue mask tinted green and the tile grid (tissue tiles in blue)."""
    from PIL import Image, ImageDraw

    path = Path(path)
    rgb = np.asarray(thumbnail)[:, :, :3].astype(np.uint8)
    m = mask.mask if isinstance(mask, TissueMask) else np.asarray(mask, dtype=bool)
    if m.shape != rgb.shape[:2]:
        # Nearest-neighbour resize so the tint lines up with the thumbnail.
        ri = (np.arange(rgb.shape[0]) * m.shape[0] // max(rgb.shape[0], 1)).clip(0, m.shape[0] - 1)
        ci = (np.arange(rgb.shape[1]) * m.shape[1] // max(rgb.shape[1], 1)).clip(0, m.shape[1] - 1)
        m = m[ri][:, ci]
    tinted = rgb.astype(np.float32)
    green = np.array([40.0, 200.0, 60.0], dtype=np.float32)
    tinted[m] = 0.65 * tinted[m] + 0.35 * green
    base = Image.fromarray(tinted.astype(np.uint8), "RGB").convert("RGBA")

    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    sx = base.size[0] / plan.slide_width
    sy = base.size[1] / plan.slide_height
    skipped_colour = (120, 120, 120, 45)
    tissue_colour = (20, 60, 230, 200)
    for tile in sorted(plan.tiles, key=lambda t: t.state != "skipped"):  # tissue outlines drawn on top
        box = (
            tile.x * sx,
            tile.y * sy,
            max((tile.x + tile.w) * sx - 1, tile.x * sx),
            max((tile.y + tile.h) * sy - 1, tile.y * sy),
        )
        draw.rectangle(box, outline=skipped_colour if tile.state == "skipped" else tissue_colour)
    image = Image.alpha_composite(base, overlay).convert("RGB")

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_plan_json(doc: dict[str, Any], path: Path) -> Path:
    """Write a tiles.json document (a plan's to_json(), possibly with run state added) atomically."""
    with atomic_write(path) as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    return path
