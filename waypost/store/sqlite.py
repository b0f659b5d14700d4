"""The embedded MTA database: SQLite in WAL mode (synchronous=FULL), with the group-commit
writer of store.group_commit."""

from __future__ import annotations

from waypost.clock import Clock
from waypost.store.database import Database
from waypost.store.group_commit import GroupCommitStore


class SQLiteStore(GroupCommitStore):
    """The Store on SQLite. Open with `await SQLiteStore.open(path)`."""

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        clock: Clock | None = None,
        lifetime: float = 432000.0,
        max_batch: int = 1000,
    ) -> SQLiteStore:
        store = cls(path, clock=clock, lifetime=lifetime, max_batch=max_batch)
        await store._start()
        return store

    def open_database(self, *, create_schema: bool) -> Database:
        return Database.open(self.path, create_schema=create_schema)
