"""The progress book shared by the dashboard and the console reporter, and the event vocabulary."""

from __future__ import annotations

import io
import itertools
import json

import pytest

from wsidesk.cli_progress import ConsoleReporter
from wsidesk.core.events import JOB_EVENT_STATES, Event, EventName
from wsidesk.core.progress import ProgressBook, format_eta
from wsidesk.core.states import JobState, RunStatus


def ev(name: str, job_id: str | None = None, ts: float = 0.0, run: str = "r1", **fields: object) -> Event:
    return Event(name, run, "alice", "wf", branch="b" if job_id else None, job_id=job_id, fields=fields, ts=ts)


def test_event_names_serialise_to_the_same_json_strings() -> None:
    event = ev("job_failed", "j1", ts=1.5, error="boom")
    assert event.event is EventName.JOB_FAILED
    line = json.dumps(event.to_json())
    assert line == (
        '{"ts": 1.5, "event": "job_failed", "run_id": "r1", "profile": "alice", "workflow": "wf", '
        '"branch": "b", "job_id": "j1", "error": "boom"}'
    )
    with pytest.raises(ValueError, match="unknown event name 'job_exploded'"):
        ev("job_exploded")


def test_every_job_event_maps_to_one_job_state() -> None:
    assert {name.value: state.value for name, state in JOB_EVENT_STATES.items()} == {
        "job_started": "running",
        "job_succeeded": "succeeded",
        "job_failed": "failed",
        "job_skipped": "skipped",
        "job_cancelled": "cancelled",
    }
    assert ev("tiles_planned", "j1").job_state is None


def test_book_tracks_states_tiles_rate_and_eta() -> None:
    book = ProgressBook()
    book.apply(ev("run_submitted", resumed=False, done=0))
    book.apply(ev("profile_queued", position=2))
    assert book.runs["r1"].status is RunStatus.WAITING and book.runs["r1"].queue_position == 2
    book.apply(ev("profile_activated"))
    book.apply(ev("job_started", "seg", ts=100.0))
    book.apply(ev("tiles_planned", "seg", ts=100.0, total=40, tissue=20, skipped=20))
    book.apply(ev("tile_batch_done", "seg", ts=101.0, done=4, total=20, cells=50))
    run = book.apply(ev("tile_batch_done", "seg", ts=103.0, done=8, total=20, cells=90))
    job = run.jobs["seg"]
    assert job.state is JobState.RUNNING and (job.tiles_done, job.tiles_total, job.cells) == (8, 20, 90)
    assert job.rate == pytest.approx(2.0) and job.eta == pytest.approx(6.0)
    assert format_eta(job.eta) == "0:06" and book.tiles_done_total == 8
    assert [j.job_id for j in book.streaming_jobs()] == ["seg"]
    book.apply(ev("job_succeeded", "seg", ts=104.0))
    book.apply(ev("run_finished", status="succeeded"))
    assert run.done_jobs == 1 and run.jobs_finished == 1 and run.status is RunStatus.SUCCEEDED
    assert book.active_runs() == [] and book.streaming_jobs() == []
    assert [line.split(" ", 1)[1] for line in job.log] == ["started", "20 tissue tiles of 40", "succeeded"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_status_line_counts_resumed_jobs_and_shows_streaming_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = itertools.count(step=1.0)  # every event redraws: no 0.1 s throttle in the test
    monkeypatch.setattr("wsidesk.cli_progress.time.monotonic", lambda: next(clock))
    out = _Tty()
    reporter = ConsoleReporter(stream=out)
    reporter(ev("run_submitted", run="20250101-abcdef", resumed=True, done=2))
    reporter(ev("job_started", "seg", run="20250101-abcdef", ts=1.0))
    reporter(ev("tile_batch_done", "seg", run="20250101-abcdef", ts=2.0, done=3, total=12, cells=7))
    reporter(ev("job_succeeded", "seg", run="20250101-abcdef", ts=3.0))
    reporter(ev("run_finished", run="20250101-abcdef", status="succeeded"))
    text = out.getvalue()
    assert "abcdef: 2 jobs done | seg 3/12 tiles (25%)" in text
    assert "[20250101-abcdef] b/seg succeeded\n" in text
    assert text.endswith("\r\x1b[2K")  # the finished run leaves the status line


def test_console_without_a_terminal_writes_plain_lines() -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(stream=out)
    reporter(ev("job_started", "j1"))
    reporter(ev("tiles_planned", "j1", total=10, tissue=4, skipped=6))
    reporter(ev("run_finished", status="failed"))
    assert out.getvalue().splitlines() == [
        "[r1] b/j1 started",
        "[r1] b/j1 4 tissue tiles of 10 (6 background skipped)",
        "[r1] run finished: failed",
    ]


def _batch(tiles: int, done: int, total: int) -> object:
    from wsidesk.core.segment.engine import BatchResult

    return BatchResult(tuple(range(done - tiles, done)), {}, (), done, total, 0)


def test_rate_and_eta_show_on_a_slow_cpu_run_with_a_batch_every_22_seconds() -> None:
    """Batch 16 on CPU: 22 s between batches, longer than any short window; the rate counts from the start."""
    book = ProgressBook()
    book.apply(ev("job_started", "seg", ts=0.0))
    book.apply(ev("tiles_planned", "seg", ts=1.0, total=400, tissue=320, skipped=80))
    job = book.runs["r1"].jobs["seg"]
    for i in range(1, 4):
        ts, done = 2.0 + 22.0 * i, 16 * i
        book.apply(
            Event(
                "tile_batch_done",
                "r1",
                "alice",
                "wf",
                "b",
                "seg",
                {"done": done, "total": 320},
                ts,
                _batch(16, done, 320),
            )
        )
        assert job.rate > 0, f"a rate after batch {i}"
        assert job.eta is not None
    assert job.rate == pytest.approx(48 / 68.0)
    assert job.eta == pytest.approx((320 - 48) / (48 / 68.0))


def test_rate_after_a_resume_counts_only_tiles_run_since_the_job_started() -> None:
    book = ProgressBook()
    book.apply(ev("job_started", "seg", ts=100.0))
    batch = _batch(16, 216, 320)  # 200 tiles restored from the interrupted run, then one batch of 16
    book.apply(Event("tile_batch_done", "r1", "alice", "wf", "b", "seg", {"done": 216, "total": 320}, 132.0, batch))
    assert book.runs["r1"].jobs["seg"].rate == pytest.approx(16 / 32.0)


def test_waiting_run_counts_its_jobs_and_cancel_shows_cancelling_until_it_finishes() -> None:
    book = ProgressBook()
    book.expect("r1", profile="alice", workflow="wf", jobs=[("a", "b"), ("c", "b"), ("d", "e")])
    run = book.apply(ev("profile_queued", position=1))
    assert (run.done_jobs, len(run.jobs)) == (0, 3)
    assert run.state_text == "waiting (#1)"
    book.apply(ev("profile_activated"))
    book.cancel_requested("r1")
    assert run.state_text == "cancelling…"
    book.apply(ev("job_cancelled", "a", reason="cancelled"))
    assert run.state_text == "cancelling…"
    book.apply(ev("run_finished", status="cancelled"))
    assert run.state_text == "cancelled" and not run.cancelling
