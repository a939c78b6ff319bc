"""Unit tests of the planner: one rule per test, driven as plain function calls."""

from __future__ import annotations

import pytest

from wsidesk.core.errors import ProfileError, WorkflowError
from wsidesk.core.scheduler.planner import (
    JobCancellation,
    JobKey,
    JobSkipped,
    JobState,
    Planner,
    ProfileActivated,
    ProfileQueued,
    ProfileReleased,
    RunFinished,
)
from wsidesk.core.workflow.model import Branch, Job, Workflow


def job(job_id: str, *depends_on: str) -> Job:
    return Job(job_id=job_id, type="tissue", image="a.svs", depends_on=depends_on)


def workflow(name: str = "wf", **branches: list[Job]) -> Workflow:
    return Workflow(name=name, branches=tuple(Branch(n, tuple(js)) for n, js in branches.items()))


def chain(prefix: str, n: int, branch: str = "branch_A") -> Workflow:
    return workflow(**{branch: [job(f"{prefix}{i}") for i in range(n)]})


def k(run_id: str, job_id: str) -> JobKey:
    return JobKey(run_id, job_id)


def start_all(planner: Planner) -> list[JobKey]:
    keys = planner.ready()
    for key in keys:
        planner.started(key)
    return keys


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("kwargs", [{"workers": 0}, {"max_active_profiles": 0}, {"workers": -2}])
def test_limits_below_one_are_rejected(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        Planner(**kwargs)


def test_duplicate_run_id_is_rejected() -> None:
    planner = Planner()
    planner.submit("r1", "alice", chain("j", 2))
    with pytest.raises(ValueError, match="already submitted"):
        planner.submit("r1", "alice", chain("j", 2))


def test_invalid_profile_name_is_rejected() -> None:
    with pytest.raises(ProfileError):
        Planner().submit("r1", "../etc", chain("j", 1))


def test_unknown_dependency_is_a_workflow_error() -> None:
    wf = workflow(branch_A=[job("job1", "nope")])
    with pytest.raises(WorkflowError, match="unknown job 'nope'") as info:
        Planner().submit("r1", "alice", wf)
    assert info.value.job_id == "job1"


def test_dependency_on_a_later_branch_mate_is_a_cycle() -> None:
    wf = workflow(branch_A=[job("job1", "job2"), job("job2")])
    with pytest.raises(WorkflowError, match="cycle") as info:
        Planner().submit("r1", "alice", wf)
    assert set(info.value.cycle or ()) == {"job1", "job2"}


def test_cross_branch_cycle_is_reported_with_its_jobs() -> None:
    wf = workflow(
        branch_A=[job("a1"), job("a2", "b2")],
        branch_B=[job("b1", "a2"), job("b2")],
    )
    planner = Planner()
    with pytest.raises(WorkflowError) as info:
        planner.submit("r1", "alice", wf)
    assert set(info.value.cycle or ()) == {"a2", "b1", "b2"}
    assert planner.runs() == ()  # a rejected run leaves no trace
    assert planner.is_idle()


def test_duplicate_job_id_is_a_workflow_error() -> None:
    wf = workflow(branch_A=[job("job1")], branch_B=[job("job1")])
    with pytest.raises(WorkflowError, match="used twice"):
        Planner().submit("r1", "alice", wf)


def test_done_with_unknown_job_is_rejected() -> None:
    with pytest.raises(ValueError, match="not in workflow"):
        Planner().submit("r1", "alice", chain("j", 2), done=["zzz"])


# ---------------------------------------------------------------- branches and dependencies


def test_planner_runs_branch_jobs_in_fifo_order() -> None:
    planner = Planner(workers=4)
    planner.submit("r1", "alice", chain("j", 3))
    order = []
    while not planner.is_idle():
        (key,) = start_all(planner)
        order.append(key.job_id)
        planner.succeeded(key)
    assert order == ["j0", "j1", "j2"]
    assert planner.run_status("r1") == "succeeded"


def test_one_running_job_per_branch_while_branches_run_in_parallel() -> None:
    planner = Planner(workers=8)
    planner.submit("r1", "alice", workflow(branch_A=[job("a1"), job("a2")], branch_B=[job("b1"), job("b2")]))
    assert sorted(planner.ready()) == [k("r1", "a1"), k("r1", "b1")]


def test_two_runs_with_same_branch_name_run_in_parallel() -> None:
    planner = Planner(workers=4)
    planner.submit("r1", "alice", chain("j", 2))
    planner.submit("r2", "alice", chain("j", 2))
    started = start_all(planner)
    assert sorted(started) == [k("r1", "j0"), k("r2", "j0")]
    assert sorted(planner.running()) == sorted(started)


def test_depends_on_waits_for_every_dependency() -> None:
    planner = Planner(workers=4)
    planner.submit(
        "r1",
        "alice",
        workflow(branch_A=[job("job1"), job("job2")], branch_B=[job("job3"), job("job4", "job1")]),
    )
    start_all(planner)
    planner.succeeded(k("r1", "job3"))
    assert planner.ready() == []  # job4 waits on job1
    planner.succeeded(k("r1", "job1"))
    assert sorted(planner.ready()) == [k("r1", "job2"), k("r1", "job4")]


def test_ready_does_not_change_state() -> None:
    planner = Planner()
    planner.submit("r1", "alice", chain("j", 2))
    assert planner.ready() == planner.ready() == [k("r1", "j0")]
    assert planner.state(k("r1", "j0")) is JobState.PENDING


def test_started_of_a_non_ready_job_raises() -> None:
    planner = Planner()
    planner.submit("r1", "alice", chain("j", 2))
    with pytest.raises(ValueError, match="cannot start"):
        planner.started(k("r1", "j1"))
    planner.started(k("r1", "j0"))
    with pytest.raises(ValueError, match="cannot start"):
        planner.started(k("r1", "j0"))


def test_reporting_an_outcome_of_a_job_not_running_raises() -> None:
    planner = Planner()
    planner.submit("r1", "alice", chain("j", 2))
    with pytest.raises(ValueError, match="not running"):
        planner.succeeded(k("r1", "j0"))
    with pytest.raises(ValueError, match="not running"):
        planner.failed(k("r1", "j0"), "boom")


def test_unknown_keys_raise_key_error() -> None:
    planner = Planner()
    planner.submit("r1", "alice", chain("j", 1))
    with pytest.raises(KeyError):
        planner.state(k("r1", "nope"))
    with pytest.raises(KeyError):
        planner.cancel_run("nope")


def test_worker_limit_caps_ready_and_started() -> None:
    planner = Planner(workers=2)
    planner.submit("r1", "alice", workflow(**{f"b{i}": [job(f"j{i}")] for i in range(5)}))
    assert len(start_all(planner)) == 2
    assert planner.ready() == []
    with pytest.raises(ValueError, match="cannot start|busy"):
        planner.started(k("r1", "j4"))
    planner.succeeded(planner.running()[0])
    assert len(planner.ready()) == 1


# ---------------------------------------------------------------- failure


def test_failure_skips_rest_of_branch_and_dependents_only() -> None:
    planner = Planner(workers=4)
    wf = workflow(
        branch_A=[job("job1"), job("job2")],
        branch_B=[job("job3"), job("job4", "job1"), job("job5")],
        branch_C=[job("job6", "job5"), job("job7")],
        branch_D=[job("job8"), job("job9")],
    )
    planner.submit("r1", "alice", wf)
    start_all(planner)
    changes = planner.failed(k("r1", "job1"), "slide unreadable")
    skipped = {c.key.job_id: c.reason for c in changes if isinstance(c, JobSkipped)}
    assert skipped == {
        "job2": "branch_A: job1 failed",
        "job4": "depends on job1 which failed",
        "job5": "branch_B: job4 was skipped",
        "job6": "depends on job5 which was skipped",
        "job7": "branch_C: job6 was skipped",
    }
    assert planner.state(k("r1", "job1")) is JobState.FAILED
    assert planner.error(k("r1", "job1")) == "slide unreadable"
    assert planner.reason(k("r1", "job2")) == "branch_A: job1 failed"
    # Other branches go on.
    assert planner.state(k("r1", "job3")) is JobState.RUNNING
    planner.succeeded(k("r1", "job8"))
    assert planner.ready() == [k("r1", "job9")]
    planner.started(k("r1", "job9"))
    planner.succeeded(k("r1", "job9"))
    assert planner.run_status("r1") is None
    changes = planner.succeeded(k("r1", "job3"))
    assert RunFinished("r1", "failed") in changes
    assert planner.run_status("r1") == "failed"


def test_failure_does_not_touch_another_run() -> None:
    planner = Planner(workers=4)
    planner.submit("r1", "alice", chain("j", 2))
    planner.submit("r2", "alice", chain("j", 2))
    start_all(planner)
    planner.failed(k("r1", "j0"), "boom")
    assert planner.state(k("r2", "j1")) is JobState.PENDING
    assert planner.run_status("r1") == "failed"


# ---------------------------------------------------------------- resume


def test_resume_marks_done_jobs_succeeded() -> None:
    planner = Planner(workers=4)
    wf = workflow(branch_A=[job("job1"), job("job2")], branch_B=[job("job3", "job1")])
    planner.submit("r1", "alice", wf, done=["job1"])
    assert planner.state(k("r1", "job1")) is JobState.SUCCEEDED
    assert sorted(planner.ready()) == [k("r1", "job2"), k("r1", "job3")]


def test_failure_skips_branch_tail_past_a_job_done_in_an_earlier_attempt() -> None:
    planner = Planner()
    planner.submit("r1", "alice", chain("j", 3), done=["j1"])
    planner.started(k("r1", "j0"))
    changes = planner.failed(k("r1", "j0"), "boom")
    assert changes == [
        JobSkipped(k("r1", "j2"), "branch_A: j0 failed"),
        RunFinished("r1", "failed"),
        ProfileReleased("alice"),
    ]
    assert planner.state(k("r1", "j1")) is JobState.SUCCEEDED


def test_resume_with_everything_done_finishes_at_once_without_a_slot() -> None:
    planner = Planner()
    changes = planner.submit("r1", "alice", chain("j", 2), done=["j0", "j1"])
    assert changes == [RunFinished("r1", "succeeded")]
    assert planner.run_status("r1") == "succeeded"
    assert planner.active_profiles() == ()
    assert planner.is_idle()


def test_empty_workflow_finishes_at_once() -> None:
    planner = Planner()
    assert planner.submit("r1", "alice", workflow()) == [RunFinished("r1", "succeeded")]


# ---------------------------------------------------------------- profiles


def test_fourth_profile_waits_fifo_until_a_slot_frees() -> None:
    planner = Planner(workers=8, max_active_profiles=3)
    assert planner.submit("r1", "p1", chain("j", 1)) == [ProfileActivated("p1")]
    planner.submit("r2", "p2", chain("j", 1))
    planner.submit("r3", "p3", chain("j", 1))
    assert planner.submit("r4", "p4", chain("j", 1)) == [ProfileQueued("p4", 1)]
    assert planner.submit("r5", "p5", chain("j", 1)) == [ProfileQueued("p5", 2)]
    assert planner.active_profiles() == ("p1", "p2", "p3")
    assert planner.queued_profiles() == ("p4", "p5")
    # Queued profiles' jobs are never ready.
    assert {key.run_id for key in planner.ready()} == {"r1", "r2", "r3"}
    start_all(planner)
    changes = planner.succeeded(k("r2", "j0"))
    assert changes == [RunFinished("r2", "succeeded"), ProfileReleased("p2"), ProfileActivated("p4")]
    assert planner.active_profiles() == ("p1", "p3", "p4")
    assert planner.queued_profiles() == ("p5",)
    assert planner.ready() == [k("r4", "j0")]


def test_profile_that_submits_again_while_active_stays_active() -> None:
    planner = Planner(workers=4, max_active_profiles=1)
    planner.submit("r1", "alice", chain("j", 1))
    planner.submit("r2", "bob", chain("j", 1))
    assert planner.submit("r3", "alice", chain("j", 1)) == []
    assert sorted(start_all(planner)) == [k("r1", "j0"), k("r3", "j0")]
    changes = planner.succeeded(k("r1", "j0"))
    assert changes == [RunFinished("r1", "succeeded")]  # r3 still keeps alice busy
    assert planner.active_profiles() == ("alice",)
    changes = planner.succeeded(k("r3", "j0"))
    assert changes == [
        RunFinished("r3", "succeeded"),
        ProfileReleased("alice"),
        ProfileActivated("bob"),
    ]


def test_queued_profile_that_submits_again_keeps_its_place() -> None:
    planner = Planner(max_active_profiles=1)
    planner.submit("r1", "alice", chain("j", 1))
    planner.submit("r2", "bob", chain("j", 1))
    planner.submit("r3", "carol", chain("j", 1))
    assert planner.submit("r4", "bob", chain("j", 1)) == []
    assert planner.queued_profiles() == ("bob", "carol")


def test_round_robin_across_profiles() -> None:
    planner = Planner(workers=1, max_active_profiles=3)
    for profile in ("p1", "p2", "p3"):
        planner.submit(f"run-{profile}", profile, chain("j", 4))
    # p1 submitted a big run too: it must not get more turns than the others.
    planner.submit("run-p1-big", "p1", workflow(**{f"b{i}": [job(f"x{i}")] for i in range(20)}))
    order = []
    for _ in range(9):
        (key,) = planner.ready()
        planner.started(key)
        order.append(planner.run_profile(key.run_id))
        planner.succeeded(key)
    assert order == ["p1", "p2", "p3"] * 3


def test_round_robin_across_runs_within_a_profile() -> None:
    planner = Planner(workers=1)
    planner.submit("r1", "alice", workflow(**{f"b{i}": [job(f"j{i}")] for i in range(5)}))
    planner.submit("r2", "alice", workflow(**{f"b{i}": [job(f"j{i}")] for i in range(5)}))
    runs = []
    for _ in range(6):
        (key,) = planner.ready()
        planner.started(key)
        runs.append(key.run_id)
        planner.succeeded(key)
    assert runs == ["r1", "r2"] * 3


def test_ready_interleaves_profiles_when_many_workers_are_free() -> None:
    planner = Planner(workers=6)
    planner.submit("r1", "p1", workflow(**{f"b{i}": [job(f"j{i}")] for i in range(10)}))
    planner.submit("r2", "p2", workflow(**{f"b{i}": [job(f"j{i}")] for i in range(10)}))
    assert [key.run_id for key in planner.ready()] == ["r1", "r2"] * 3


def test_same_calls_give_same_results() -> None:
    def drive() -> list[object]:
        planner = Planner(workers=3, max_active_profiles=2)
        log: list[object] = []
        for i, profile in enumerate(["a", "b", "c", "a"]):
            log.append(planner.submit(f"r{i}", profile, chain("j", 3)))
        while not planner.is_idle():
            keys = planner.ready()
            log.append(keys)
            for key in keys:
                planner.started(key)
            log.append(planner.succeeded(planner.running()[0]))
        return log

    assert drive() == drive()


# ---------------------------------------------------------------- cancel


def test_cancel_run_cancels_pending_and_waits_for_running() -> None:
    planner = Planner(workers=4)
    planner.submit("r1", "alice", workflow(branch_A=[job("a1"), job("a2")], branch_B=[job("b1")]))
    planner.started(k("r1", "a1"))
    changes = planner.cancel_run("r1")
    assert changes == [JobCancellation(k("r1", "a2")), JobCancellation(k("r1", "b1"))]
    assert planner.ready() == []
    assert planner.state(k("r1", "a1")) is JobState.RUNNING
    assert planner.run_status("r1") is None
    changes = planner.cancelled(k("r1", "a1"))
    assert changes == [
        JobCancellation(k("r1", "a1")),
        RunFinished("r1", "cancelled"),
        ProfileReleased("alice"),
    ]
    assert planner.is_idle()


def test_cancel_wins_over_failure_in_run_status() -> None:
    planner = Planner(workers=4)
    planner.submit("r1", "alice", workflow(branch_A=[job("a1"), job("a2")], branch_B=[job("b1")]))
    start_all(planner)
    planner.cancel_run("r1")
    planner.failed(k("r1", "a1"), "boom")
    assert planner.state(k("r1", "a2")) is JobState.CANCELLED  # not re-labelled skipped
    changes = planner.succeeded(k("r1", "b1"))
    assert RunFinished("r1", "cancelled") in changes


def test_cancel_of_idle_run_finishes_at_once_and_frees_the_slot() -> None:
    planner = Planner(max_active_profiles=1)
    planner.submit("r1", "alice", chain("j", 2))
    planner.submit("r2", "bob", chain("j", 2))
    changes = planner.cancel_run("r1")
    assert changes[-3:] == [
        RunFinished("r1", "cancelled"),
        ProfileReleased("alice"),
        ProfileActivated("bob"),
    ]
    assert planner.cancel_run("r1") == []  # twice is harmless


def test_cancelled_report_without_cancel_run_cancels_the_run() -> None:
    planner = Planner()
    planner.submit("r1", "alice", chain("j", 2))
    start_all(planner)
    changes = planner.cancelled(k("r1", "j0"))
    assert changes == [
        JobCancellation(k("r1", "j0")),
        JobCancellation(k("r1", "j1")),
        RunFinished("r1", "cancelled"),
        ProfileReleased("alice"),
    ]


def test_cancel_profile_cancels_its_runs_only() -> None:
    planner = Planner(max_active_profiles=1)
    planner.submit("r1", "alice", chain("j", 2))
    planner.submit("r2", "alice", chain("j", 2))
    planner.submit("r3", "bob", chain("j", 2))
    changes = planner.cancel_profile("alice")
    assert [c for c in changes if isinstance(c, RunFinished)] == [
        RunFinished("r1", "cancelled"),
        RunFinished("r2", "cancelled"),
    ]
    assert planner.active_profiles() == ("bob",)
    assert planner.run_status("r3") is None


def test_cancelling_a_queued_profile_removes_it_from_the_queue() -> None:
    planner = Planner(max_active_profiles=1)
    planner.submit("r1", "alice", chain("j", 1))
    planner.submit("r2", "bob", chain("j", 1))
    planner.submit("r3", "carol", chain("j", 1))
    changes = planner.cancel_profile("bob")
    assert not any(isinstance(c, (ProfileReleased, ProfileActivated)) for c in changes)
    assert planner.queued_profiles() == ("carol",)


# ---------------------------------------------------------------- snapshot


def test_snapshot_counts_states_per_run() -> None:
    planner = Planner(workers=2, max_active_profiles=1)
    planner.submit("r1", "alice", chain("j", 3), done=["j0"])
    planner.submit("r2", "bob", chain("j", 1))
    start_all(planner)
    snap = planner.snapshot()
    assert snap["active_profiles"] == ["alice"]
    assert snap["queued_profiles"] == ["bob"]
    assert snap["running"] == 1
    counts = snap["runs"]["r1"]["counts"]
    assert (counts["succeeded"], counts["running"], counts["pending"]) == (1, 1, 1)
    assert snap["runs"]["r2"]["status"] is None
    assert planner.job_states("r1") == {
        "j0": JobState.SUCCEEDED,
        "j1": JobState.RUNNING,
        "j2": JobState.PENDING,
    }
    assert planner.branch(k("r1", "j1")) == "branch_A"


def test_forget_lets_a_finished_run_be_submitted_again():
    planner = Planner(workers=2)
    workflow = Workflow(name="w", branches=(Branch("b", (Job("j", "tissue", "a.svs"),)),))
    planner.submit("r", "p", workflow)
    with pytest.raises(ValueError, match="not finished"):
        planner.forget("r")
    planner.started(JobKey("r", "j"))
    planner.failed(JobKey("r", "j"), "boom")
    planner.forget("r")
    planner.submit("r", "p", workflow)
    assert planner.ready() == [JobKey("r", "j")]
