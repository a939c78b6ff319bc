"""Result reuse: the example workflow run twice, one param changed, and a 2 GB slide fingerprinted.

Run::

    python benchmarks/bench_cache.py                      # demo slides at half the Makefile's size, test model
    python benchmarks/bench_cache.py --scale 1 --model brightfield_nuclei --device cuda

What is measured, in this order (one process, thread executor, a fresh data folder in a temp dir):

1. `resources/examples/cells_two_slides.yaml` (tissue, two segment jobs, a CSV export) on two demo slides
   written beside a copy of it (the Makefile's sizes times `--scale`), with `model` overridden by `--model`
   (the bundled test model by default: the real one needs `wsidesk models install`). First run: everything
   computed. Second run, same workflow: seconds, speed-up, tiles segmented (from `tile_batch_done`
   events) and whether every output file is byte-identical to the first run's.
2. The same workflow with one param changed (`min_cell_area` on `cells_b`): which jobs ran, which reused.
3. A ~2 GB tiled TIFF (`--big-gb`; pre-encoded random tiles, four levels 4x apart) written to the temp dir, then
   `slide_fingerprint` in a fresh process (nothing memoised), 3 times; the file is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "resources" / "examples" / "cells_two_slides.yaml"
DEMO_SIZES = {"demo_a.svs": (4096, 3072, 1), "demo_b.svs": (3072, 2048, 2)}  # as the Makefile writes them


def run_workflow(store: Any, workflow: Any) -> tuple[float, str, list[Any]]:
    from wsidesk.core.scheduler.executors import ThreadExecutor
    from wsidesk.core.scheduler.runner import Runner

    events: list[Any] = []
    executor = ThreadExecutor(2)
    runner = Runner(store, executor, sink=events.append)
    start = time.perf_counter()
    run_id = runner.submit(workflow, profile="default")
    runner.wait()
    elapsed = time.perf_counter() - start
    executor.shutdown(wait=True)
    status = runner.run_status(run_id)
    if status != "succeeded":
        msg = f"run {run_id} ended {status}"
        raise SystemExit(msg)
    return elapsed, run_id, events


def tiles_segmented(events: list[Any]) -> int:
    """Tiles the model ran on (each `tile_batch_done` carries its batch's tile indices)."""
    return sum(len(e.batch.tile_indices) for e in events if e.event == "tile_batch_done" and e.batch is not None)


def jobs_by(events: list[Any], name: str) -> list[str]:
    return sorted(e.job_id for e in events if e.event == name)


def outputs_identical(store: Any, first: str, second: str) -> bool:
    a = store.get_run("default", first).run_dir
    b = store.get_run("default", second).run_dir
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.parent != a)
    return all((b / rel).is_file() and (a / rel).read_bytes() == (b / rel).read_bytes() for rel in files)


