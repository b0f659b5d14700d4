"""The MTA database's operations on one PostgreSQL connection: SQLite's (store.database),
with what PostgreSQL does differently — rows claimed under lock, skipping those another
node is claiming; one statement per enqueued message; commits that need not be durable."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import psycopg
import psycopg.conninfo

from waypost.store.base import NewMessage, NoDatabaseError, StoreCorruptError, StoreError
from waypost.store.database import CLAIM_SQL, Database, Lifetime, OutcomeRow, message_values
from waypost.store.postgresql.connection import PgConnection
from waypost.store.postgresql.schema import SCHEMA_VERSION, migrate, schema_version

# The rows read are locked until the claim's transaction commits; rows another node has
# locked are skipped, not waited for, so that nodes claiming together take different work.
#
# A small message's content comes along (column 19): one round trip per message fewer
# than reading it after the claim.
CLAIM_CONTENT_LIMIT = 64 * 1024
CLAIM_SQL_LOCKED = (
    CLAIM_SQL.replace(
        "       r.last_error\n",
        f"       r.last_error, CASE WHEN m.size <= {CLAIM_CONTENT_LIMIT} THEN c.data END\n",
    ).replace(
        "LEFT JOIN messages AS m ON m.id = r.message_id",
        "LEFT JOIN messages AS m ON m.id = r.message_id "
        "LEFT JOIN content AS c ON c.message_id = m.id",
    )
    + " FOR UPDATE OF r SKIP LOCKED\n"
)

# The message, its content and its recipients by one statement: one round trip per
# message, whatever its number of recipients.
_ENQUEUE_SQL = """
WITH m AS (
    INSERT INTO messages (mts_id, originator, envelope, size, received_at, expires_at)
    VALUES (?, ?, ?, ?, ?, ?) RETURNING id
), c AS (
    INSERT INTO content (message_id, data) SELECT id, ? FROM m
), r AS (
    INSERT INTO recipients (message_id, rcpt_index, address, next_hop, state, due_at,
                            updated_at, rank)
    SELECT m.id, x.n - 1, x.address, x.next_hop, 'queued', ?, ?, ?
    FROM m, unnest(?::text[], ?::text[]) WITH ORDINALITY AS x(address, next_hop, n)
)
SELECT id FROM m
"""


class PgDatabase(Database):
    """Operations on the MTA database over one PostgreSQL connection."""

    claim_sql = CLAIM_SQL_LOCKED
    begin_sql = "BEGIN"
    errors: tuple[type[Exception], ...] = (psycopg.Error,)
    conn: PgConnection
    # (found, now) when this connection created or migrated the schema.
    migrated: tuple[int, int] = (SCHEMA_VERSION, SCHEMA_VERSION)

    @classmethod
    def connect(cls, dsn: str, *, readonly: bool = False, create_schema: bool = True) -> PgDatabase:
        """A connection to the database `dsn` names; with `create_schema` the schema is
        created or migrated first (see schema.migrate)."""
        try:
            conn = PgConnection.connect(dsn)
        except psycopg.Error as exc:
            raise StoreError(_reason(exc)) from None
        db = cls(conn, describe(dsn))
        try:
            if create_schema and not readonly:
                db.migrated = migrate(conn)
            else:
                found = schema_version(conn)
                if not found:
                    raise NoDatabaseError(
                        f"no MTA database in {describe(dsn)} (no Waypost has used it)"
                    )
                if found != SCHEMA_VERSION:
                    raise StoreError(
                        f"the database's schema is version {found}, this Waypost's is "
                        f"{SCHEMA_VERSION}: start this Waypost's `waypost serve` to migrate it"
                    )
            if readonly:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            conn.close()
            raise db.translate(exc) from None
        except StoreError:
            conn.close()
            raise
        return db

    def translate(self, exc: Exception) -> StoreError:
        if isinstance(exc, psycopg.errors.DataCorrupted | psycopg.errors.IndexCorrupted):
            return StoreCorruptError(_reason(exc))
        return StoreError(_reason(exc))

    def after_copy(self) -> None:
        for table in ("messages", "recipients", "quarantine"):
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )

    def healthy(self) -> bool:
        return self.conn.healthy

    def begin(self, *, durable: bool) -> None:
        self.conn.execute("BEGIN")
        if not durable:
            # Only leases: the server answers before its WAL reaches the disk (the next
            # durable commit flushes it), as SQLite's synchronous=NORMAL does.
            self.conn.execute("SET LOCAL synchronous_commit = off")

    def commit(self, *, durable: bool) -> None:
        self.conn.execute("COMMIT")

    def abandon(self, *, durable: bool) -> None:
        if self.conn.healthy and self.conn.in_transaction:
            with contextlib.suppress(psycopg.Error):
                self.conn.rollback()

    def insert_returning_id(self, sql: str, args: Sequence[object]) -> int:
        row = self.conn.execute(sql + " RETURNING id", args).fetchone()
        assert row is not None
        return int(row[0])

    # Each of these is one statement over arrays where SQLite's runs one per row: on
    # PostgreSQL every statement is a round trip, and psycopg's executemany costs this
    # process more than the rows it sends.

    def take_leases(self, ids: Sequence[int], until: float, owner: str, now: float) -> None:
        self.conn.execute(
            "UPDATE recipients SET state = 'leased', due_at = ?, lease_owner = ?, updated_at = ? "
            "WHERE id = ANY(?)",
            (until, owner, now, list(ids)),
        )

    def _leases_held(self, owner: str, ids: Sequence[int]) -> dict[int, int]:
        rows = self.conn.execute(
            "SELECT id, message_id FROM recipients WHERE id = ANY(?) "
            "AND state = 'leased' AND lease_owner = ?",
            (list(ids), owner),
        ).fetchall()
        return {int(rid): int(mid) for rid, mid in rows}

    def _record_outcomes(self, rows: list[OutcomeRow]) -> None:
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        self.conn.execute(
            "UPDATE recipients AS r SET state = v.state, due_at = v.due_at, "
            "attempts = r.attempts + v.attempted, last_error = v.detail, lease_owner = NULL, "
            "report = v.report, updated_at = v.now "
            "FROM unnest(?::text[], ?::float8[], ?::int[], ?::text[], ?::text[], ?::float8[], "
            "?::bigint[], ?::text[]) AS v(state, due_at, attempted, detail, report, now, id, "
            "owner) WHERE r.id = v.id AND r.state = 'leased' AND r.lease_owner = v.owner",
            [list(column) for column in columns],
        )

    def still_owed(self, message_id: int, recipient_ids: Sequence[int]) -> bool:
        # Locked rows: another node completing the same reports is waited for, and its
        # completed ones then no longer match (READ COMMITTED reads them again).
        ids = sorted(set(recipient_ids))
        rows = self.conn.execute(
            "SELECT id FROM recipients WHERE message_id = ? AND id = ANY(?) "
            "AND report IS NOT NULL ORDER BY id FOR UPDATE",
            (message_id, ids),
        ).fetchall()
        return len(rows) == len(ids)

    def remove_if_finished(self, message_id: int) -> bool:
        return bool(self._remove_finished([message_id]))

    def remove_finished(self, message_ids: set[int]) -> None:
        self._remove_finished(sorted(message_ids))

    def _remove_finished(self, message_ids: list[int]) -> int:
        """Remove those of the messages whose every recipient is final with no report owed;
        how many. The messages' rows are locked first, in id order: two nodes settling the
        last two recipients of one message take turns, and the second, reading afresh
        after the first committed, sees both final and removes it (in one statement, both
        would see the other's recipient still leased, and neither would)."""
        if not message_ids:
            return 0
        self.conn.execute(
            "SELECT id FROM messages WHERE id = ANY(?) ORDER BY id FOR UPDATE", (message_ids,)
        )
        cur = self.conn.execute(
            "WITH done AS (SELECT t.id FROM unnest(?::bigint[]) AS t(id) WHERE NOT EXISTS "
            "(SELECT 1 FROM recipients WHERE message_id = t.id AND "
            "(state NOT IN ('delivered', 'failed') OR report IS NOT NULL))), "
            "r AS (DELETE FROM recipients WHERE message_id IN (SELECT id FROM done)), "
            "c AS (DELETE FROM content WHERE message_id IN (SELECT id FROM done)) "
            "DELETE FROM messages WHERE id IN (SELECT id FROM done)",
            (message_ids,),
        )
        return int(cur.rowcount)

    def enqueue(self, new: NewMessage, now: float, lifetime: Lifetime) -> int:
        envelope = new.message.envelope
        due = max(now, envelope.deferred_delivery or now)
        row = self.conn.execute(
            _ENQUEUE_SQL,
            (
                *message_values(new, now, lifetime),
                new.message.content,
                due,
                now,
                envelope.priority.rank,
                [rcpt.address for rcpt in envelope.recipients],
                [str(hop) for hop in new.next_hops],
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])


def describe(dsn: str) -> str:
    """The connection string without its password, for messages and events."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "PostgreSQL"
    shown = " ".join(
        f"{key}={value}"
        for key, value in parts.items()
        if key in {"host", "hostaddr", "port", "dbname", "user", "service"}
    )
    return f"PostgreSQL {shown}".strip()


def _reason(exc: Exception) -> str:
    """The server's or libpq's message, on one line."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
