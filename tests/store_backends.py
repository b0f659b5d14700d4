"""Both MTA databases behind one harness, for the tests every Store must pass: SQLite (a file
in the test's directory) and PostgreSQL (a database of its own on the run's server)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from waypost.clock import Clock, ManualClock
from waypost.store.base import Lifetimes
from waypost.store.database import Database
from waypost.store.group_commit import GroupCommitStore
from waypost.store.postgresql.database import PgDatabase
from waypost.store.postgresql.store import NodeSettings, PostgresStore
from waypost.store.sqlite import SQLiteStore

BACKENDS = ("sqlite", "postgresql")


class Backend:
    """Opens stores and plain connections on one test's database."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        self.where = where  # the SQLite file, or the PostgreSQL connection string

    async def open(
        self,
        clock: Clock | None = None,
        *,
        lifetime: float | Lifetimes = 1000.0,
        node: str = "n1",
        node_timeout: float = 30.0,
    ) -> GroupCommitStore:
        clock = clock or ManualClock()
        if self.name == "sqlite":
            return await SQLiteStore.open(self.where, clock=clock, lifetime=lifetime)
        return await PostgresStore.open(
            self.where,
            clock=clock,
            lifetime=lifetime,
            node=NodeSettings(name=node, heartbeat_interval=3600, node_timeout=node_timeout),
        )

    def database(self) -> Database:
        """A connection of its own, as the command line opens one."""
        if self.name == "sqlite":
            return Database.open(self.where)
        return PgDatabase.connect(self.where)

    def sql(self, query: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (`?` parameters) in a transaction of its own; its rows."""
        db = self.database()
        try:
            with db.transaction():
                cur = db.conn.execute(query, args)
                rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            return rows
        finally:
            db.close()

    def states(self) -> dict[int, str]:
        return {int(i): str(s) for i, s in self.sql("SELECT id, state FROM recipients")}

    def refuse_inserts(self, table: str) -> None:
        """Make the database refuse rows for `table`, as a failing disk would."""
        if self.name == "sqlite":
            self.sql(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
            return
        self.sql(
            "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk I/O error'; END $$"
        )
        self.sql(
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )

    def allow_inserts(self, table: str) -> None:
        if self.name == "sqlite":
            self.sql(f"DROP TRIGGER refuse_{table}")
        else:
            self.sql(f"DROP TRIGGER refuse_{table} ON {table}")
