"""An older Waypost's MTA database brought up to date: schema version 1 (before priorities)
to 2 (each recipient's rank), on SQLite when it is opened or repaired, on PostgreSQL by its
migration; the checker reads a version-1 database and finds a recipient out of rank."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from helpers import new_message
from store_backends import Backend

from waypost.clock import ManualClock
from waypost.message import Priority
from waypost.store.base import StoreError
from waypost.store.check import EXIT_PROBLEMS, EXIT_REPAIRED, check_database
from waypost.store.check.report import Repair
from waypost.store.database import Database, message_values
from waypost.store.postgresql.connection import PgConnection
from waypost.store.postgresql.database import PgDatabase
from waypost.store.postgresql.schema import MIGRATIONS
from waypost.store.schema import SCHEMA_VERSION
from waypost.store.sqlite import SQLiteStore

PRIORITIES = (Priority.NORMAL, Priority.URGENT, Priority.NON_URGENT)


def enqueue_each_priority(db: Database) -> list[int]:
    return [
        db.enqueue(new_message(("a@localhost", "b@localhost"), priority=p), 1.0, 1e9)
        for p in PRIORITIES
    ]


def make_version_1(path: Path) -> list[int]:
    """A database as Waypost's schema version 1 had it, holding a message of each priority."""
    db = Database.open(str(path))
    ids = enqueue_each_priority(db)
    db.close()
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        DROP INDEX recipients_due;
        ALTER TABLE recipients DROP COLUMN rank;
        CREATE INDEX recipients_due ON recipients (due_at) WHERE due_at IS NOT NULL;
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
        """
    )
    conn.close()
    return ids


def ranks(path: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT DISTINCT message_id, rank FROM recipients ORDER BY message_id"
        ).fetchall()
    finally:
        conn.close()


async def test_sqlite_version_1_is_upgraded_when_the_store_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    path = tmp_path / "mta.db"
    ids = make_version_1(path)
    store = await SQLiteStore.open(str(path), clock=ManualClock())
    assert ranks(path) == [(ids[0], 1), (ids[1], 0), (ids[2], 2)]
    migrated = [r for r in caplog.records if getattr(r, "waypost_event", None)]
    assert any(r.waypost_event.name == "store-migrated" for r in migrated)
    claims = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    assert [c.message_id for c in claims] == [ids[1]] * 2 + [ids[0]] * 2 + [ids[2]] * 2
    await store.close()
    # Sound but for the leases the claim left, which no worker holds now.
    assert {p.action for p in check_database(str(path)).problems} == {Repair.REQUEUE}


def test_a_command_refuses_version_1_until_the_mta_upgrades_it(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    make_version_1(path)
    with pytest.raises(StoreError, match=r"schema is version 1, .* `waypost serve`"):
        Database.open(str(path), readonly=True)


def test_the_checker_reads_version_1_and_its_repair_upgrades_it(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    ids = make_version_1(path)
    report = check_database(str(path))
    assert report.fatal is None and report.exit_code == EXIT_PROBLEMS
    assert [(p.object_id, p.action) for p in report.problems] == [
        ("schema_version", Repair.UPGRADE)
    ]
    assert (report.messages, report.recipients) == (3, 6)
    repaired = check_database(str(path), repair=True)
    assert repaired.exit_code == EXIT_REPAIRED
    assert repaired.schema_version is not None
    assert ranks(path) == [(ids[0], 1), (ids[1], 0), (ids[2], 2)]
    assert check_database(str(path)).schema_version == SCHEMA_VERSION


def test_a_recipient_out_of_its_messages_rank_is_found_and_set(tmp_path: Path) -> None:
    path = tmp_path / "mta.db"
    db = Database.open(str(path))
    ids = enqueue_each_priority(db)
    db.conn.execute("UPDATE recipients SET rank = 7 WHERE message_id = ?", (ids[1],))
    db.close()
    report = check_database(str(path))
    assert {p.action for p in report.problems} == {Repair.SET_RANK}
    assert len(report.problems) == 2 and "has rank 7" in report.problems[0].reason
    assert check_database(str(path), repair=True).exit_code == EXIT_REPAIRED
    assert ranks(path) == [(ids[0], 1), (ids[1], 0), (ids[2], 2)]


def test_postgresql_migration_2_ranks_the_queued_recipients(pg_dsn: str) -> None:
    pg = Backend("postgresql", pg_dsn)
    conn = PgConnection.connect(pg_dsn)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    conn.close()
    # Version 1's rows: a message of each priority, its recipient with no rank yet.
    raw = PgConnection.connect(pg_dsn)
    for priority in PRIORITIES:
        new = new_message(("a@localhost",), priority=priority)
        (mid,) = raw.execute(
            "INSERT INTO messages (mts_id, originator, envelope, size, received_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            message_values(new, 1.0, 1e9),
        ).fetchone()
        raw.execute(
            "INSERT INTO recipients (message_id, rcpt_index, address, next_hop, state, due_at, "
            "updated_at) VALUES (?, 0, 'a@localhost', 'local', 'queued', 1, 1)",
            (mid,),
        )
    raw.close()
    db = PgDatabase.connect(pg_dsn)
    assert db.migrated == (1, len(MIGRATIONS))
    db.close()
    assert pg.sql("SELECT rank FROM recipients ORDER BY message_id") == [(1,), (0,), (2,)]
