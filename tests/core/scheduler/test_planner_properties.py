"""Property tests: random workflows, runs, profiles and outcomes; every rule holds after every step."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from wsidesk.core.states import SCHEDULED_JOB_STATES
from wsidesk.core.workflow.model import Branch, Job, Workflow

BRANCH_NAMES = ("branch_A", "branch_B", "branch_C", "branch_D")
PROFILES = ("p0", "p1", "p2", "p3", "p4")
TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED}


@dataclass
class RunSpec:
    run_id: str
    profile: str
    workflow: Workflow
    done: tuple[str, ...]


@st.composite
def workflows(draw: st.DrawFn) -> tuple[Workflow, tuple[str, ...]]:
    """A random workflow plus a resume set closed under its predecessors.

    Jobs are created in one global order; each joins a random branch and may depend on any earlier
    job, so branch order and depends_on both point forward and the graph is acyclic.
    """
    n_branches = draw(st.integers(1, len(BRANCH_NAMES)))
    n_jobs = draw(st.integers(0, 9))
    members: list[list[Job]] = [[] for _ in range(n_branches)]
    preds: dict[str, list[str]] = {}
    for i in range(n_jobs):
        b = draw(st.integers(0, n_branches - 1))
        deps = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True)) if i else []
        job = Job(job_id=f"job{i}", type="tissue", image="a.svs", depends_on=tuple(f"job{d}" for d in deps))
        preds[job.job_id] = [j.job_id for j in members[b]] + list(job.depends_on)
        members[b].append(job)
    wf = Workflow(name="wf", branches=tuple(Branch(BRANCH_NAMES[b], tuple(js)) for b, js in enumerate(members)))
    done: list[str] = []
    if n_jobs and draw(st.integers(0, 3)) == 0:
        wanted = draw(st.lists(st.booleans(), min_size=n_jobs, max_size=n_jobs))
        for i in range(n_jobs):
            jid = f"job{i}"
            if wanted[i] and all(p in done for p in preds[jid]):
                done.append(jid)
    return wf, tuple(done)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, int, list[RunSpec]]:
    workers = draw(st.integers(1, 4))
    max_active = draw(st.integers(1, 3))
    n_runs = draw(st.integers(1, 5))
    runs = []
    for i in range(n_runs):
        wf, done = draw(workflows())
        runs.append(RunSpec(f"r{i}", draw(st.sampled_from(PROFILES)), wf, done))
    return workers, max_active, runs


@dataclass
class Shadow:
    """What the changes told us, checked against what the planner says."""

    planner: Planner
    specs: dict[str, RunSpec] = field(default_factory=dict)
    finished: Counter[str] = field(default_factory=Counter)
    skipped: Counter[JobKey] = field(default_factory=Counter)
    cancelled: Counter[JobKey] = field(default_factory=Counter)
    queue: list[str] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    cancel_requested: set[str] = field(default_factory=set)

    def apply(self, changes: list[Any]) -> None:
        p = self.planner
        for change in changes:
            if isinstance(change, ProfileQueued):
                assert change.profile not in self.queue and change.profile not in self.active
                self.queue.append(change.profile)
                assert change.position == len(self.queue)
            elif isinstance(change, ProfileActivated):
                assert len(self.active) < p.max_active_profiles
                if change.profile in self.queue:
                    assert self.queue[0] == change.profile, "queue is not FIFO"
                    self.queue.pop(0)
                self.active.add(change.profile)
            elif isinstance(change, ProfileReleased):
                self.active.remove(change.profile)
            elif isinstance(change, JobSkipped):
                assert p.state(change.key) is JobState.SKIPPED
                assert change.reason and p.reason(change.key) == change.reason
                self.skipped[change.key] += 1
            elif isinstance(change, JobCancellation):
                assert p.state(change.key) is JobState.CANCELLED
                self.cancelled[change.key] += 1
            elif isinstance(change, RunFinished):
                assert p.run_status(change.run_id) == change.status
                self.finished[change.run_id] += 1
            else:
                raise AssertionError(f"unexpected change {change!r}")
        # A profile that was queued and then lost all its work (cancel) leaves the queue silently.
        self.queue = [
            q for q in self.queue if any(s.profile == q and p.run_status(r) is None for r, s in self.specs.items())
        ]

    def check(self) -> None:  # noqa: C901, PLR0912 - one place that states every rule
        p = self.planner
        states: dict[JobKey, JobState] = {}
        for run_id in self.specs:
            for job_id, state in p.job_states(run_id).items():
                states[JobKey(run_id, job_id)] = state

        def preds(key: JobKey) -> list[JobKey]:
            wf = self.specs[key.run_id].workflow
            branch = next(b for b in wf.branches if any(j.job_id == key.job_id for j in b.jobs))
            earlier = [j.job_id for j in branch.jobs[: [j.job_id for j in branch.jobs].index(key.job_id)]]
            deps = list(wf.job(key.job_id).depends_on)
            return [JobKey(key.run_id, j) for j in earlier + deps]

        running = [key for key, s in states.items() if s is JobState.RUNNING]
        assert sorted(p.running()) == sorted(running)
        assert len(running) <= p.workers

        # One running job per (run, branch).
        per_branch = Counter((key.run_id, p.branch(key)) for key in running)
        assert all(n <= 1 for n in per_branch.values()), per_branch

        active = p.active_profiles()
        queued = p.queued_profiles()
        assert len(active) <= p.max_active_profiles
        assert not set(active) & set(queued)
        assert len(set(queued)) == len(queued)
        assert set(active) == self.active
        assert list(queued) == self.queue
        if queued:
            assert len(active) == p.max_active_profiles, "a slot is idle while a profile waits"

        open_profiles = {spec.profile for run_id, spec in self.specs.items() if p.run_status(run_id) is None}
        assert set(active) | set(queued) == open_profiles

        eligible = set()
        for key, state in states.items():
            before = [states[q] for q in preds(key)]
            if state in (JobState.RUNNING, JobState.SUCCEEDED):
                # FIFO and depends_on: it started only after every predecessor succeeded.
                assert all(s is JobState.SUCCEEDED for s in before), (key, before)
            if state is JobState.RUNNING:
                assert self.specs[key.run_id].profile in active
            if state is JobState.PENDING:
                assert key.run_id not in self.cancel_requested
                # Failure propagates at once: no pending job sits behind a failed or skipped one.
                assert not any(s in (JobState.FAILED, JobState.SKIPPED) for s in before), key
                if all(s is JobState.SUCCEEDED for s in before) and self.specs[key.run_id].profile in active:
                    eligible.add(key)
            if state is JobState.SKIPPED:
                assert any(s in (JobState.FAILED, JobState.SKIPPED) for s in before), key
                assert self.skipped[key] == 1
            elif state is JobState.CANCELLED:
                assert self.cancelled[key] == 1
            else:
                assert self.skipped[key] == 0 and self.cancelled[key] == 0

        ready = p.ready()
        assert len(set(ready)) == len(ready)
        assert set(ready) <= eligible, set(ready) - eligible
        assert len(ready) == min(p.workers - len(running), len(eligible))

        for run_id in self.specs:
            run_states = [s for key, s in states.items() if key.run_id == run_id]
            status = p.run_status(run_id)
            unfinished = any(s in (JobState.PENDING, JobState.RUNNING) for s in run_states)
            assert (status is None) == unfinished
            assert self.finished[run_id] == (0 if unfinished else 1)
            if status is not None:
                if JobState.CANCELLED in run_states:
                    assert status == "cancelled"
                elif JobState.FAILED in run_states or JobState.SKIPPED in run_states:
                    assert status == "failed"
                else:
                    assert status == "succeeded"
            counts = p.snapshot()["runs"][run_id]["counts"]
            assert counts == {s.value: run_states.count(s) for s in SCHEDULED_JOB_STATES}

        assert p.is_idle() == all(p.run_status(r) is not None for r in self.specs)


OPS = ("submit", "start", "start", "start", "finish", "finish", "finish", "cancel_run", "cancel_profile")


def drive(
    data: st.DataObject | None,
    workers: int,
    max_active: int,
    runs: list[RunSpec],
    script: list[tuple[str, Any]] | None = None,
) -> tuple[list[Any], list[tuple[str, Any]]]:
    """Play a random scenario (or replay ``script``), checking every rule after every step."""
    planner = Planner(workers=workers, max_active_profiles=max_active)
    shadow = Shadow(planner)
    log: list[Any] = []
    recorded: list[tuple[str, Any]] = []
    pending_runs = list(runs)
    replay = iter(script) if script is not None else None

    def choose(kind: str, strategy: st.SearchStrategy[Any]) -> Any:
        if replay is not None:
            got_kind, value = next(replay)
            assert got_kind == kind
        else:
            assert data is not None
            value = data.draw(strategy, label=kind)
        recorded.append((kind, value))
        return value

    def submit_next() -> list[Any]:
        spec = pending_runs.pop(0)
        shadow.specs[spec.run_id] = spec
        return planner.submit(spec.run_id, spec.profile, spec.workflow, done=spec.done)

    def step(op: str) -> None:
        ready = planner.ready()
        running = planner.running()
        log.append(("ready", ready))
        if op == "submit":
            changes = submit_next()
        elif op == "start":
            key = ready[choose("which_ready", st.integers(0, len(ready) - 1))]
            changes = planner.started(key)
        elif op == "finish":
            key = running[choose("which_running", st.integers(0, len(running) - 1))]
            outcome = choose("outcome", st.sampled_from(("ok", "ok", "ok", "fail", "cancelled")))
            if outcome == "ok":
                changes = planner.succeeded(key)
            elif outcome == "fail":
                changes = planner.failed(key, "boom")
            else:
                shadow.cancel_requested.add(key.run_id)
                changes = planner.cancelled(key)
        elif op == "cancel_run":
            run_id = choose("which_run", st.sampled_from(sorted(shadow.specs)))
            shadow.cancel_requested.add(run_id)
            changes = planner.cancel_run(run_id)
        else:
            profile = choose("which_profile", st.sampled_from(PROFILES))
            shadow.cancel_requested.update(r for r, s in shadow.specs.items() if s.profile == profile)
            changes = planner.cancel_profile(profile)
        log.append((op, changes))
        shadow.apply(changes)
        shadow.check()

    n_steps = choose("n_steps", st.integers(0, 60))
    for _ in range(n_steps):
        options = [
            op
            for op in OPS
            if (op != "submit" or pending_runs)
            and (op != "start" or planner.ready())
            and (op != "finish" or planner.running())
            and (op not in ("cancel_run", "cancel_profile") or shadow.specs)
        ]
        if not options:
            break
        # Cancels are rare so most runs get far enough to exercise failure and fairness.
        op = choose("op", st.sampled_from(options))
        if op.startswith("cancel") and choose("really_cancel", st.integers(0, 4)) != 0:
            continue
        step(op)

    # Drain: everything left is submitted, started and completed, oldest first.
    while pending_runs:
        step("submit")
    while not planner.is_idle():
        for key in planner.ready():
            shadow.apply(planner.started(key))
            shadow.check()
        running = planner.running()
        assert running, "work is pending but nothing is running or ready: the planner stalled"
        changes = planner.succeeded(running[0])
        log.append(("drain", changes))
        shadow.apply(changes)
        shadow.check()

    states = [s for r in shadow.specs for s in planner.job_states(r).values()]
    assert all(s in TERMINAL for s in states)
    assert all(shadow.finished[r] == 1 for r in shadow.specs)
    assert planner.queued_profiles() == () and planner.active_profiles() == ()
    return log, recorded


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_every_rule_holds_after_every_step(scenario: tuple[int, int, list[RunSpec]], data: st.DataObject) -> None:
    workers, max_active, runs = scenario
    log, recorded = drive(data, workers, max_active, runs)
    # Determinism: the same calls give the same answers.
    log_again, _ = drive(None, workers, max_active, runs, script=recorded)
    assert log_again == log


@settings(max_examples=50, deadline=None)
@given(scenario=scenarios())
def test_all_jobs_succeed_when_nothing_fails(scenario: tuple[int, int, list[RunSpec]]) -> None:
    workers, max_active, runs = scenario
    planner = Planner(workers=workers, max_active_profiles=max_active)
    for spec in runs:
        planner.submit(spec.run_id, spec.profile, spec.workflow, done=spec.done)
    while not planner.is_idle():
        for key in planner.ready():
            planner.started(key)
        planner.succeeded(planner.running()[-1])  # newest first, for a different order
    for spec in runs:
        assert planner.run_status(spec.run_id) == "succeeded"
        assert set(planner.job_states(spec.run_id).values()) <= {JobState.SUCCEEDED}
