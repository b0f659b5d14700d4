"""The console's reads and writes of the MTA database and the tracking journal, each in a
worker thread on a short-lived connection of its own: the event loop never waits on the
database."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from waypost.store.base import NoDatabaseError, StoreError
from waypost.store.database import Database
from waypost.store.location import DatabaseLocation
from waypost.tracking.query import Life, TrackQuery, search

T = TypeVar("T")


async def reading(database: DatabaseLocation, read: Callable[[Database], T]) -> T:
    """`read(db)` on a read-only connection, in a thread."""
    return await asyncio.to_thread(_with_database, database, read, readonly=True)


async def writing(database: DatabaseLocation, write: Callable[[Database], T]) -> T:
    """`write(db)` inside one transaction (BEGIN IMMEDIATE), in a thread."""

    def in_transaction(db: Database) -> T:
        with db.transaction():
            return write(db)

    return await asyncio.to_thread(_with_database, database, in_transaction, readonly=False)


def _with_database(
    database: DatabaseLocation, use: Callable[[Database], T], *, readonly: bool
) -> T:
    # Never created here (DatabaseLocation.open): NoDatabaseError when it is missing.
    db = database.open(readonly=readonly)
    try:
        return use(db)
    except db.errors as exc:
        raise db.translate(exc) from None
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
