"""The console's reads and writes of the MTA database and the tracking journal, each in a
worker thread on a short-lived connection of its own: the event loop never waits on SQLite."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from waypost.store.base import StoreError
from waypost.store.database import Database, translate
from waypost.tracking.query import Life, TrackQuery, search

T = TypeVar("T")


class NoDatabaseError(StoreError):
    """The MTA database (or the tracking journal) does not exist yet."""


async def reading(path: str, read: Callable[[Database], T]) -> T:
    """`read(db)` on a read-only connection, in a thread."""
    return await asyncio.to_thread(_with_database, path, read, readonly=True)


async def writing(path: str, write: Callable[[Database], T]) -> T:
    """`write(db)` inside one transaction (BEGIN IMMEDIATE), in a thread."""

    def in_transaction(db: Database) -> T:
        with db.transaction():
            return write(db)

    return await asyncio.to_thread(_with_database, path, in_transaction, readonly=False)


def _with_database(path: str, use: Callable[[Database], T], *, readonly: bool) -> T:
    # Never create the database: one missing means the wrong configuration, not an
    # empty queue, and a file created here would belong to the wrong process.
    if not os.path.exists(path):
        raise NoDatabaseError(f"no MTA database at {path} yet (nothing was ever queued)")
    db = Database.open(path, readonly=readonly, create_schema=False)
    try:
        return use(db)
    except sqlite3.Error as exc:
        raise translate(exc) from None
    finally:
        db.close()


async def track(path: str, query: TrackQuery, limit: int = 50) -> list[Life]:
    """The lives the query finds in the tracking journal, in a thread."""
    return await asyncio.to_thread(_track, path, query, limit)


def _track(path: str, query: TrackQuery, limit: int) -> list[Life]:
    if not os.path.exists(path):
        raise NoDatabaseError(f"no tracking journal at {path} yet (nothing was tracked)")
    try:
        return search(path, query, limit=limit)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the tracking journal {path}: {exc}") from None
