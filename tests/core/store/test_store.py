from __future__ import annotations

import sqlite3

import pytest

from wsidesk.core.errors import ProfileError, StoreError
from wsidesk.core.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data")
    yield s
    s.close()


def _make_run(store: Store, run_id: str, profile: str) -> None:
    store.create_run(run_id=run_id, profile=profile, workflow="wf", jobs=[("j1", "b"), ("j2", "b")])


def test_store_uses_wal_sqlite_in_data_folder(store, tmp_path):
    db = tmp_path / "data" / "wsidesk.sqlite3"
    assert db.is_file()
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_profile_cannot_see_or_open_another_profiles_runs(store):
    _make_run(store, "r-alice", "alice")
    _make_run(store, "r-bob", "bob")
    assert [r.run_id for r in store.list_runs("alice")] == ["r-alice"]
    assert [r.run_id for r in store.list_runs("bob")] == ["r-bob"]
    with pytest.raises(ProfileError, match="no run 'r-bob'"):
        store.get_run("alice", "r-bob")
    assert store.get_run("bob", "r-bob").profile == "bob"


def test_run_folders_are_per_profile(store, tmp_path):
    _make_run(store, "r1", "alice")
    assert store.get_run("alice", "r1").run_dir == tmp_path / "data" / "profiles" / "alice" / "runs" / "r1"


def test_job_states_and_outputs_round_trip(store):
    _make_run(store, "r1", "alice")
    store.set_job_state("r1", "j1", "running")
    store.set_job_state("r1", "j1", "succeeded", outputs={"tiles": "/x/tiles.json"})
    store.set_job_state("r1", "j2", "failed", error="boom")
    jobs = {j.job_id: j for j in store.jobs("r1")}
    assert jobs["j1"].state == "succeeded" and jobs["j1"].outputs == {"tiles": "/x/tiles.json"}
    assert jobs["j1"].started is not None and jobs["j1"].finished >= jobs["j1"].started
    assert jobs["j2"].error == "boom"


def test_find_resumable_matches_same_file_and_content_only(store):
    store.create_run(run_id="r1", profile="p", workflow="wf", jobs=[("j", "b")], source="/a.yaml", source_sha256="x")
    assert store.find_resumable("p", "/a.yaml", "x").run_id == "r1"
    assert store.find_resumable("p", "/a.yaml", "other") is None
    assert store.find_resumable("q", "/a.yaml", "x") is None
    store.set_run_status("r1", "succeeded")
    assert store.find_resumable("p", "/a.yaml", "x") is None


def test_profiles_add_list_remove_and_validate_names(store):
    assert store.profiles() == ["default"]
    store.add_profile("alice")
    store.add_profile("bob")
    assert store.profiles() == ["alice", "bob"]
    store.remove_profile("bob")
    assert store.profiles() == ["alice"]
    with pytest.raises(ProfileError, match="invalid profile name"):
        store.add_profile("../evil")
    with pytest.raises(ProfileError, match="no profile named"):
        store.remove_profile("nobody")


def test_slides_are_per_profile(store, tmp_path):
    store.add_slide("alice", tmp_path / "a.svs")
    assert store.slides("alice") == [tmp_path / "a.svs"]
    assert store.slides("bob") == []


def test_tile_checkpoints_survive_reopen(tmp_path):
    store = Store(tmp_path)
    _make_run(store, "r1", "p")
    store.set_tile_states("r1", "j1", [(0, "done", None), (1, "failed", "read error")])
    store.close()
    reopened = Store(tmp_path)
    assert reopened.tile_states("r1", "j1") == {0: ("done", None), 1: ("failed", "read error")}
    reopened.close()


def test_unusable_data_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="--data-dir"):
        Store(blocker / "data")


def test_store_checkpoints_are_scoped_to_run_and_job(store):
    from wsidesk.core.store.db import StoreCheckpoints

    _make_run(store, "r1", "p")
    a, b = StoreCheckpoints(store, "r1", "j1"), StoreCheckpoints(store, "r1", "j2")
    a.save([(3, "done", "12 cells")])
    assert a.load() == {3: ("done", "12 cells")}
    assert b.load() == {}


def _finish_segment_job(store: Store, run_id: str, profile: str, slide, cells: str) -> None:
    store.create_run(run_id=run_id, profile=profile, workflow=f"wf {run_id}", jobs=[("t", "b"), ("seg", "b")])
    store.set_job_state(run_id, "t", "succeeded", outputs={"tiles": "/x/tiles.json"}, slide=slide)
    store.set_job_state(run_id, "seg", "succeeded", outputs={"cells": cells, "tiles": "/x/tiles.json"}, slide=slide)


def test_segmentations_of_a_slide_come_from_the_index_newest_run_first(store, tmp_path):
    slide, other = tmp_path / "a.svs", tmp_path / "b.svs"
    _finish_segment_job(store, "r1", "alice", slide, "/r1/cells.geojson")
    _finish_segment_job(store, "r2", "alice", other, "/r2/cells.geojson")
    _finish_segment_job(store, "r3", "alice", slide, "/r3/cells.geojson")
    _finish_segment_job(store, "r4", "bob", slide, "/r4/cells.geojson")
    store.set_job_state("r1", "t", "failed", error="x")  # a job without cells is never listed

    found = store.segmentations("alice", tmp_path / "." / "a.svs")
    assert [(s.run_id, s.job_id, s.workflow, str(s.cells)) for s in found] == [
        ("r3", "seg", "wf r3", "/r3/cells.geojson"),
        ("r1", "seg", "wf r1", "/r1/cells.geojson"),
    ]
    assert [s.run_id for s in store.segmentations("bob", slide)] == ["r4"]
    assert store.segmentations("alice", tmp_path / "c.svs") == []


def test_segmentation_index_is_backfilled_from_run_folders_on_first_open(tmp_path):
    import numpy as np

    from wsidesk.core.slide.reader import ArrayReader
    from wsidesk.core.tiling.grid import plan_tiles

    root = tmp_path / "data"
    slide = tmp_path / "slide.svs"
    store = Store(root)
    _finish_segment_job(store, "old", "alice", None, "/old/cells.geojson")
    _finish_segment_job(store, "broken", "alice", None, "/broken/cells.geojson")  # no tiles.json
    run_dir = store.get_run("alice", "old").run_dir
    store.close()
    reader = ArrayReader(np.full((600, 800, 3), 200, dtype=np.uint8), path=str(slide))
    (run_dir / "seg").mkdir(parents=True)
    plan_tiles(reader, tile_size=256, padding=0).write_json(run_dir / "seg" / "tiles.json")
    db = sqlite3.connect(root / "wsidesk.sqlite3")
    db.execute("DROP TABLE segmentations")  # a data folder from before the index existed
    db.commit()
    db.close()

    reopened = Store(root)
    try:
        assert [(s.run_id, str(s.cells)) for s in reopened.segmentations("alice", slide)] == [
            ("old", "/old/cells.geojson")
        ]
    finally:
        reopened.close()


def test_states_are_stored_as_their_plain_words(store):
    from wsidesk.core.states import JobState, RunStatus

    _make_run(store, "r1", "alice")
    store.set_job_state("r1", "j1", JobState.SUCCEEDED, outputs={})
    store.set_run_status("r1", RunStatus.SUCCEEDED)
    db = sqlite3.connect(store.layout.database)
    assert db.execute("SELECT state, typeof(state) FROM jobs WHERE job_id = 'j1'").fetchone() == ("succeeded", "text")
    assert db.execute("SELECT status FROM runs").fetchone() == ("succeeded",)
    db.close()
