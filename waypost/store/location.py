"""Where the MTA database is — an SQLite file, or a PostgreSQL database named by a libpq
connection string — and how the commands, the console and `mailq` open it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from waypost.store.base import NoDatabaseError
from waypost.store.database import Database


@dataclass(frozen=True, slots=True)
class DatabaseLocation:
    """`backend` is "sqlite" (`target` a file) or "postgresql" (`target` a connection
    string)."""

    backend: str
    target: str

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    def __str__(self) -> str:
        if self.is_sqlite:
            return self.target
        from waypost.store.postgresql.database import describe  # noqa: PLC0415 - see open

        return describe(self.target)

    def open(self, *, readonly: bool = False, create_schema: bool = False) -> Database:
        """A connection of its own. Without `create_schema`, a database that does not exist
        yet is refused (NoDatabaseError): one missing means the wrong configuration, not an
        empty queue, and one created here would belong to the wrong process."""
        if self.is_sqlite:
            if not create_schema and not os.path.exists(self.target):
                raise NoDatabaseError(f"no MTA database at {self.target} (nothing was ever queued)")
            return Database.open(self.target, readonly=readonly, create_schema=create_schema)
        # Imported here: commands on an SQLite database do not load the PostgreSQL driver.
        from waypost.store.postgresql.database import PgDatabase  # noqa: PLC0415

        return PgDatabase.connect(self.target, readonly=readonly, create_schema=create_schema)
