"""A psycopg connection that speaks sqlite3's dialect of the DB-API, so that the MTA
database's SQL (store.database, store.listing, store.admin) serves PostgreSQL as it is.

The SQL is written once, with `?` parameters; here it becomes psycopg's (`%s`), and the
few spellings that differ are made PostgreSQL's, once per statement text (cached)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# Spelled differently, the same meaning:
_REWRITES = (
    # SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's ILIKE does.
    (re.compile(r"\bLIKE\b"), "ILIKE"),
    # The write lock SQLite takes at BEGIN; PostgreSQL locks rows as it writes them.
    (re.compile(r"\bBEGIN IMMEDIATE\b"), "BEGIN"),
    (re.compile(r"\bAS BLOB\b"), "AS bytea"),
)


@functools.lru_cache(maxsize=512)
def to_postgresql(sql: str) -> str:
    """sqlite3's SQL as psycopg's: `%` doubled (it is psycopg's escape), `?` as `%s`."""
    text = sql.replace("%", "%%").replace("?", "%s")
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


class PgConnection:
    """The methods of sqlite3.Connection that the store uses, on a psycopg connection in
    autocommit mode (transactions are explicit, BEGIN … COMMIT, as with SQLite)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    @classmethod
    def connect(cls, dsn: str, *, application_name: str = "waypost") -> PgConnection:
        given = conninfo_to_dict(dsn)
        # What the connection string does not say: a dead server or network is noticed
        # within a minute, not at the kernel's two hours (a node stuck on a lost connection
        # would hold its leases that long); a server that does not answer in 10 s is one
        # that is down.
        defaults = {
            "application_name": application_name,
            "keepalives": "1",
            "keepalives_idle": "10",
            "keepalives_interval": "5",
            "keepalives_count": "3",
            "connect_timeout": "10",
        }
        extra = {key: value for key, value in defaults.items() if key not in given}
        return cls(psycopg.connect(make_conninfo(dsn, **extra), autocommit=True))

    def execute(self, sql: str, args: Sequence[object] = ()) -> psycopg.Cursor[Any]:
        return self.raw.execute(to_postgresql(sql), args)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        cur.executemany(to_postgresql(sql), rows)
        return cur

    def executescript(self, sql: str) -> None:
        """Statements with no parameters, as they are (schema scripts)."""
        self.raw.execute(sql.encode())

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    @property
    def healthy(self) -> bool:
        return not self.raw.closed and not self.raw.broken

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()