def write_big_tiff(path: Path, gigabytes: float) -> int:
    """A pyramidal tiled TIFF (4x downsamples, as Aperio writes them) of pre-compressed random tiles."""
    import numpy as np
    import tifffile

    tile = 512
    rng = np.random.default_rng(0)
    encoded = [zlib.compress(rng.integers(0, 255, (tile, tile, 3), dtype=np.uint8).tobytes(), 0) for _ in range(64)]
    per_tile = len(encoded[0])
    tiles = int(gigabytes * 1e9 / per_tile / (1 + 1 / 16 + 1 / 256))
    side = (int(tiles**0.5) + 1) * tile
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for level in range(4):
            n = max(1, side // tile // 4**level)
            data = (encoded[i % 64] for i in range(n * n))
            tif.write(
                data,
                shape=(n * tile, n * tile, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                compression="zlib",
                photometric="rgb",
                subfiletype=1 if level else 0,
                metadata=None,
            )
    return side


def fingerprint_in_fresh_process(path: Path) -> float:
    code = (
        "import time, sys; t = time.perf_counter(); from wsidesk.core.slide.fingerprint import slide_fingerprint; "
        "t0 = time.perf_counter(); slide_fingerprint(sys.argv[1]); print(time.perf_counter() - t0)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5, help="demo slide size, times the Makefile's")
    parser.add_argument("--model", default="wsidesk_test_nuclei")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--big-gb", type=float, default=2.0, help="size of the slide to fingerprint (GB)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from dataclasses import replace

    from wsidesk.core.slide.demo import write_demo_slide
    from wsidesk.core.store import Store
    from wsidesk.core.workflow.io import loads_workflow

    figures: dict[str, Any] = {"scale": args.scale, "model": args.model, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="wsidesk-bench-cache-") as tmp:
        root = Path(tmp)
        (root / "demo").mkdir()
        for name, (w, h, seed) in DEMO_SIZES.items():
            write_demo_slide(root / "demo" / name, width=int(w * args.scale), height=int(h * args.scale), seed=seed)
        copy = root / "resources" / "examples" / EXAMPLE.name  # the same relative image paths as in the repo
        copy.parent.mkdir(parents=True)
        copy.write_text(EXAMPLE.read_text())
        wf = loads_workflow(copy.read_text(), file=copy)
        wf = replace(wf, defaults={**wf.defaults, "model": args.model, "device": args.device})
        store = Store(root / "data")

        t1, first, ev1 = run_workflow(store, wf)
        t2, second, ev2 = run_workflow(store, wf)
        figures["first_run_s"] = round(t1, 3)
        figures["second_run_s"] = round(t2, 3)
        figures["speedup"] = round(t1 / t2, 1)
        figures["tiles_segmented"] = {"first": tiles_segmented(ev1), "second": tiles_segmented(ev2)}
        figures["second_run_reused"] = jobs_by(ev2, "job_reused")
        figures["outputs_identical"] = outputs_identical(store, first, second)
        print(f"example workflow, first run  {t1:8.2f} s, {figures['tiles_segmented']['first']} tiles segmented")
        print(
            f"example workflow, second run {t2:8.3f} s, {figures['tiles_segmented']['second']} tiles segmented, "
            f"{t1 / t2:.0f}x faster, outputs identical: {figures['outputs_identical']}, "
            f"reused: {', '.join(figures['second_run_reused'])}"
        )

        branches = []
        for branch in wf.branches:
            jobs = tuple(
                replace(j, params={**j.params, "min_cell_area": 5.0}) if j.job_id == "cells_b" else j
                for j in branch.jobs
            )
            branches.append(replace(branch, jobs=jobs))
        t3, _, ev3 = run_workflow(store, replace(wf, branches=tuple(branches)))
        figures["changed_param"] = {"ran": jobs_by(ev3, "job_started"), "reused": jobs_by(ev3, "job_reused")}
        print(
            f"min_cell_area changed on cells_b: {t3:.2f} s, ran {', '.join(figures['changed_param']['ran'])}; "
            f"reused {', '.join(figures['changed_param']['reused'])}"
        )
        store.close()

        big = root / "big.tif"
        start = time.perf_counter()
        side = write_big_tiff(big, args.big_gb)
        os.sync()  # written back before timing: the fingerprint must not wait behind the writer's flush
        size = big.stat().st_size
        print(
            f"wrote {big.name}: {size / 1e9:.2f} GB, {side}x{side} px, 4 levels, in {time.perf_counter() - start:.1f} s"
        )
        times = [fingerprint_in_fresh_process(big) for _ in range(3)]
        cold = None
        try:  # root only: the page cache emptied, so the first read comes from the disk
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            cold = fingerprint_in_fresh_process(big)
        except OSError:
            pass
        figures["big_slide"] = {
            "bytes": size,
            "side_px": side,
            "fingerprint_s": [round(t, 4) for t in times],
            "cold_s": cold and round(cold, 4),
        }
        print(
            f"slide_fingerprint of {size / 1e9:.2f} GB (fresh process each): {', '.join(f'{t:.3f}' for t in times)} s"
            + (f"; after dropping the page cache {cold:.3f} s" if cold is not None else "")
        )
        big.unlink()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
