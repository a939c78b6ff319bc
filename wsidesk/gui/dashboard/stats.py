"""Scheduler statistics over time (pyqtgraph): workers, tiles/s, queues, profiles."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

HISTORY_S = 300
RATE_WINDOW_S = 5  # tiles/s is averaged over this many samples: batches arrive in bursts


class StatsPanel(pg.GraphicsLayoutWidget):  # type: ignore[misc]  # pyqtgraph ships no type hints
    """Samples `snapshot()` (the runner's) and a tile counter once a second and plots the last 5 min."""

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        tiles_done: Callable[[], int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._snapshot = snapshot
        self._tiles_done = tiles_done
        self._t0 = time.monotonic()
        self._tile_counts: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW_S + 1)
        self._series: dict[str, deque[tuple[float, float]]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self.setBackground("w")
        plots = (
            ("Workers busy", (("running", "#d9822b"),)),
            ("Tiles / s", (("tiles_per_s", "#2b83ba"),)),
            ("Jobs waiting", (("pending", "#7b3294"),)),
            ("Profiles", (("active", "#1a9641"), ("queued", "#d7191c"))),
        )
        for column, (title, curves) in enumerate(plots):
            plot = self.addPlot(row=0, col=column, title=title)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("bottom", "s")
            plot.setMouseEnabled(x=False, y=False)
            if len(curves) > 1:
                plot.addLegend(offset=(5, 5))
            for name, colour in curves:
                self._series[name] = deque(maxlen=HISTORY_S)
                self._curves[name] = plot.plot(pen=pg.mkPen(colour, width=2), name=name)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.sample)
        self._timer.start()

    def sample(self) -> None:
        snap = self._snapshot()
        now = time.monotonic() - self._t0
        self._tile_counts.append((now, self._tiles_done()))
        (t0, n0), (t1, n1) = self._tile_counts[0], self._tile_counts[-1]
        values = {
            "running": snap.get("running", 0),
            "tiles_per_s": (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0,
            "pending": sum(r["counts"].get("pending", 0) for r in snap.get("runs", {}).values()),
            "active": len(snap.get("active_profiles", [])),
            "queued": len(snap.get("queued_profiles", [])),
        }
        for name, value in values.items():
            series = self._series[name]
            series.append((now, float(value)))
            self._curves[name].setData([t for t, _ in series], [v for _, v in series])

    def latest(self, name: str) -> float | None:
        series = self._series[name]
        return series[-1][1] if series else None

    def stop(self) -> None:
        self._timer.stop()
