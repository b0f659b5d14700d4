"""Copying the MTA database from one database to another (SQLite ⇄ PostgreSQL) with nothing
lost: every message, content, recipient and quarantine row, ids kept, in one transaction on
the target, then both read back and compared row for row by a digest.

Leases are the only thing not copied as they are: no worker holds them once the MTA is
stopped, so a leased recipient arrives queued and due."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from waypost.store.base import StoreError
from waypost.store.database import Database

# Each table with its columns, and the column that orders it.
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "messages",
        ("id", "mts_id", "originator", "envelope", "size", "received_at", "expires_at", "state"),
    ),
    ("content", ("message_id", "data")),
    (
        "recipients",
        (
            "id",
            "message_id",
            "rcpt_index",
            "address",
            "next_hop",
            "state",
            "due_at",
            "attempts",
            "last_error",
            "lease_owner",
            "report",
            "updated_at",
            "rank",
        ),
    ),
    ("quarantine", ("id", "kind", "object_id", "reason", "row", "data", "quarantined_at")),
)
_CHUNK = 500
_RECIPIENT_STATE, _RECIPIENT_DUE, _RECIPIENT_OWNER = 5, 6, 9


class MigrationError(StoreError):
    """The copy could not be made, or does not match its source; the target is unchanged."""


@dataclass(frozen=True, slots=True)
class Copied:
    """How many rows of each table were copied, and how many leases were released."""

    rows: dict[str, int]
    released: int


def _rows(db: Database, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    cur = db.conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}")
    while True:
        chunk = cur.fetchmany(_CHUNK)
        if not chunk:
            return
        yield from (tuple(row) for row in chunk)


def _unleased(now: float) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    def unlease(row: tuple[Any, ...]) -> tuple[Any, ...]:
        if row[_RECIPIENT_STATE] != "leased":
            return row
        changed = list(row)
        changed[_RECIPIENT_STATE], changed[_RECIPIENT_DUE] = "queued", now
        changed[_RECIPIENT_OWNER] = None
        return tuple(changed)

    return unlease


def _normal(value: object) -> bytes:
    """One value as the digest sees it, the same whichever database it was read from."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"b" + bytes(value)
    if isinstance(value, float):
        return b"f" + repr(value).encode()
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if value is None:
        return b"n"
    return b"s" + str(value).encode("utf-8", "surrogateescape")


def digest(db: Database, now: float) -> dict[str, tuple[int, str]]:
    """Per table, its row count and a SHA-256 of its rows in order (leases released)."""
    found: dict[str, tuple[int, str]] = {}
    unlease = _unleased(now)
    for table, columns in TABLES:
        h = hashlib.sha256()
        count = 0
        for read in _rows(db, table, columns):
            row = unlease(read) if table == "recipients" else read
            for value in row:
                part = _normal(value)
                h.update(len(part).to_bytes(8, "big") + part)
            count += 1
        found[table] = (count, h.hexdigest())
    return found


def copy(source: Database, target: Database, now: float) -> Copied:
    """Copy every row of `source` into `target`, which must hold no message yet; raises
    MigrationError when the target is not empty or the copy differs from the source."""
    for table, _ in TABLES:
        (count,) = target.conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        if count:
            raise MigrationError(f"the target already holds {count} rows in {table}")
    rows: dict[str, int] = {}
    released = 0
    unlease = _unleased(now)
    with target.transaction():
        for table, columns in TABLES:
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            batch: list[tuple[Any, ...]] = []
            rows[table] = 0
            for row in _rows(source, table, columns):
                if table == "recipients" and row[_RECIPIENT_STATE] == "leased":
                    released += 1
                    batch.append(unlease(row))
                else:
                    batch.append(row)
                if len(batch) == _CHUNK:
                    target.conn.executemany(sql, batch)
                    rows[table] += len(batch)
                    batch.clear()
            if batch:
                target.conn.executemany(sql, batch)
                rows[table] += len(batch)
        target.after_copy()
        # Read back before the commit: a copy that differs is never committed.
        if digest(target, now) != digest(source, now):
            raise MigrationError("the copy read back differs from its source")
    return Copied(rows=rows, released=released)
