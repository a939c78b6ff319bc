"""Headless progress: a live status line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from wsidesk.core.events import Event

_TERMINAL = {"job_succeeded", "job_failed", "job_skipped", "job_cancelled"}


class ConsoleReporter:
    """An EventSink; thread-safe, redraws at most 10 times a second."""

    def __init__(self, *, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._lock = threading.Lock()
        self._jobs_total: dict[str, int] = {}
        self._jobs_done: dict[str, int] = {}
        self._tiles: dict[tuple[str, str], tuple[int, int]] = {}  # (run, job) -> (done, total)
        self._last_draw = 0.0

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._track(event)
            line = _describe(event)
            if self._live:
                if line and event.event != "tile_batch_done":
                    self._write_line(line)
                self._draw(force=event.event == "run_finished")
            elif line:
                self._stream.write(line + "\n")
                self._stream.flush()

    def _track(self, event: Event) -> None:
        run = event.run_id
        if event.event == "run_submitted":
            self._jobs_done.setdefault(run, int(event.fields.get("done", 0)))
            self._jobs_total.setdefault(run, 0)
        elif event.event == "job_started":
            self._jobs_total[run] = max(self._jobs_total.get(run, 0), self._jobs_done.get(run, 0) + 1)
        elif event.event in _TERMINAL:
            self._jobs_done[run] = self._jobs_done.get(run, 0) + 1
            self._tiles.pop((run, event.job_id or ""), None)
        elif event.event == "tile_batch_done":
            self._tiles[(run, event.job_id or "")] = (int(event.fields["done"]), int(event.fields["total"]))
        elif event.event == "run_finished":
            self._jobs_total.pop(run, None)
            self._jobs_done.pop(run, None)

    def _write_line(self, line: str) -> None:
        self._stream.write("\r\x1b[2K" + line + "\n")

    def _draw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        parts = [f"{run[-6:]}: {self._jobs_done.get(run, 0)} jobs done" for run in self._jobs_total]
        parts += [f"{job} {d}/{t} tiles ({100 * d // max(t, 1)}%)" for (_, job), (d, t) in self._tiles.items()]
        self._stream.write("\r\x1b[2K" + " | ".join(parts))
        self._stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._live:
                self._stream.write("\r\x1b[2K")
                self._stream.flush()


def _describe(event: Event) -> str | None:
    who = f"[{event.run_id}]" + (f" {event.branch}/{event.job_id}" if event.job_id else "")
    f = event.fields
    text = {
        "run_submitted": f"run submitted: {event.workflow!r} for profile {event.profile}"
        + (" (resumed)" if f.get("resumed") else ""),
        "profile_queued": f"profile {event.profile} waits for a slot (position {f.get('position')})",
        "profile_activated": f"profile {event.profile} is active",
        "job_started": "started",
        "job_succeeded": "succeeded",
        "job_failed": f"FAILED: {f.get('error')}",
        "job_skipped": f"skipped: {f.get('reason')}",
        "job_cancelled": f"cancelled ({f.get('reason', '')})",
        "tiles_planned": f"{f.get('tissue')} tissue tiles of {f.get('total')} ({f.get('skipped')} background skipped)",
        "tile_batch_done": f"tiles {f.get('done')}/{f.get('total')}, {f.get('cells')} cells",
        "run_finished": f"run finished: {f.get('status')}",
    }.get(event.event)
    return f"{who} {text}" if text else None
