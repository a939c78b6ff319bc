"""Event-loop stalls while drawing and editing a 2,000-vertex freehand region on the slide view.

Each mouse event is sent to the view's viewport and the event loop is then run until idle (the repaint
included); the time for both is one "stall". Prints the max and 99th percentile per phase: drawing the
region, the release that turns it into a checked region, selecting it, dragging one vertex, moving the
whole region, undo/redo, and the debounced save. Target: every stall < 50 ms.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_annotations.py
    DISPLAY=:92 .venv/bin/python benchmarks/bench_annotations.py          # a real X11 window
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=2000)
    parser.add_argument("--width", type=int, default=8192)
    parser.add_argument("--height", type=int, default=6144)
    args = parser.parse_args()

    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from wsidesk.core.slide.demo import write_demo_slide
    from wsidesk.gui.annotations_panel import SAVE_DELAY_MS, AnnotationsPanel
    from wsidesk.gui.viewer import SlideView

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="bench_annotations_"))
    slide = write_demo_slide(tmp / "demo.svs", width=args.width, height=args.height, mpp=0.5, seed=2).path
    view = SlideView()
    view.resize(1400, 900)
    panel = AnnotationsPanel(view, lambda: tmp / "profiles" / "default")
    view.show()
    view.open_slide(slide)
    view.zoom_to_fit()
    for _ in range(50):  # let the visible tiles load, so repaints draw real tiles
        app.processEvents()
        time.sleep(0.02)
    vp = view.viewport()
    left, right = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier

    cpu: dict[str, list[float]] = {}

    def timed(send, phase: str = "") -> float:  # noqa: ANN001
        """Wall ms of one event plus the event loop run until idle; the GUI thread's CPU ms go to `cpu`."""
        t0, c0 = time.perf_counter(), time.thread_time()
        send()
        app.processEvents()
        cpu.setdefault(phase, []).append((time.thread_time() - c0) * 1000.0)
        return (time.perf_counter() - t0) * 1000.0

    # A closed wavy loop around the view, resampled to `vertices` points equally spaced along it (about
    # 3 screen px apart: the tool drops points closer than 1.5 px).
    n = args.vertices
    cx, cy, rx, ry = vp.width() / 2, vp.height() / 2, vp.width() * 0.42, vp.height() * 0.4
    theta = np.linspace(0, 2 * math.pi, 50 * n)
    wave = 1 + 0.05 * np.sin(48 * theta)
    dense = np.column_stack((cx + rx * wave * np.cos(theta), cy + ry * wave * np.sin(theta)))
    along = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(dense, axis=0).T))))
    at = np.linspace(0, along[-1], n, endpoint=False)
    xy = np.column_stack((np.interp(at, along, dense[:, 0]), np.interp(at, along, dense[:, 1])))
    pts = [QPoint(round(x), round(y)) for x, y in xy.tolist()]

    phases: dict[str, list[float]] = {}
    panel.tool.set_tool("freehand")
    phases["press"] = [timed(lambda: QTest.mousePress(vp, left, right, pts[0]), "press")]
    phases["draw (per move)"] = [timed(lambda p=p: QTest.mouseMove(vp, p), "draw (per move)") for p in pts[1:]]
    phases["release (check + add)"] = [
        timed(lambda: QTest.mouseRelease(vp, left, right, pts[0]), "release (check + add)")
    ]
    (region,) = panel.model.annotations()
    vertices = len(region.geometry.exterior.coords) - 1

    # Select it (it is selected already), then drag one vertex, then the whole region.
    vx, vy = region.geometry.exterior.coords[0]
    handle = view.map_from_level0(QPointF(vx, vy)).toPoint()
    view.zoom_by(3.0, QPointF(handle))  # handles are shown (and grabbable) when zoomed in
    for _ in range(25):  # a user takes a moment to aim at the handle; the new tiles load meanwhile
        app.processEvents()
        time.sleep(0.02)
    handle = view.map_from_level0(QPointF(vx, vy)).toPoint()
    phases["vertex press"] = [timed(lambda: QTest.mousePress(vp, left, right, handle), "vertex press")]
    phases["vertex drag (per move)"] = [
        timed(lambda i=i: QTest.mouseMove(vp, handle + QPoint(i, i // 2)), "vertex drag (per move)")
        for i in range(1, 60)
    ]
    phases["vertex release (check + replace)"] = [
        timed(lambda: QTest.mouseRelease(vp, left, right, handle + QPoint(59, 29)), "vertex release (check + replace)")
    ]
    view.zoom_to_fit()
    app.processEvents()
    inside = view.map_from_level0(QPointF(*region.geometry.centroid.coords[0])).toPoint()
    phases["move press"] = [timed(lambda: QTest.mousePress(vp, left, right, inside), "move press")]
    phases["move drag (per move)"] = [
        timed(lambda i=i: QTest.mouseMove(vp, inside + QPoint(i, i)), "move drag (per move)") for i in range(1, 60)
    ]
    phases["move release"] = [
        timed(lambda: QTest.mouseRelease(vp, left, right, inside + QPoint(59, 59)), "move release")
    ]
    phases["undo"] = [timed(panel.undo_action.trigger, "undo") for _ in range(3)]
    phases["redo"] = [timed(panel.redo_action.trigger, "redo") for _ in range(3)]
    time.sleep(SAVE_DELAY_MS / 1000 + 0.05)
    phases["debounced save (starts)"] = [timed(lambda: None, "debounced save (starts)")]

    platform_name = os.environ.get("QT_QPA_PLATFORM") or f"xcb (DISPLAY={os.environ.get('DISPLAY')})"
    print(
        f"bench_annotations: {vertices}-vertex freehand region on a {args.width}x{args.height} demo slide, "
        f"view 1400x900, Qt platform {platform_name}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print("  wall ms per event (what a user waits; inflated when other processes hold the CPUs), and the GUI")
    print("  thread's own CPU ms (the work done on the event loop)")
    worst, worst_cpu = 0.0, 0.0
    for name, times in phases.items():
        a, c = np.asarray(times), np.asarray(cpu[name])
        worst, worst_cpu = max(worst, float(a.max())), max(worst_cpu, float(c.max()))
        print(
            f"  {name:34s} n={len(a):5d}  wall max {a.max():7.2f} p99 {np.percentile(a, 99):7.2f} "
            f"mean {a.mean():6.2f}  |  cpu max {c.max():7.2f} mean {c.mean():6.2f}"
        )
    print(f"max stall {worst:.1f} ms wall, {worst_cpu:.1f} ms GUI-thread CPU (target < 50 ms)")
    view.close()


if __name__ == "__main__":
    main()
