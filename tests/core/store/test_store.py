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
