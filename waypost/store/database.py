"""The MTA database's operations on one SQLite connection, synchronous.

The group-commit writer runs these in its thread, many to a transaction; the
command line runs them directly. Callers own the transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from waypost.handoff import Claim, Result
from waypost.message import BY_RANK, Envelope, Priority, encode_envelope
from waypost.store import quarantine
from waypost.store.base import (
    BadContentError,
    ClaimBatch,
    Lifetimes,
    MessageState,
    NewMessage,
    OwedRecipient,
    OwedReport,
    Quarantined,
    RecipientState,
    Settlement,
    StoreCorruptError,
    StoreError,
    lifetime_of,
)
from waypost.store.schema import SCHEMA_VERSION, connect, create, recorded_version
from waypost.store.validate import check_message_row, check_recipient_row

CLAIM_SQL = """
SELECT r.id, r.message_id, r.rcpt_index, r.address, r.next_hop, r.state, r.due_at,
       r.attempts, r.report, r.lease_owner,
       m.id, m.mts_id, m.originator, m.envelope, m.size, m.received_at, m.expires_at, m.state,
       r.last_error
FROM recipients AS r LEFT JOIN messages AS m ON m.id = r.message_id
WHERE r.rank = ? AND r.due_at <= ? ORDER BY r.due_at LIMIT ?
"""
# The ranks a claim takes in turn (0 urgent, 1 normal, 2 non-urgent: Priority.rank); an
# urgent-only claim takes the first.
RANKS = tuple(p.rank for p in BY_RANK)

# Bound parameters per statement when ids are listed in an IN (...): well under SQLite's limit.
_CHUNK = 500

_DELIVERED = RecipientState.DELIVERED.value
_DEFERRED = RecipientState.DEFERRED.value
_FAILED = RecipientState.FAILED.value

_OPEN_STATES = (
    f"('{RecipientState.QUEUED}', '{RecipientState.DEFERRED}', '{RecipientState.LEASED}', "
    f"'{RecipientState.HELD}', '{RecipientState.QUARANTINED}')"
)


# An UPDATE's parameters recording one outcome (see Database._record_outcomes).
OutcomeRow = tuple[str, float | None, int, str | None, str | None, float, int, str]


@dataclass(frozen=True, slots=True)
class HandOver:
    """One gateway conversion to hand over (see Database.hand_over_many)."""

    owner: str
    outcomes: Sequence[Settlement]
    new: NewMessage
    lease_seconds: float


def _settlement_rows(
    owner: str, outcomes: Sequence[Settlement], held: dict[int, int], now: float
) -> list[OutcomeRow]:
    """The UPDATE parameters for the outcomes of the recipients in `held`."""
    rows: list[OutcomeRow] = []
    for outcome in outcomes:
        rid = outcome.recipient_id
        if rid not in held:
            continue
        result = outcome.result
        if result is Result.DELIVERED:
            state, due = _DELIVERED, None
        elif result is Result.DEFERRED:
            state, due = _DEFERRED, outcome.next_attempt
        else:
            state, due = _FAILED, None
        report = outcome.report
        rows.append(
            (
                state,
                due,
                1 if outcome.attempted else 0,
                outcome.detail[:1000] or None,
                report.value if report else None,
                now,
                rid,
                owner,
            )
        )
    return rows


# How long a message may wait: one lifetime, or one by priority.
Lifetime = float | Lifetimes


def message_values(new: NewMessage, now: float, lifetime: Lifetime) -> tuple[object, ...]:
    """A new message's row in `messages`: mts_id, originator, envelope, size, received_at,
    expires_at."""
    envelope = new.message.envelope
    return (
        envelope.mts_id,
        envelope.originator,
        encode_envelope(envelope),
        len(new.message.content),
        now,
        now + lifetime_of(lifetime, envelope),
    )


def translate(exc: sqlite3.Error) -> StoreError:
    """SQLite's errors as the store's: corruption is told apart from other failures."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "corrupt" in text
    ):
        return StoreCorruptError(text)
    return StoreError(text)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One recipient as `waypost queue list` shows it."""

    message_id: int
    recipient_id: int
    address: str
    originator: str
    next_hop: str
    state: str
    attempts: int
    last_error: str | None
    due_at: float | None
    received_at: float
    size: int
    report: str | None
    # Its message's priority, in the order the queue serves it (Priority.rank).
    rank: int = 1

    @property
    def priority(self) -> Priority:
        return BY_RANK[self.rank] if 0 <= self.rank < len(BY_RANK) else Priority.NORMAL


class Database:
    """Operations on the MTA database over one connection: SQLite's, or (a subclass,
    store.postgresql) PostgreSQL's through an adapter that speaks sqlite3's dialect of the
    DB-API, so that one body of SQL serves both."""

    # What the claim reads (the PostgreSQL subclass locks the rows it reads, skipping those
    # another node is claiming).
    claim_sql = CLAIM_SQL
    begin_sql = "BEGIN IMMEDIATE"
    # The driver's errors, which `translate` makes the store's.
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    # (found, now) when this connection created or upgraded the schema.
    migrated: tuple[int, int] = (SCHEMA_VERSION, SCHEMA_VERSION)

    def __init__(self, conn: Any, path: str) -> None:
        # sqlite3.Connection, or an adapter with the same methods (execute, executemany,
        # executescript, rollback, in_transaction, close).
        self.conn = conn
        # Where it is, for messages: the SQLite file, or the PostgreSQL server.
        self.path = path

    def translate(self, exc: Exception) -> StoreError:
        """The driver's error as the store's."""
        return translate(exc) if isinstance(exc, sqlite3.Error) else StoreError(str(exc))

    def after_copy(self) -> None:
        """After rows were inserted with their ids (store.migrate): new ids follow them.
        (SQLite's AUTOINCREMENT keeps up by itself.)"""

    def healthy(self) -> bool:
        """False once the connection is lost (a database server that went away)."""
        return True

    def begin(self, *, durable: bool) -> None:
        """Open the group commit's transaction. Not `durable`: a commit whose loss in a
        power cut costs nothing (only leases taken), which need not wait for the disk."""
        if not durable:
            self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute(self.begin_sql)

    def commit(self, *, durable: bool) -> None:
        self.conn.execute("COMMIT")
        if not durable:
            self.conn.execute("PRAGMA synchronous = FULL")

    def abandon(self, *, durable: bool) -> None:
        """Roll back after a failure, whatever state the connection was left in."""
        with contextlib.suppress(*self.errors):
            if self.conn.in_transaction:
                self.conn.rollback()
        if not durable:
            with contextlib.suppress(*self.errors):
                self.conn.execute("PRAGMA synchronous = FULL")

    def insert_returning_id(self, sql: str, args: Sequence[object]) -> int:
        """Run one INSERT; the id of the row it made."""
        row_id = self.conn.execute(sql, args).lastrowid
        assert row_id is not None
        return int(row_id)

    @classmethod
    def open(cls, path: str, *, readonly: bool = False, create_schema: bool = True) -> Database:
        try:
            conn = connect(path, readonly=readonly)
        except sqlite3.Error as exc:
            raise translate(exc) from None
        db = cls(conn, path)
        try:
            if create_schema and not readonly:
                db.migrated = create(conn)
            else:
                found = recorded_version(conn)
                if found is not None and found != SCHEMA_VERSION:
                    raise StoreError(
                        f"the database's schema is version {found}, this Waypost's is "
                        f"{SCHEMA_VERSION}: start this Waypost's `waypost serve` to migrate it"
                    )
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc) from None
        except StoreError:
            conn.close()
            raise
        return db

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN (IMMEDIATE, on SQLite) … COMMIT, rolled back on any error."""
        self.conn.execute(self.begin_sql)
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.execute("COMMIT")

    # -- the hot path -------------------------------------------------------

    def enqueue(self, new: NewMessage, now: float, lifetime: Lifetime) -> int:
        """Insert one message, its content and its recipients; returns the message id."""
        message_id = self._insert_message(new, now, lifetime)
        envelope = new.message.envelope
        due = max(now, envelope.deferred_delivery or now)
        rank = envelope.priority.rank
        self.conn.executemany(
            "INSERT INTO recipients (message_id, rcpt_index, address, next_hop, state, due_at, "
            "updated_at, rank) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            [
                (message_id, index, rcpt.address, str(hop), due, now, rank)
                for index, (rcpt, hop) in enumerate(
                    zip(new.message.envelope.recipients, new.next_hops, strict=True)
                )
            ],
        )
        return message_id

    def _insert_message(self, new: NewMessage, now: float, lifetime: Lifetime) -> int:
        """The message's row and its content, without recipients; its id."""
        content = new.message.content
        message_id = self.insert_returning_id(
            "INSERT INTO messages (mts_id, originator, envelope, size, received_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            message_values(new, now, lifetime),
        )
        self.conn.execute(
            "INSERT INTO content (message_id, data) VALUES (?, ?)", (message_id, content)
        )
        return message_id

    def claim(
        self, now: float, owner: str, limit: int, lease_seconds: float, *, urgent_only: bool = False
    ) -> ClaimBatch:
        """Lease due recipients, the most urgent first, the longest due first within a
        priority; bad rows met on the way are quarantined, not returned."""
        rows: list[Any] = []
        for rank in RANKS[:1] if urgent_only else RANKS:
            rows += self.conn.execute(self.claim_sql, (rank, now, limit - len(rows))).fetchall()
            if len(rows) >= limit:
                break
        envelopes: dict[int, Envelope | None] = {}
        claims: list[Claim] = []
        bad: list[Quarantined] = []
        leased: list[int] = []
        for row in rows:
            rid, mid = row[0], row[1]
            if row[10] is None:
                reason = f"its message {mid!r} does not exist"
                quarantine.quarantine_recipient(self.conn, rid, reason, now, remove=True)
                bad.append(Quarantined(kind="recipient", object_id=rid, reason=reason))
                continue
            if row[17] == MessageState.QUARANTINED:
                reason = f"its message {mid} is quarantined"
                quarantine.quarantine_recipient(self.conn, rid, reason, now)
                bad.append(Quarantined(kind="recipient", object_id=rid, reason=reason))
                continue
            if mid not in envelopes:
                envelope, why = check_message_row(row[10:18])
                envelopes[mid] = envelope
                if envelope is None:
                    reason = why or "bad message"
                    quarantine.quarantine_message(self.conn, mid, reason, now)
                    bad.append(Quarantined(kind="message", object_id=mid, reason=reason))
            envelope = envelopes[mid]
            if envelope is None:
                continue
            why = check_recipient_row(row[0:9], envelope)
            if why is not None:
                quarantine.quarantine_recipient(self.conn, rid, why, now)
                bad.append(Quarantined(kind="recipient", object_id=rid, reason=why))
                continue
            state = row[5]
            # Content read along (PostgreSQL's claim, small messages): used only when whole.
            content = row[19] if len(row) > 19 else None
            if content is not None and len(content) != row[14]:
                content = None  # the queue reads it, and finds it bad
            claims.append(
                Claim(
                    recipient_id=rid,
                    message_id=mid,
                    rcpt_index=row[2],
                    address=row[3],
                    next_hop=row[4],
                    attempts=row[7],
                    received_at=row[15],
                    expires_at=row[16],
                    size=row[14],
                    envelope=envelope,
                    last_error=row[18],
                    lease_was_expired=state == RecipientState.LEASED,
                    previous_owner=row[9],
                    content=content,
                )
            )
            leased.append(rid)
        if leased:
            self.take_leases(leased, now + lease_seconds, owner, now)
        return ClaimBatch(claims=claims, quarantined=bad)

    def take_leases(self, ids: Sequence[int], until: float, owner: str, now: float) -> None:
        """Lease these recipients to `owner` until `until`."""
        self.conn.executemany(
            "UPDATE recipients SET state = 'leased', due_at = ?, lease_owner = ?, updated_at = ? "
            "WHERE id = ?",
            [(until, owner, now, rid) for rid in ids],
        )

    def settle(self, owner: str, outcomes: Sequence[Settlement], now: float) -> int:
        """Record outcomes for recipients this owner still leases; finished messages go."""
        return len(self.settle_ids(owner, outcomes, now))

    def settle_ids(self, owner: str, outcomes: Sequence[Settlement], now: float) -> set[int]:
        """`settle`, answering which recipients were settled (those this owner still leased).

        A few statements per batch rather than per recipient: the leases still held are
        read at once, updated with one executemany, and finished messages removed together.
        """
        held = self._leases_held(owner, [o.recipient_id for o in outcomes])
        if held:
            self._settle_held(owner, outcomes, held, now)
        return set(held)

    def _leases_held(self, owner: str, ids: Sequence[int]) -> dict[int, int]:
        """Of these recipients, those `owner` still leases, each with its message's id."""
        held: dict[int, int] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for rid, mid in self.conn.execute(
                f"SELECT id, message_id FROM recipients WHERE id IN ({marks}) "
                "AND state = 'leased' AND lease_owner = ?",
                (*chunk, owner),
            ):
                held[rid] = mid
        return held

    def _settle_held(
        self, owner: str, outcomes: Sequence[Settlement], held: dict[int, int], now: float
    ) -> None:
        """Record the outcomes of the recipients in `held` (read in this transaction by
        `_leases_held`); messages left with nothing to do are removed."""
        rows = _settlement_rows(owner, outcomes, held, now)
        self._record_outcomes(rows)
        self.remove_finished(set(held.values()))

    def _record_outcomes(self, rows: list[OutcomeRow]) -> None:
        # The same conditions as the read: an outcome given twice in one batch counts once.
        self.conn.executemany(
            "UPDATE recipients SET state = ?, due_at = ?, attempts = attempts + ?, "
            "last_error = ?, lease_owner = NULL, report = ?, updated_at = ? "
            "WHERE id = ? AND state = 'leased' AND lease_owner = ?",
            rows,
        )

    def hand_over(
        self,
        owner: str,
        outcomes: Sequence[Settlement],
        new: NewMessage,
        now: float,
        lifetime: Lifetime,
    ) -> int | None:
        """Settle `outcomes` and enqueue `new` together, or neither when any of the
        recipients is no longer leased by `owner` (see Store.hand_over)."""
        held = self._held_for_hand_over(owner, outcomes)
        if held is None:
            return None
        message_id = self.enqueue(new, now, lifetime)
        self._settle_held(owner, outcomes, held, now)
        return message_id

    def _held_for_hand_over(
        self, owner: str, outcomes: Sequence[Settlement]
    ) -> dict[int, int] | None:
        """The leases `owner` holds on the recipients of `outcomes`, or None unless it holds
        them all: a hand-over is all or nothing (see Store.hand_over)."""
        ids = sorted({o.recipient_id for o in outcomes})
        held = self._leases_held(owner, ids)
        return held if len(held) == len(ids) else None

    def hand_over_leased(
        self,
        owner: str,
        outcomes: Sequence[Settlement],
        new: NewMessage,
        now: float,
        lifetime: Lifetime,
        lease_seconds: float,
    ) -> tuple[int, list[Claim]] | None:
        """`hand_over`, with the new message's recipients leased to `owner` in the same
        transaction when they are due now: its id and their claims, for the owner to deliver
        without claiming or reading the message again (no claims when it is deferred)."""
        (handed,) = self.hand_over_many(
            [HandOver(owner, outcomes, new, lease_seconds)], now, lifetime
        )
        return handed

    def hand_over_many(
        self, hand_overs: Sequence[HandOver], now: float, lifetime: Lifetime
    ) -> list[tuple[int, list[Claim]] | None]:
        """`hand_over_leased` for each, in the same transaction, each all or nothing on its
        own: the leases are read in one statement per owner, the outcomes recorded in one,
        and the messages they finish removed together, so that conversions completing
        together cost a few statements beside their messages' rows."""
        wanted: dict[str, set[int]] = {}
        for hand_over in hand_overs:
            ids = wanted.setdefault(hand_over.owner, set())
            ids.update(o.recipient_id for o in hand_over.outcomes)
        held = {owner: self._leases_held(owner, sorted(ids)) for owner, ids in wanted.items()}
        answers: list[tuple[int, list[Claim]] | None] = []
        rows: list[OutcomeRow] = []
        touched: set[int] = set()
        taken: set[int] = set()
        for hand_over in hand_overs:
            leases = held[hand_over.owner]
            ids = {o.recipient_id for o in hand_over.outcomes}
            # Every lease still held, and none answered for by another in this batch.
            if not ids <= leases.keys() or not taken.isdisjoint(ids):
                answers.append(None)
                continue
            taken |= ids
            answers.append(self._enqueue_handed_over(hand_over, now, lifetime))
            mine = {rid: leases[rid] for rid in ids}
            rows += _settlement_rows(hand_over.owner, hand_over.outcomes, mine, now)
            touched.update(mine.values())
        if rows:
            self._record_outcomes(rows)
            self.remove_finished(touched)
        return answers

    def _enqueue_handed_over(
        self, hand_over: HandOver, now: float, lifetime: Lifetime
    ) -> tuple[int, list[Claim]]:
        """The converted message, its recipients inserted leased to the owner when they are
        due now (with their claims), else queued for when they come due."""
        new = hand_over.new
        envelope = new.message.envelope
        if (envelope.deferred_delivery or now) > now:
            return self.enqueue(new, now, lifetime), []
        message_id = self._insert_message(new, now, lifetime)
        size = len(new.message.content)
        lease_until = now + hand_over.lease_seconds
        expires_at = now + lifetime_of(lifetime, envelope)
        rank = envelope.priority.rank
        claims: list[Claim] = []
        for index, (rcpt, hop) in enumerate(zip(envelope.recipients, new.next_hops, strict=True)):
            next_hop = str(hop)
            recipient_id = self.insert_returning_id(
                "INSERT INTO recipients (message_id, rcpt_index, address, next_hop, state, "
                "due_at, lease_owner, updated_at, rank) VALUES (?, ?, ?, ?, 'leased', ?, ?, ?, ?)",
                (
                    message_id,
                    index,
                    rcpt.address,
                    next_hop,
                    lease_until,
                    hand_over.owner,
                    now,
                    rank,
                ),
            )
            claims.append(
                Claim(
                    recipient_id=recipient_id,
                    message_id=message_id,
                    rcpt_index=index,
                    address=rcpt.address,
                    next_hop=next_hop,
                    attempts=0,
                    received_at=now,
                    expires_at=expires_at,
                    size=size,
                    envelope=envelope,
                )
            )
        return message_id, claims

    def remove_finished(self, message_ids: set[int]) -> None:
        """`remove_if_finished` for many messages, in a few statements."""
        if len(message_ids) == 1:
            self.remove_if_finished(next(iter(message_ids)))
            return
        ids = sorted(message_ids)
        finished: list[tuple[int]] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            pending = {
                row[0]
                for row in self.conn.execute(
                    f"SELECT DISTINCT message_id FROM recipients WHERE message_id IN ({marks}) "
                    "AND (state NOT IN ('delivered', 'failed') OR report IS NOT NULL)",
                    chunk,
                )
            }
            finished.extend((mid,) for mid in chunk if mid not in pending)
        if finished:
            self.conn.executemany("DELETE FROM recipients WHERE message_id = ?", finished)
            self.conn.executemany("DELETE FROM content WHERE message_id = ?", finished)
            self.conn.executemany("DELETE FROM messages WHERE id = ?", finished)

    def remove_if_finished(self, message_id: int) -> bool:
        """Delete a message whose every recipient is final with no report owed."""
        # The message's row goes first, on the condition, so that a message still in
        # progress costs one statement.
        removed = self.conn.execute(
            "DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM recipients "
            "WHERE message_id = ? AND (state NOT IN ('delivered', 'failed') "
            "OR report IS NOT NULL))",
            (message_id, message_id),
        ).rowcount
        if removed == 0:
            return False
        self.conn.execute("DELETE FROM recipients WHERE message_id = ?", (message_id,))
        self.conn.execute("DELETE FROM content WHERE message_id = ?", (message_id,))
        return True

    def delete_message(self, message_id: int) -> None:
        self.conn.execute("DELETE FROM recipients WHERE message_id = ?", (message_id,))
        self.conn.execute("DELETE FROM content WHERE message_id = ?", (message_id,))
        self.conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def reports_owed(self, limit: int) -> list[OwedReport]:
        """Recipients whose outcome is final and whose report is still to be sent, by message.

        The caller makes them in the originator's form: a DSN for an Internet
        originator, a P1 report for an O/R originator.
        """
        rows = self.conn.execute(
            "SELECT r.message_id, r.id, r.rcpt_index, r.address, r.report, r.last_error, "
            "r.updated_at, m.mts_id, m.originator, m.envelope, m.size, m.received_at, "
            "m.expires_at, m.state FROM recipients AS r JOIN messages AS m ON m.id = r.message_id "
            "WHERE r.report IS NOT NULL AND r.state IN ('delivered', 'failed') "
            "AND m.state = 'active' "
            "ORDER BY r.message_id LIMIT ?",
            (limit,),
        ).fetchall()
        owed: dict[int, OwedReport] = {}
        for row in rows:
            message_id = row[0]
            if message_id not in owed:
                envelope, why = check_message_row((message_id, *row[7:14]))
                owed[message_id] = OwedReport(
                    message_id=message_id,
                    envelope=envelope,
                    problem=why,
                    received_at=row[11],
                    recipients=[],
                )
            owed[message_id].recipients.append(
                OwedRecipient(
                    recipient_id=row[1],
                    rcpt_index=row[2],
                    address=row[3],
                    report=row[4],
                    detail=row[5] or "",
                    when=row[6],
                )
            )
        return list(owed.values())

    def complete_reports(
        self,
        message_id: int,
        recipient_ids: Sequence[int],
        report: NewMessage | None,
        now: float,
        lifetime: Lifetime,
    ) -> int | None:
        """Enqueue the report (if any) and mark it sent, in the same transaction; nothing, and
        None, unless every one of the recipients still owes it (another node's report
        generator sent it first: the rest, if any, stay owed for the next round)."""
        if not self.still_owed(message_id, recipient_ids):
            return None
        report_id = self.enqueue(report, now, lifetime) if report is not None else None
        self.conn.executemany(
            "UPDATE recipients SET report = NULL, updated_at = ? WHERE id = ? AND message_id = ?",
            [(now, rid, message_id) for rid in recipient_ids],
        )
        self.remove_if_finished(message_id)
        return report_id

    def still_owed(self, message_id: int, recipient_ids: Sequence[int]) -> bool:
        """Whether each of these recipients of the message still owes its report (read
        under the write lock this transaction holds: SQLite has one writer)."""
        ids = sorted(set(recipient_ids))
        marks = ", ".join("?" for _ in ids)
        rows = self.conn.execute(
            f"SELECT count(*) FROM recipients WHERE message_id = ? AND id IN ({marks}) "
            "AND report IS NOT NULL",
            (message_id, *ids),
        ).fetchone()
        return int(rows[0]) == len(ids)

    def read_content(self, message_id: int) -> bytes:
        row = self.conn.execute(
            "SELECT m.size, c.data FROM messages AS m LEFT JOIN content AS c "
            "ON c.message_id = m.id WHERE m.id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            raise BadContentError(f"message {message_id} does not exist")
        size, data = row
        if not isinstance(data, bytes):
            raise BadContentError(f"message {message_id} has no content")
        if len(data) != size:
            raise BadContentError(
                f"message {message_id} content is {len(data)} bytes, {size} were stored"
            )
        return data

    def make_due(self, now: float, next_hop: str | None = None) -> int:
        """Deferred recipients, all or one next hop's, due at `now` (queued ones are due
        already, or wait for a deferred-delivery time that stays as asked)."""
        sql = "UPDATE recipients SET due_at = ?, updated_at = ? WHERE state = 'deferred'"
        args: list[object] = [now, now]
        if next_hop is not None:
            sql += " AND next_hop = ?"
            args.append(next_hop)
        return int(self.conn.execute(sql, args).rowcount)

    def next_due(self, *, urgent_only: bool = False) -> float | None:
        """When the next recipient (the next urgent one) becomes due: the earliest of each
        rank's, each one seek into the index."""
        earliest: float | None = None
        for rank in RANKS[:1] if urgent_only else RANKS:
            row = self.conn.execute(
                "SELECT due_at FROM recipients WHERE rank = ? AND due_at IS NOT NULL "
                "ORDER BY due_at LIMIT 1",
                (rank,),
            ).fetchone()
            if row is not None and isinstance(row[0], (int, float)):
                due = float(row[0])
                earliest = due if earliest is None else min(earliest, due)
        return earliest

    def release_leases(self, now: float, *, except_owner: str | None = None) -> int:
        """Queue again every leased recipient (at start-up: their workers are gone)."""
        cur = self.conn.execute(
            "UPDATE recipients SET state = 'queued', due_at = ?, lease_owner = NULL, "
            "updated_at = ? WHERE state = 'leased' AND lease_owner IS DISTINCT FROM ?",
            (now, now, except_owner),
        )
        return int(cur.rowcount)

    # -- counts and listings for operators ----------------------------------

    def counts(self) -> tuple[int, int]:
        """(active messages, recipients not yet final)."""
        messages = self.conn.execute(
            "SELECT count(*) FROM messages WHERE state = 'active'"
        ).fetchone()[0]
        recipients = self.conn.execute(
            f"SELECT count(*) FROM recipients WHERE state IN {_OPEN_STATES}"
        ).fetchone()[0]
        return int(messages), int(recipients)

    def queue_rows(
        self,
        *,
        states: Sequence[str] = (),
        next_hop: str | None = None,
        message_id: int | None = None,
        limit: int | None = None,
    ) -> Iterator[QueueRow]:
        sql = (
            "SELECT r.message_id, r.id, r.address, m.originator, r.next_hop, r.state, "
            "r.attempts, r.last_error, r.due_at, m.received_at, m.size, r.report, r.rank "
            "FROM recipients AS r JOIN messages AS m ON m.id = r.message_id"
        )
        where: list[str] = []
        args: list[object] = []
        if states:
            where.append(f"r.state IN ({', '.join('?' for _ in states)})")
            args.extend(states)
        if next_hop is not None:
            where.append("r.next_hop = ?")
            args.append(next_hop)
        if message_id is not None:
            where.append("r.message_id = ?")
            args.append(message_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.message_id, r.rcpt_index"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for row in self.conn.execute(sql, args):
            yield QueueRow(*row)
