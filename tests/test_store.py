"""The SQLite MTA database: durability, group commit, leases, validation on read."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from helpers import new_message

from waypost.clock import ManualClock
from waypost.handoff import Result
from waypost.message import decode_envelope
from waypost.store import (
    BadContentError,
    Database,
    RecipientState,
    ReportOwed,
    Settlement,
    SQLiteStore,
    StoreError,
)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "mta.db")


async def open_store(path: str, clock: ManualClock | None = None) -> SQLiteStore:
    return await SQLiteStore.open(path, clock=clock or ManualClock(), lifetime=1000.0)


def states(path: str) -> dict[int, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT id, state FROM recipients").fetchall())


async def test_enqueue_is_durable_and_readable_from_another_connection(db_path: str) -> None:
    store = await open_store(db_path)
    new = new_message(("a@localhost", "b@localhost"))
    message_id = await store.enqueue(new)
    # Another connection (another process would do the same) sees it at once.
    with sqlite3.connect(db_path) as conn:
        blob, size = conn.execute(
            "SELECT envelope, size FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        rows = conn.execute(
            "SELECT address, next_hop, state FROM recipients WHERE message_id = ? "
            "ORDER BY rcpt_index",
            (message_id,),
        ).fetchall()
    assert decode_envelope(blob) == new.message.envelope
    assert size == len(new.message.content)
    assert rows == [("a@localhost", "local", "queued"), ("b@localhost", "local", "queued")]
    assert await store.read_content(message_id) == new.message.content
    await store.close()


async def test_concurrent_enqueues_share_commits(db_path: str) -> None:
    store = await open_store(db_path)
    ids = await asyncio.gather(*(store.enqueue(new_message()) for _ in range(500)))
    assert len(set(ids)) == 500
    # Group commit: far fewer transactions than enqueues.
    assert store.commits < 100
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 500
    await store.close()


async def test_database_is_wal_with_full_sync(db_path: str) -> None:
    store = await open_store(db_path)
    db = Database.open(db_path)
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # Freed pages zeroed only where that costs no extra I/O, whatever SQLite's build.
    assert db.conn.execute("PRAGMA secure_delete").fetchone()[0] == 2  # FAST
    db.close()
    await store.close()


async def test_claim_leases_and_lease_expiry_brings_work_back(db_path: str) -> None:
    clock = ManualClock()
    store = await open_store(db_path, clock)
    await store.enqueue(new_message(("a@localhost",)))
    first = await store.claim(owner="w1", limit=10, lease_seconds=60)
    assert len(first.claims) == 1
    assert states(db_path) == {first.claims[0].recipient_id: "leased"}
    # Leased work is not handed out twice while the lease holds.
    assert (await store.claim(owner="w2", limit=10, lease_seconds=60)).claims == []
    await clock.advance(61)
    again = await store.claim(owner="w2", limit=10, lease_seconds=60)
    assert [c.recipient_id for c in again.claims] == [first.claims[0].recipient_id]
    assert again.claims[0].lease_was_expired
    assert again.claims[0].previous_owner == "w1"
    # The first worker's late outcome no longer counts: the lease is w2's.
    late = Settlement(recipient_id=first.claims[0].recipient_id, result=Result.DELIVERED)
    assert await store.settle("w1", [late]) == 0
    assert states(db_path) == {first.claims[0].recipient_id: "leased"}
    await store.close()


async def test_settle_records_outcomes_and_removes_finished_messages(db_path: str) -> None:
    clock = ManualClock()
    store = await open_store(db_path, clock)
    message_id = await store.enqueue(new_message(("a@localhost", "b@localhost", "c@localhost")))
    batch = await store.claim(owner="w", limit=10, lease_seconds=60)
    a, b, c = batch.claims
    settled = await store.settle(
        "w",
        [
            Settlement(recipient_id=a.recipient_id, result=Result.DELIVERED),
            Settlement(
                recipient_id=b.recipient_id,
                result=Result.DEFERRED,
                detail="4.4.1 no answer",
                next_attempt=clock.now() + 300,
            ),
            Settlement(
                recipient_id=c.recipient_id,
                result=Result.FAILED,
                detail="5.1.1 unknown",
                report=ReportOwed.NON_DELIVERY,
            ),
        ],
    )
    assert settled == 3
    db = Database.open(db_path)
    rows = {r.recipient_id: r for r in db.queue_rows()}
    assert rows[a.recipient_id].state == "delivered"
    assert rows[b.recipient_id].state == "deferred"
    assert rows[b.recipient_id].attempts == 1
    assert rows[b.recipient_id].due_at == clock.now() + 300
    assert rows[c.recipient_id].report == "non-delivery"
    # Not due yet; then due.
    assert (await store.claim(owner="w", limit=10, lease_seconds=60)).claims == []
    await clock.advance(300)
    (retry,) = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    assert retry.recipient_id == b.recipient_id and retry.attempts == 1
    await store.settle("w", [Settlement(recipient_id=b.recipient_id, result=Result.DELIVERED)])
    # c still owes a report, so the message stays.
    assert db.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    db.conn.execute("UPDATE recipients SET report = NULL WHERE id = ?", (c.recipient_id,))
    assert db.remove_if_finished(message_id)
    for table in ("messages", "content", "recipients"):
        assert db.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    db.close()
    await store.close()


async def test_a_bad_object_is_quarantined_and_the_rest_flows(db_path: str) -> None:
    store = await open_store(db_path)
    good = [await store.enqueue(new_message((f"u{i}@localhost",))) for i in range(5)]
    bad = good[2]
    with sqlite3.connect(db_path) as conn:
        # The founding bug: an index into the envelope that points nowhere.
        conn.execute("UPDATE recipients SET rcpt_index = 7 WHERE message_id = ?", (bad,))
        conn.execute("UPDATE messages SET envelope = x'00ff' WHERE id = ?", (good[4],))
    batch = await store.claim(owner="w", limit=10, lease_seconds=60)
    assert sorted(c.message_id for c in batch.claims) == [good[0], good[1], good[3]]
    reasons = {(q.kind, q.object_id): q.reason for q in batch.quarantined}
    assert any("out of range" in r for r in reasons.values())
    assert ("message", good[4]) in reasons
    with sqlite3.connect(db_path) as conn:
        kinds = conn.execute("SELECT kind, object_id FROM quarantine ORDER BY id").fetchall()
        assert ("message", good[4]) in kinds
        assert conn.execute(
            "SELECT state FROM recipients WHERE message_id = ?", (bad,)
        ).fetchone() == ("quarantined",)
    # Quarantined objects are not handed out again.
    assert (await store.claim(owner="w", limit=10, lease_seconds=60)).claims == []
    await store.close()


async def test_recipient_of_a_missing_message_is_moved_out(db_path: str) -> None:
    store = await open_store(db_path)
    keep = await store.enqueue(new_message())
    gone = await store.enqueue(new_message())
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM messages WHERE id = ?", (gone,))
    batch = await store.claim(owner="w", limit=10, lease_seconds=60)
    assert [c.message_id for c in batch.claims] == [keep]
    assert [q.kind for q in batch.quarantined] == ["recipient"]
    with sqlite3.connect(db_path) as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM recipients WHERE message_id = ?", (gone,)
            ).fetchone()[0]
            == 0
        )
        row = conn.execute("SELECT row FROM quarantine WHERE kind = 'recipient'").fetchone()[0]
        assert f'"message_id": {gone}' in row
    await store.close()


async def test_truncated_content_is_detected(db_path: str) -> None:
    store = await open_store(db_path)
    message_id = await store.enqueue(new_message())
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "UPDATE content SET data = substr(data, 1, 3) WHERE message_id = ?", (message_id,)
        )
    with pytest.raises(BadContentError, match="bytes"):
        await store.read_content(message_id)
    await store.close()


async def test_release_leases_at_startup(db_path: str) -> None:
    store = await open_store(db_path)
    await store.enqueue(new_message(("a@localhost", "b@localhost")))
    await store.claim(owner="dead-worker", limit=10, lease_seconds=3600)
    assert await store.release_leases() == 2
    assert set(states(db_path).values()) == {RecipientState.QUEUED}
    assert len((await store.claim(owner="w", limit=10, lease_seconds=60)).claims) == 2
    await store.close()


async def test_write_failure_answers_every_caller_with_an_error(db_path: str) -> None:
    store = await open_store(db_path)
    await store.enqueue(new_message())
    # Make the database refuse writes the way a failing disk does.
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    results = await asyncio.gather(
        *(store.enqueue(new_message()) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, StoreError) for r in results)
    # The writer survives and carries on once the fault is gone.
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TRIGGER refuse")
    assert await store.enqueue(new_message()) > 0
    await store.close()


async def test_deferred_delivery_time_is_respected(db_path: str) -> None:
    clock = ManualClock()
    store = await open_store(db_path, clock)
    await store.enqueue(new_message(deferred_delivery=clock.now() + 600))
    assert (await store.claim(owner="w", limit=10, lease_seconds=60)).claims == []
    await clock.advance(600)
    assert len((await store.claim(owner="w", limit=10, lease_seconds=60)).claims) == 1
    await store.close()


async def test_database_files_are_owner_only(db_path: str) -> None:
    store = await open_store(db_path)
    await store.enqueue(new_message())
    for suffix in ("", "-wal", "-shm"):
        assert Path(db_path + suffix).stat().st_mode & 0o777 == 0o600, suffix
    await store.close()
