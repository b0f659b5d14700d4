"""The embedded MTA database: SQLite in WAL mode (synchronous=FULL), with the group-commit
writer of store.group_commit."""

from __future__ import annotations

from waypost import events
from waypost.clock import Clock
from waypost.store.database import Database, Lifetime
from waypost.store.group_commit import DEFAULT_LIFETIMES, GroupCommitStore


class SQLiteStore(GroupCommitStore):
    """The Store on SQLite. Open with `await SQLiteStore.open(path)`."""

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        clock: Clock | None = None,
        lifetime: Lifetime = DEFAULT_LIFETIMES,
        max_batch: int = 1000,
    ) -> SQLiteStore:
        store = cls(path, clock=clock, lifetime=lifetime, max_batch=max_batch)
        await store._start()
        return store

    def open_database(self, *, create_schema: bool) -> Database:
        db = Database.open(self.path, create_schema=create_schema)
        found, now = db.migrated
        if found != now:
            events.emit(events.STORE_MIGRATED, path=self.path, old=found, new=now)
        return db
