"""Headless progress: a live status line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from wsidesk.core.events import Event, EventName
from wsidesk.core.progress import ProgressBook


class ConsoleReporter:
    """An EventSink; thread-safe, redraws at most 10 times a second."""

    def __init__(self, *, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._lock = threading.Lock()
        self._book = ProgressBook()
        self._last_draw = 0.0

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._book.apply(event)
            line = _describe(event)
            if self._live:
                if line and event.event is not EventName.TILE_BATCH_DONE:
                    self._write_line(line)
                self._draw(force=event.event is EventName.RUN_FINISHED)
            elif line:
                self._stream.write(line + "\n")
                self._stream.flush()

    def _write_line(self, line: str) -> None:
        self._stream.write("\r\x1b[2K" + line + "\n")

    def _draw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        parts = [f"{run.run_id[-6:]}: {run.jobs_finished} jobs done" for run in self._book.active_runs()]
        for job in self._book.streaming_jobs():
            done, total = job.tiles_done, job.tiles_total
            parts.append(f"{job.job_id} {done}/{total} tiles ({100 * done // max(total, 1)}%)")
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
        EventName.RUN_SUBMITTED: f"run submitted: {event.workflow!r} for profile {event.profile}"
        + (" (resumed)" if f.get("resumed") else ""),
        EventName.PROFILE_QUEUED: f"profile {event.profile} waits for a slot (position {f.get('position')})",
        EventName.PROFILE_ACTIVATED: f"profile {event.profile} is active",
        EventName.JOB_STARTED: "started",
        EventName.JOB_REUSED: f"reused the result of run {f.get('source_run')} "
        f"(fingerprint {str(f.get('fingerprint'))[:12]})",
        EventName.JOB_SUCCEEDED: "succeeded",
        EventName.JOB_FAILED: f"FAILED: {f.get('error')}",
        EventName.JOB_SKIPPED: f"skipped: {f.get('reason')}",
        EventName.JOB_CANCELLED: f"cancelled ({f.get('reason', '')})",
        EventName.TILES_PLANNED: f"{f.get('tissue')} tissue tiles of {f.get('total')} "
        f"({f.get('skipped')} background skipped)",
        EventName.TILE_BATCH_DONE: f"tiles {f.get('done')}/{f.get('total')}, {f.get('cells')} cells",
        EventName.RUN_FINISHED: f"run finished: {f.get('status')}",
    }.get(event.event)
    return f"{who} {text}" if text else None
