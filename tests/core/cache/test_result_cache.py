"""Result reuse end to end on real tissue and export jobs (small synthetic slides, thread executor)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from wsidesk.core.cache import ResultCache
from wsidesk.core.cache.gate import CacheGate
from wsidesk.core.cache.moved import moved_results, relink_results
from wsidesk.core.cache.result_cache import incomplete
from wsidesk.core.events import EventName
from wsidesk.core.scheduler.executors import ThreadExecutor
from wsidesk.core.scheduler.runner import Runner
from wsidesk.core.store import Store
from wsidesk.core.workflow.model import Branch, Job, Workflow


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    from wsidesk.core.slide.demo import write_demo_slide

    root = tmp_path_factory.mktemp("cache_slides")
    a = write_demo_slide(root / "a.svs", width=640, height=512, mpp=0.5, seed=1).path
    b = write_demo_slide(root / "b.svs", width=512, height=384, mpp=0.5, seed=2).path
    return Path(a), Path(b)


class Env:
    def __init__(self, data: Path) -> None:
        self.store = Store(data)
        self.executor = ThreadExecutor(2)
        self.events: list = []
        self.runner = Runner(self.store, self.executor, sink=self.events.append)

    def run(self, wf: Workflow, profile: str = "default") -> str:
        run_id = self.runner.submit(wf, profile=profile)
        assert self.runner.wait(timeout=120)
        assert self.runner.run_status(run_id) == "succeeded"
        return run_id

    def names(self, run_id: str, name: EventName) -> dict[str, dict]:
        return {e.job_id: dict(e.fields) for e in self.events if e.run_id == run_id and e.event is name}

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.store.close()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


def workflow(a: Path, b: Path, *, min_tissue: float = 0.0, defaults: dict | None = None) -> Workflow:
    return Workflow(
        name="reuse",
        defaults=defaults or {},
        branches=(
            Branch(
                "one",
                (
                    Job("tissue_a", "tissue", str(a), params={"min_tissue": min_tissue}),
                    Job("table", "export", depends_on=("tissue_a",), params={"format": "csv"}),
                ),
            ),
            Branch("two", (Job("tissue_b", "tissue", str(b)),)),
        ),
    )


def test_second_run_reuses_every_job_with_identical_outputs_and_provenance(env, slides):
    first = env.run(workflow(*slides))
    second = env.run(workflow(*slides))
    reused = env.names(second, EventName.JOB_REUSED)
    assert set(reused) == {"tissue_a", "table", "tissue_b"}
    assert not env.names(second, EventName.JOB_STARTED)
    for job_id, fields in reused.items():
        assert fields["source_run"] == first
        assert fields["source_job"] == job_id
        assert len(fields["fingerprint"]) == 64
    summary = json.loads((env.store.get_run("default", second).run_dir / "summary.json").read_text())
    for job_id, job in summary["jobs"].items():
        assert job["state"] == "succeeded"
        assert job["provenance"]["reused_from"] == {"run_id": first, "job_id": job_id}
        for name, path in job["outputs"].items():
            assert Path(path).is_relative_to(env.store.get_run("default", second).run_dir)
            old = env.runner.summary("default", first)["jobs"][job_id]["outputs"][name]
            assert Path(path).read_bytes() == Path(old).read_bytes()
    parts = summary["jobs"]["tissue_a"]["provenance"]["parts"]
    assert parts["slide"]["path"] == str(slides[0]) and parts["params"]["min_tissue"] == 0.0
    assert summary["jobs"]["table"]["provenance"]["parts"]["upstream"].keys() == {"tissue_a"}
    assert "numpy" in summary["jobs"]["table"]["provenance"]["packages"]


def test_param_change_reruns_only_the_job_and_its_dependents(env, slides):
    env.run(workflow(*slides))
    changed = env.run(workflow(*slides, min_tissue=0.25))
    assert set(env.names(changed, EventName.JOB_STARTED)) == {"tissue_a", "table"}
    assert set(env.names(changed, EventName.JOB_REUSED)) == {"tissue_b"}


def test_cache_false_and_no_cache_force_recomputation(env, slides, tmp_path, capsys):
    env.run(workflow(*slides))
    forced = env.run(workflow(*slides, defaults={"cache": False}))
    assert not env.names(forced, EventName.JOB_REUSED)
    assert set(env.names(forced, EventName.JOB_STARTED)) == {"tissue_a", "table", "tissue_b"}

    from wsidesk.cli import main

    yaml = tmp_path / "wf.yaml"
    yaml.write_text(f"name: cli\ndag:\n  b:\n    - {{job_id: t, type: tissue, image: {slides[1]}}}\n")
    data = ["--data-dir", str(tmp_path / "data"), "--json", "--workers", "1"]
    assert main(["run", str(yaml), *data]) == 0
    again = json.loads(capsys.readouterr().out)["runs"][0]
    assert again["jobs"]["t"]["provenance"]["reused_from"] is not None  # tissue_b's result, by fingerprint
    assert main(["run", str(yaml), "--no-cache", *data]) == 0
    forced_cli = json.loads(capsys.readouterr().out)["runs"][0]
    assert forced_cli["jobs"]["t"]["provenance"]["reused_from"] is None
    log = (Path(forced_cli["run_dir"]) / "events.jsonl").read_text()
    assert "job_started" in log and "job_reused" not in log


def test_a_profile_sees_only_results_it_ran_or_reused(env, slides):
    cache = ResultCache(env.store.layout.root / "cache")
    alice = env.run(workflow(*slides), profile="alice")
    assert cache.entries("bob") == []
    bob = env.run(workflow(*slides), profile="bob")
    assert set(env.names(bob, EventName.JOB_REUSED)) == {"tissue_a", "table", "tissue_b"}
    bob_dir = env.store.get_run("bob", bob).run_dir
    for job in env.runner.summary("bob", bob)["jobs"].values():
        assert all(Path(p).is_relative_to(bob_dir) for p in job["outputs"].values())
    assert len(cache.entries("bob")) == 3 and cache.entries("carol") == []
    assert [r.run_id for r in env.store.list_runs("bob")] == [bob]
    with pytest.raises(Exception, match="has no run"):
        env.store.get_run("bob", alice)
    cache.close()


def test_damaged_entry_is_discarded_with_a_warning_and_the_job_recomputes(env, slides, caplog):
    first = env.run(workflow(*slides))
    cache = ResultCache(env.store.layout.root / "cache")
    fingerprint = env.names(env.run(workflow(*slides)), EventName.JOB_REUSED)["tissue_b"]["fingerprint"]
    entry = cache.get(fingerprint)
    assert entry is not None
    tiles = cache.object_dir(fingerprint) / "tiles.json"
    tiles.unlink()  # a damaged cache copy must not touch the run folder it came from
    tiles.write_text("{}")  # same name, wrong size
    with caplog.at_level(logging.WARNING):
        third = env.run(workflow(*slides))
    assert "is damaged" in caplog.text and "tiles.json has 2 bytes" in caplog.text
    assert "tissue_b" in env.names(third, EventName.JOB_STARTED)
    assert "tissue_b" not in env.names(third, EventName.JOB_REUSED)
    # ... and the recomputed result is cached again, as the first run had it
    first_tiles = Path(env.runner.summary("default", first)["jobs"]["tissue_b"]["outputs"]["tiles"])
    assert (cache.object_dir(fingerprint) / "tiles.json").read_bytes() == first_tiles.read_bytes()
    shutil.rmtree(cache.object_dir(fingerprint))  # missing files: also discarded
    assert cache.lookup(fingerprint) is None and cache.get(fingerprint) is None
    cache.close()


def test_partial_or_failed_results_are_never_cached(tmp_path):
    out = tmp_path / "job"
    out.mkdir()
    tiles = out / "tiles.json"
    tiles.write_text(json.dumps({"partial": True, "failed": 0}))
    assert incomplete(out, {"tiles": str(tiles)}) == "its result is partial"
    tiles.write_text(json.dumps({"partial": False, "failed": 3}))
    assert incomplete(out, {"tiles": str(tiles)}) == "3 tiles failed"
    assert "missing" in str(incomplete(out, {"cells": str(out / "cells.geojson")}))
    cache = ResultCache(tmp_path / "cache")
    assert (
        cache.add(
            "f" * 64,
            job_type="segment",
            out_dir=out,
            outputs={"tiles": str(tiles)},
            profile="p",
            run_id="r",
            job_id="j",
        )
        is None
    )
    assert cache.entries() == []
    cache.close()


def test_cancelled_run_caches_nothing_and_a_later_run_computes(env, slides):
    wf = workflow(*slides)
    run_id = env.runner.submit(wf, profile="default")
    env.runner.cancel_run(run_id)
    assert env.runner.wait(timeout=60)
    states = {j.job_id: j.state for j in env.store.jobs(run_id)}
    cached = ResultCache(env.store.layout.root / "cache")
    done = {job for job, state in states.items() if state == "succeeded"}
    assert len(cached.entries()) == len(done)  # only jobs that finished whole; nothing of cancelled ones
    again = env.run(wf)
    assert set(env.names(again, EventName.JOB_STARTED)) | set(env.names(again, EventName.JOB_REUSED)) == set(states)
    assert set(env.names(again, EventName.JOB_REUSED)) == done
    cached.close()


def test_prune_by_age_and_size(env, slides):
    env.run(workflow(*slides))
    cache = ResultCache(env.store.layout.root / "cache")
    entries = cache.entries()
    assert len(entries) == 3
    assert cache.prune(older_than=3600) == []
    smallest = min(e.size for e in entries)
    dropped = cache.prune(max_size=sum(e.size for e in entries) - 1)
    assert len(dropped) >= 1 and len(cache.entries()) == 3 - len(dropped)
    assert not any(cache.object_dir(e.fingerprint).exists() for e in dropped)
    assert cache.prune(max_size=smallest - 1) and cache.entries() == []
    assert all(cache.lookup(e.fingerprint) is None for e in entries)  # pruned: the next run computes
    cache.close()


def test_moved_slide_is_found_by_fingerprint_and_relinked(env, slides, tmp_path):
    moved = tmp_path / "elsewhere" / "renamed.svs"
    moved.parent.mkdir()
    shutil.copy(slides[1], moved)
    first = env.run(Workflow(name="m", branches=(Branch("b", (Job("t", "tissue", str(slides[1])),)),)))
    cache = ResultCache(env.store.layout.root / "cache")
    found = moved_results(env.store, cache, "default", moved)
    assert [(r.run_id, r.job_id, r.old_path) for r in found] == [(first, "t", str(slides[1]))]
    assert moved_results(env.store, cache, "other", moved) == []
    assert relink_results(env.store, cache, "default", moved) == found
    assert moved.resolve() in env.store.slides("default")
    assert moved_results(env.store, cache, "default", moved) == []  # now recorded at its new place
    cache.close()


def test_cache_that_cannot_be_opened_only_costs_reuse(tmp_path, caplog):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        gate = CacheGate(tmp_path / "cache")
        assert gate.cache is None
    assert gate.cache is None and caplog.text.count("without reuse") == 1  # said once


@pytest.mark.slow  # a Dask LocalCluster
def test_reuse_is_decided_on_the_client_for_dask_too(tmp_path, slides, dask_threads_cluster):
    from wsidesk.core.scheduler.dask_executor import DaskExecutor

    store = Store(tmp_path / "data")
    executor = DaskExecutor.connect(dask_threads_cluster.scheduler_address, max_workers=2)
    events: list = []
    runner = Runner(store, executor, sink=events.append)
    wf = Workflow(name="d", branches=(Branch("b", (Job("t", "tissue", str(slides[1])),)),))
    try:
        run_ids = []
        for _ in range(2):
            run_ids.append(runner.submit(wf, profile="default"))
            assert runner.wait(timeout=120)
        first, second = run_ids
        assert runner.run_status(second) == "succeeded"
        reused = [e for e in events if e.run_id == second and e.event is EventName.JOB_REUSED]
        assert [e.fields["source_run"] for e in reused] == [first]
        assert not [e for e in events if e.run_id == second and e.event is EventName.JOB_STARTED]
    finally:
        executor.shutdown(wait=True)
        store.close()


def test_a_nearly_full_disk_leaves_the_cache_alone(tmp_path, caplog, monkeypatch):
    import wsidesk.core.cache.gate as gate_module

    monkeypatch.setattr(gate_module, "MIN_FREE_BYTES", 1 << 62)
    gate = CacheGate(tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        assert gate.cache is None and gate.cache is None
    assert caplog.text.count("neither reused nor cached") == 1
    assert not (tmp_path / "cache").exists()


def test_cache_commands_list_and_prune(env, slides, capsys):
    from wsidesk.cli import main

    env.run(workflow(*slides))
    data = ["--data-dir", str(env.store.layout.root)]
    assert main(["cache", "list", "--json", *data]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["profile"] == "default" and len(listed["entries"]) == 3
    assert main(["cache", "list", "--json", "--profile", "bob", *data]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == []  # bob ran nothing
    assert main(["cache", "prune", *data]) == 2  # says what to give
    assert main(["cache", "prune", "--older-than", "1d", *data]) == 0
    assert "pruned 0 cached result(s)" in capsys.readouterr().err
    assert main(["cache", "prune", "--max-size", "0", *data]) == 0
    assert "pruned 3 cached result(s)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cache", "prune", "--max-size", "lots", *data])
    assert "is not a size" in capsys.readouterr().err
