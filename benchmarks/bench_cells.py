"""Cell store at slide scale: write, open, sort, filter, classify; and the store format chosen by measurement.

    .venv/bin/python benchmarks/bench_cells.py [--cells 1000000] [--formats]

Synthesises cells on a jittered grid (ellipse outlines with 10-22 vertices, 9 measurements, like a
segment result) straight into columns, writes the result's cell store and times what the app does with
it. Targets (issue 13): open < 2 s, sort a column < 1 s, apply a filter or a class rule < 1 s.
`--formats` also writes the same cells as numpy .npz, Arrow IPC memory-mapped and GeoParquet (shapely
WKB) and times writing and opening each (how the store's format was chosen); `--from-cells N` times
the segment job's path from Cell objects.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wsidesk.core.cells.classes import ClassRule, classify
from wsidesk.core.cells.export import export_cells
from wsidesk.core.cells.expression import compile_filter
from wsidesk.core.cells.store import CellTable, open_cells, save_table, table_from_cells
from wsidesk.core.segment.measure import MEASUREMENTS


def synthetic_table(n: int, *, seed: int = 0) -> CellTable:
    """n cells on a jittered 14 µm grid, ellipse outlines of 10-22 vertices, gamma-distributed measurements."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    x = 30.0 * (np.arange(n) % side) + rng.uniform(-3, 3, n) + 1000
    y = 30.0 * (np.arange(n) // side) + rng.uniform(-3, 3, n) + 1000
    k = rng.integers(10, 23, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(k, out=offsets[1:])
    owner = np.repeat(np.arange(n), k)
    rank = np.arange(offsets[-1]) - offsets[owner]
    t = 2 * np.pi * rank / k[owner]
    rx, ry = rng.uniform(4, 9, n), rng.uniform(3, 7, n)
    xy = np.column_stack((x[owner] + rx[owner] * np.cos(t), y[owner] + ry[owner] * np.sin(t)))
    columns = {name: rng.gamma(2.0, 10.0, n) for name in MEASUREMENTS}
    columns["hematoxylin_od_mean"] = rng.uniform(0, 0.8, n)
    return CellTable(
        ids=np.arange(1, n + 1),
        x=x,
        y=y,
        columns=columns,
        poly_offsets=offsets,
        poly_cpx=np.round(xy * 100).astype(np.int32),
        tile=(np.arange(n) // 400).astype(np.int32),
    )


def timed(label: str, fn: Callable[[], Any], *, target: float | None = None, repeat: int = 3) -> Any:
    """Best of `repeat` runs, wall and CPU seconds (CPU is steadier on a shared machine), with the target."""
    best, cpu, value = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    verdict = "" if target is None else ("  ok" if best < target else f"  OVER the {target:g} s target")
    print(f"  {label:<46} {best:8.3f} s  (cpu {cpu:7.3f} s){verdict}")
    return value


def bench_store(n: int, folder: Path) -> None:
    table = synthetic_table(n)
    print(f"{n:,} cells, {len(table.poly_cpx):,} vertices")
    path = timed("write cells.arrow (Arrow IPC)", lambda: save_table(table, folder / "cells.arrow"), repeat=1)
    print(f"  {'store size':<46} {path.stat().st_size / 1e6:8.1f} MB")
    opened = timed("open result (open_cells)", lambda: open_cells(folder), target=2.0)
    assert opened.note == "" and len(opened) == n
    timed("sort a column (argsort area_um2)", lambda: np.argsort(opened.columns["area_um2"], kind="stable"), target=1.0)
    text = "area_um2 > 40 and hematoxylin_od_mean > 0.3"
    mask = timed(f"filter: {text}", lambda: compile_filter(text, opened.column_names)(opened), target=1.0)
    rules = [
        ClassRule("Tumor", "#c83232", "area_um2 > 25 and hematoxylin_od_mean > 0.4"),
        ClassRule("Large", "#3264c8", "area_um2 > 25"),
    ]
    timed("classify (2 rules)", lambda: classify(opened, rules), target=1.0)
    timed(f"take the {int(mask.sum()):,} filtered cells", lambda: opened.take(mask))
    timed("cells_in_rect (1000 x 1000 px)", lambda: opened.cells_in_rect(5000, 5000, 6000, 6000))
    timed("poly_xy float32 for drawing", lambda: (setattr(opened, "_poly_xy", None), opened.poly_xy)[1])
    part = opened.take(np.arange(min(n, 100_000)))
    for fmt in ("csv", "geojson"):
        out = folder / f"export.{fmt}"
        timed(
            f"export {len(part):,} cells as {fmt}", lambda fmt=fmt, out=out: export_cells(part, out, fmt=fmt), repeat=1
        )


def bench_formats(n: int, folder: Path) -> None:
    """The same cells as numpy .npz, Arrow IPC memory-mapped, and GeoParquet (the store: Arrow IPC, read)."""
    try:
        import pyarrow as pa
        import pyarrow.feather as feather
        import pyarrow.parquet as pq
        import shapely
    except ImportError as exc:
        print(f"  formats: skipped ({exc})")
        return
    table = synthetic_table(n)
    cols = {
        "id": table.ids,
        "x": table.x,
        "y": table.y,
        "tile": table.tile,
        **table.columns,
    }
    print(f"formats at {n:,} cells (pyarrow {pa.__version__}):")

    def arrow_table() -> Any:
        flat = pa.array(table.poly_cpx.reshape(-1))
        points = pa.FixedSizeListArray.from_arrays(flat, 2)
        rings = pa.ListArray.from_arrays(pa.array(table.poly_offsets), points)
        return pa.table({**cols, "polygon": rings})

    npz = folder / "cells.npz"
    arrays = {**cols, "bbox": table.bbox, "offsets": table.poly_offsets, "xy": table.poly_cpx}
    timed("numpy .npz write (np.savez)", lambda: np.savez(npz, **arrays), repeat=1)

    def open_npz() -> Any:
        with np.load(npz) as z:
            return {k: z[k] for k in z.files}

    timed("numpy .npz open", open_npz)
    print(f"  {'npz size':<46} {npz.stat().st_size / 1e6:8.1f} MB")

    ipc = folder / "mmap.arrow"
    timed(
        "Feather write (uncompressed)",
        lambda: feather.write_feather(arrow_table(), ipc, compression="uncompressed"),
        repeat=1,
    )

    def open_ipc() -> Any:
        t = feather.read_table(ipc, memory_map=True)
        out = {name: t.column(name).to_numpy() for name in cols}
        ring = t.column("polygon").combine_chunks()
        out["offsets"] = ring.offsets.to_numpy()
        out["xy"] = ring.values.values.to_numpy().reshape(-1, 2)
        return out

    timed("Feather open (memory-mapped, to numpy)", open_ipc)
    print(f"  {'Feather size':<46} {ipc.stat().st_size / 1e6:8.1f} MB")

    parquet = folder / "cells.parquet"

    def write_geoparquet() -> None:
        rings = np.vstack([table.poly_cpx / 100.0])
        parts = np.repeat(np.arange(len(table)), np.diff(table.poly_offsets))
        polys = shapely.polygons(shapely.linearrings(rings, indices=parts))
        pq.write_table(pa.table({**cols, "geometry": shapely.to_wkb(polys)}), parquet, compression="snappy")

    timed("GeoParquet write (shapely WKB, snappy)", write_geoparquet, repeat=1)

    def open_geoparquet() -> Any:
        t = pq.read_table(parquet)
        out = {name: t.column(name).to_numpy() for name in cols}
        geoms = shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False))
        out["xy"], out["parts"] = shapely.get_coordinates(shapely.get_exterior_ring(geoms), return_index=True)
        return out

    timed("GeoParquet open (WKB -> coordinates)", open_geoparquet)
    print(f"  {'GeoParquet size':<46} {parquet.stat().st_size / 1e6:8.1f} MB")


def bench_from_cells(n: int, folder: Path) -> None:
    """The segment job's path: Cell objects -> store (what _write_outputs adds after cells.geojson)."""
    from wsidesk.core.cells.store import write_cell_store

    table = synthetic_table(n)
    cells = list(table.iter_cells())
    print(f"segment job path at {n:,} Cell objects:")
    timed("table_from_cells", lambda: table_from_cells(cells), repeat=1)
    timed("write_cell_store (Cells -> cells.arrow)", lambda: write_cell_store(cells, folder), repeat=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--formats", action="store_true", help="also compare .npz, mapped Arrow and GeoParquet")
    parser.add_argument(
        "--from-cells", type=int, default=0, metavar="N", help="time the segment job's write of N Cells"
    )
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"bench_cells: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}, numpy {np.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.cells:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            bench_store(n, folder)
            if args.formats:
                bench_formats(n, folder)
        if args.from_cells:
            bench_from_cells(args.from_cells, Path(tmp))


if __name__ == "__main__":
    main()
