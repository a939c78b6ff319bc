"""Results workbench at slide scale: open, sort, filter, classify, colour and scroll 1,000,000 cells.

Run: QT_QPA_PLATFORM=offscreen python benchmarks/bench_results_gui.py [--cells 1000000]

Cells are synthesised on a grid (12-vertex rings, jittered, random measurements) and written as the
cell store (cells.npz) that segment jobs write, so the workbench opens them exactly as a real result.
Targets: open < 2 s; sort < 1 s; filter or class rule < 1 s; colour-by repaint < 1 s; scrolling the
table and panning the slide never stall the event loop > 50 ms (a 5 ms heartbeat QTimer measures it).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np


def synth_result(folder: Path, n: int, *, seed: int = 0) -> tuple[int, int]:
    """Write n cells as a cell store; returns the slide size (level-0 px) they cover."""
    from wsidesk.core.cells.store import STORE_NAME, CellTable, save_table

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    spacing = 20.0
    k = np.arange(n)
    cx = 40 + spacing * (k % side) + rng.uniform(-3, 3, n)
    cy = 40 + spacing * (k // side) + rng.uniform(-3, 3, n)
    r = rng.uniform(4.0, 8.0, n)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    xs = cx[:, None] + r[:, None] * np.cos(angles)[None, :]
    ys = cy[:, None] + r[:, None] * np.sin(angles)[None, :]
    cpx = np.round(np.stack([xs, ys], axis=2).reshape(-1, 2) * 100).astype(np.int32)
    area = np.pi * (r * 0.5) ** 2
    columns = {
        "area_um2": area,
        "perimeter_um": 2 * np.pi * r * 0.5,
        "circularity": rng.uniform(0.6, 1.0, n),
        "solidity": rng.uniform(0.8, 1.0, n),
        "eccentricity": rng.uniform(0.0, 0.9, n),
        "major_axis_um": r * 1.1,
        "minor_axis_um": r * 0.9,
        "hematoxylin_od_mean": rng.gamma(4.0, 0.08, n),
        "eosin_od_mean": rng.gamma(3.0, 0.05, n),
    }
    table = CellTable(
        ids=k + 1,
        x=cx,
        y=cy,
        columns=columns,
        poly_offsets=np.arange(n + 1, dtype=np.int64) * 12,
        poly_cpx=cpx,
        bbox=np.column_stack([cx - r, cy - r, cx + r, cy + r]),
    )
    folder.mkdir(parents=True, exist_ok=True)
    save_table(table, folder / STORE_NAME)
    size = int(40 + spacing * side + 40)
    return size, size


def timed(label: str, fn: Callable[[], object], target: float, app: object) -> float:
    start = time.perf_counter()
    fn()
    app.processEvents()  # type: ignore[attr-defined]  # the repaint the change scheduled
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds * 1000:8.0f} ms   (target < {target * 1000:.0f} ms)")
    return seconds


def stall(app: object, steps: int, step: Callable[[int], None]) -> tuple[float, float]:
    """Run `step(i)` every 20 ms in the real event loop; max and p99 heartbeat gap beyond 5 ms."""
    from PySide6.QtCore import QEventLoop, QTimer

    ticks: list[float] = []
    heart = QTimer(interval=5, timeout=lambda: ticks.append(time.perf_counter()))
    loop = QEventLoop()
    count = [0]

    def drive() -> None:
        if count[0] >= steps:
            loop.quit()
            return
        step(count[0])
        count[0] += 1

    driver = QTimer(interval=20, timeout=drive)
    heart.start()
    driver.start()
    loop.exec()
    heart.stop()
    driver.stop()
    gaps = np.diff(np.array(ticks)) * 1000 - 5
    return float(gaps.max()), float(np.percentile(gaps, 99))


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="wsidesk-results-bench-"))
    try:
        run(data)
    finally:
        shutil.rmtree(data, ignore_errors=True)  # ~230 MB of cell store per million cells


def run(data: Path) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=1_000_000)
    args = parser.parse_args()

    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QApplication, QMainWindow

    from wsidesk.core.cells.classes import ClassRule
    from wsidesk.core.slide.reader import ArrayReader
    from wsidesk.gui.results import ResultsWorkbench
    from wsidesk.gui.viewer import SlideView

    app = QApplication.instance() or QApplication([])
    t0 = time.perf_counter()
    w, h = synth_result(data / "run" / "segment", args.cells)
    print(f"{args.cells:,} cells on a {w}x{h} px slide, written in {time.perf_counter() - t0:.1f} s")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Qt platform {app.platformName()}")

    window = QMainWindow()
    view = SlideView(loader_threads=2)
    window.setCentralWidget(view)
    # A flat pink slide (a broadcast array: no memory): the bench is about cells, not pixels.
    pink = np.broadcast_to(np.array([236, 214, 228], dtype=np.uint8), (h, w, 3))
    view.set_reader(ArrayReader(pink, mpp=0.5, levels=7, path="<bench>"))
    settings = QSettings(str(data / "settings.ini"), QSettings.Format.IniFormat)
    bench = ResultsWorkbench(view, settings, lambda: "bench", window)
    bench.add_docks(window)
    window.resize(1600, 1000)
    window.show()
    view.zoom_to_fit()
    app.processEvents()

    results = bench.results
    timed("open result (store -> table, slide, plots)", lambda: bench.open_result(data / "run" / "segment"), 2.0, app)
    col = bench.table.model.column_names.index("area_um2")
    timed(
        "sort a column (area_um2, descending)",
        lambda: bench.table.view.sortByColumn(col, Qt.SortOrder.DescendingOrder),
        1.0,
        app,
    )
    timed(
        "filter: area_um2 > 40 and hematoxylin_od_mean > 0.3",
        lambda: results.set_filter("area_um2 > 40 and hematoxylin_od_mean > 0.3"),
        1.0,
        app,
    )
    rules = [
        ClassRule("Large dark", "#c83232", "area_um2 > 40 and hematoxylin_od_mean > 0.3"),
        ClassRule("Small", "#3264c8", "area_um2 < 20"),
    ]
    timed("class rules (2 classes) applied", lambda: bench.classes.set_rules(rules), 1.0, app)
    timed(
        "colour by measurement, zoomed out (raster)",
        lambda: (results.set_spec(results.spec_for("hematoxylin_od_mean")), view.viewport().repaint()),
        1.0,
        app,
    )
    view.set_scale_factor(1.0)
    view.center_on(w / 2, h / 2)
    app.processEvents()
    timed(
        "colour by class, zoomed in (polygons)",
        lambda: (results.set_spec(results.spec_for("class")), view.viewport().repaint()),
        1.0,
        app,
    )
    timed(
        "colour by area_um2, zoomed in (polygons)",
        lambda: (results.set_spec(results.spec_for("area_um2")), view.viewport().repaint()),
        1.0,
        app,
    )
    results.set_filter("")
    app.processEvents()

    bar = bench.table.view.verticalScrollBar()
    page = max(bar.pageStep(), 1)
    gap, p99 = stall(app, 100, lambda i: bar.setValue(bar.value() + (page if i % 10 else 25 * page)))
    print(f"{'table scroll (pages and jumps), max stall':<44} {gap:8.1f} ms   (p99 {p99:.1f} ms; target < 50 ms)")
    gap, p99 = stall(app, 100, lambda i: view.pan_by(60 if (i // 25) % 2 == 0 else -60, 25))
    print(f"{'slide pan at 100% zoom, max stall':<44} {gap:8.1f} ms   (p99 {p99:.1f} ms; target < 50 ms)")
    view.set_scale_factor(0.25)
    app.processEvents()
    gap, p99 = stall(app, 60, lambda i: view.pan_by(80 if (i // 20) % 2 == 0 else -80, 30))
    print(f"{'slide pan at 25% zoom, max stall':<44} {gap:8.1f} ms   (p99 {p99:.1f} ms; target < 50 ms)")
    view.zoom_to_fit()
    app.processEvents()
    gap, p99 = stall(app, 40, lambda i: view.pan_by(40 if i % 2 else -40, 0))
    print(f"{'slide pan zoomed out (raster), max stall':<44} {gap:8.1f} ms   (p99 {p99:.1f} ms; target < 50 ms)")
    view.shutdown()
    window.close()


if __name__ == "__main__":
    main()
