"""The store under faults: a full disk, an empty or damaged database beside run folders, case twins."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsidesk.core.errors import ProfileError, StoreError
from wsidesk.core.store import Store
from wsidesk.core.store.db import StoreDamagedError


def _fill_until_full(store: Store) -> StoreError:
    # SQLite's own limit: past max_page_count every write fails with SQLITE_FULL, as on a full disk.
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(StoreError) as caught:
        for batch in range(100):
            store.set_tile_states("r", "j", [(batch * 1000 + i, "done", "x" * 200) for i in range(1000)])
    return caught.value


def test_full_database_reports_disk_full_not_a_failed_rollback(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    error = _fill_until_full(store)
    assert str(error).startswith("disk full: ")
    assert "MB free in" in str(error) and str(tmp_path / "data") in str(error)
    assert "no transaction is active" not in str(error)
    assert not store._db.in_transaction
    assert store._db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    store.add_profile("still-works")  # the next transaction starts cleanly
    assert "still-works" in store.profiles()


def _run_folder(data: Path) -> None:
    (data / "profiles" / "alice" / "runs" / "20240101-000000-abcdef").mkdir(parents=True)


@pytest.mark.parametrize("content", [b"", b"this is not a database at all" * 100])
def test_empty_or_garbage_store_beside_run_folders_is_refused(tmp_path: Path, content: bytes) -> None:
    data = tmp_path / "data"
    _run_folder(data)
    (data / "wsidesk.sqlite3").write_bytes(content)
    with pytest.raises(StoreDamagedError, match="wsidesk store rebuild"):
        Store(data)
    assert (data / "wsidesk.sqlite3").read_bytes() == content  # nothing was changed


def test_missing_store_beside_run_folders_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _run_folder(data)
    with pytest.raises(StoreDamagedError, match="is missing"):
        Store(data)


def test_empty_store_without_runs_is_simply_created(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "wsidesk.sqlite3").write_bytes(b"")
    Store(data).close()


def test_damaged_pages_are_reported_at_start_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store(data)
    store.set_tile_states("r", "j", [(i, "done", "x" * 100) for i in range(2000)])
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    raw = bytearray((data / "wsidesk.sqlite3").read_bytes())
    page = 4096
    raw[3 * page : 6 * page] = b"\xff" * (3 * page)  # garbage inside, a valid header
    (data / "wsidesk.sqlite3").write_bytes(bytes(raw))
    with pytest.raises(StoreDamagedError, match="wsidesk store rebuild"):
        Store(data)


def test_profile_names_equal_ignoring_case_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.add_profile("alice")
    with pytest.raises(ProfileError, match="'alice' only in case"):
        store.add_profile("Alice")
    with pytest.raises(ProfileError, match="only in case"):
        store.create_run(run_id="r1", profile="ALICE", workflow="w", jobs=[("j", "b")])
    store.add_profile("alice")  # the same name again is fine
    assert store.profiles() == ["alice"]


def test_claim_run_refuses_a_live_owner_and_takes_a_dead_ones(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.create_run(run_id="r1", profile="p", workflow="w", jobs=[("j", "b")], owner_pid=4242)
    assert store.claim_run("r1", 1, alive=lambda pid: True) == 4242
    assert store.get_run("p", "r1").owner_pid == 4242
    assert store.claim_run("r1", 1, alive=lambda pid: False) is None
    assert store.get_run("p", "r1").owner_pid == 1


def test_unexpected_sqlite_error_is_a_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    with pytest.raises(StoreError, match="failed"), store._tx() as db:
        db.execute("INSERT INTO no_such_table VALUES (1)")
    assert not store._db.in_transaction
