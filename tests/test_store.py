"""What only the SQLite MTA database does: WAL with synchronous=FULL, owner-only files, every
lease released at start-up (one process uses the file). The rest: test_store_conformance.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import new_message

from waypost.clock import ManualClock
from waypost.store import (
    Database,
    RecipientState,
    SQLiteStore,
)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "mta.db")


async def open_store(path: str, clock: ManualClock | None = None) -> SQLiteStore:
    return await SQLiteStore.open(path, clock=clock or ManualClock(), lifetime=1000.0)


def states(path: str) -> dict[int, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT id, state FROM recipients").fetchall())


async def test_database_is_wal_with_full_sync(db_path: str) -> None:
    store = await open_store(db_path)
    db = Database.open(db_path)
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # Freed pages zeroed only where that costs no extra I/O, whatever SQLite's build.
    assert db.conn.execute("PRAGMA secure_delete").fetchone()[0] == 2  # FAST
    db.close()
    await store.close()


async def test_release_leases_at_startup(db_path: str) -> None:
    store = await open_store(db_path)
    await store.enqueue(new_message(("a@localhost", "b@localhost")))
    await store.claim(owner="dead-worker", limit=10, lease_seconds=3600)
    assert await store.release_leases() == 2
    assert set(states(db_path).values()) == {RecipientState.QUEUED}
    assert len((await store.claim(owner="w", limit=10, lease_seconds=60)).claims) == 2
    await store.close()


async def test_database_files_are_owner_only(db_path: str) -> None:
    store = await open_store(db_path)
    await store.enqueue(new_message())
    for suffix in ("", "-wal", "-shm"):
        assert Path(db_path + suffix).stat().st_mode & 0o777 == 0o600, suffix
    await store.close()
