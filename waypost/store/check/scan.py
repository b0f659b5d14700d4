"""The row scan: every message, recipient and content row, and the references between them."""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from waypost.message import Envelope
from waypost.store.base import MessageState, RecipientState
from waypost.store.check.report import Problem, Repair, plural
from waypost.store.check.structure import FatalError, read_snapshot
from waypost.store.schema import connect
from waypost.store.validate import check_message_row, check_recipient_row, is_number

_QUARANTINED = MessageState.QUARANTINED.value
_LEASED = RecipientState.LEASED.value

_MESSAGE_SQL = """
SELECT m.id, m.mts_id, m.originator, m.envelope, m.size, m.received_at, m.expires_at, m.state,
       c.message_id, typeof(c.data), length(c.data)
FROM messages AS m LEFT JOIN content AS c ON c.message_id = m.id
ORDER BY m.id
"""
# Ordered like the messages, so that one pass over both pairs every recipient
# with its message (a merge join: nothing proportional to the queue is kept).
# PostgreSQL's: typeof is SQLite's; a bytea column holds nothing else ('blob' in SQLite's words).
_PG_MESSAGE_SQL = _MESSAGE_SQL.replace(
    "typeof(c.data)", "CASE WHEN c.data IS NULL THEN NULL ELSE 'blob' END"
)
_RECIPIENT_SQL = """
SELECT id, message_id, rcpt_index, address, next_hop, state, due_at, attempts, report,
       lease_owner, {rank}
FROM recipients {hint} ORDER BY message_id, id
"""
_ORPHAN_CONTENT_SQL = """
SELECT c.message_id, length(c.data)
FROM content AS c LEFT JOIN messages AS m ON m.id = c.message_id
WHERE m.id IS NULL ORDER BY c.message_id
"""

# Text columns of a message row and of a recipient row (as the scan selects them).
_MESSAGE_TEXT = ((1, "mts_id"), (2, "originator"), (7, "state"))
_RECIPIENT_TEXT = ((3, "address"), (4, "next_hop"), (5, "state"), (8, "report"), (9, "lease_owner"))


class Scanner:
    """One pass over messages (with their content's type and length) and recipients.

    `run()` yields one line per object when `listing`, nothing otherwise;
    problems and counts accumulate on the scanner. The connection must decode
    text with `tolerant_text`, as `schema.connect` makes it do, so that text
    that is not UTF-8 is a problem of its row, not an exception.
    """

    def __init__(
        self,
        conn: Any,
        *,
        listing: bool,
        unindexed: bool,
        live_owners: frozenset[str] | None = None,
    ) -> None:
        # sqlite3's connection, or PostgreSQL's through its adapter (when `live_owners` is
        # given: the runs of the cluster's running nodes, whose leases are not stale).
        self.conn = conn
        self.live_owners = live_owners
        self.message_sql = _MESSAGE_SQL if live_owners is None else _PG_MESSAGE_SQL
        self.listing = listing
        # A damaged recipients index must not steer the scan: read the table itself.
        # A database of schema version 1 (before priorities) has no rank to check.
        self.ranked = live_owners is not None or _has_rank(conn)
        self.recipient_sql = _RECIPIENT_SQL.format(
            hint="NOT INDEXED" if unindexed else "", rank="rank" if self.ranked else "NULL"
        )
        self.messages = 0
        self.recipients = 0
        self.content = 0
        self.quarantined_messages = 0
        self.quarantined_recipients = 0
        self.quarantine_entries = 0
        self.problems: list[Problem] = []

    def run(self) -> Iterator[str]:
        yield from self._messages_and_recipients()
        yield from self._orphaned_content()
        try:
            row = self.conn.execute("SELECT count(*) FROM quarantine").fetchone()
            self.quarantine_entries = int(row[0])
        except sqlite3.OperationalError:
            pass  # no quarantine table: the schema check reports it (PostgreSQL: never)

    def _problem(self, kind: str, object_id: int, reason: str, action: Repair) -> str:
        # Bad text in a reason must not make writing the reason fail in turn.
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        self.problems.append(Problem(kind=kind, object_id=object_id, reason=reason, action=action))
        return f"BAD: {reason}"

    def _messages_and_recipients(self) -> Iterator[str]:
        listing = self.listing
        rows = iter(self.conn.execute(self.recipient_sql))
        r = next(rows, None)
        lines: list[str] = []  # one message's recipient lines, when listing
        for m in self.conn.execute(self.message_sql):
            mid = m[0]
            self.messages += 1
            while r is not None and _sorts_before(r[1], mid):
                line = self._orphan(r)
                if listing:
                    yield line
                r = next(rows, None)
            if m[8] is not None:
                self.content += 1  # the content row of an existing message
            state = m[7]
            envelope: Envelope | None = None
            status = ""
            if state == _QUARANTINED:
                self.quarantined_messages += 1
            else:
                envelope, why = _check_message(m)
                if why is not None:
                    status = self._problem("message", mid, why, Repair.QUARANTINE_MESSAGE)
            count = 0
            seen: dict[int, int] = {}
            while r is not None and r[1] == mid:
                count += 1
                rstatus = self._recipient(r, mid, state, envelope, seen)
                if listing:
                    lines.append(f"  recipient {r[0]} {rstatus}")
                r = next(rows, None)
            self.recipients += count
            if envelope is not None and count < len(envelope.recipients):
                why = (
                    "has no recipient rows"
                    if count == 0
                    else f"has {plural(count, 'recipient row')} for {len(envelope.recipients)} "
                    "envelope recipients: a recipient row is lost"
                )
                status = self._problem("message", mid, why, Repair.QUARANTINE_MESSAGE)
            if listing:
                if not status:
                    status = (
                        f"quarantined ({plural(count, 'recipient')})"
                        if state == _QUARANTINED
                        else f"ok ({plural(count, 'recipient')}, {plural(m[4], 'byte')})"
                    )
                yield f"message {mid} {status}"
                yield from lines
                lines.clear()
        while r is not None:
            line = self._orphan(r)
            if listing:
                yield line
            r = next(rows, None)

    def _orphan(self, r: Sequence[Any]) -> str:
        """Count a recipient whose message does not exist; returns its listing line."""
        self.recipients += 1
        if r[5] == _QUARANTINED:
            self.quarantined_recipients += 1
        status = self._problem(
            "recipient", r[0], f"its message {r[1]!r} does not exist", Repair.REMOVE_RECIPIENT
        )
        return f"recipient {r[0]} {status}"

    def _recipient(
        self,
        r: Sequence[Any],
        mid: int,
        message_state: object,
        envelope: Envelope | None,
        seen: dict[int, int],
    ) -> str:
        rid: int = r[0]
        state = r[5]
        if state == _QUARANTINED:
            # Already set aside: only its reference (checked by the caller) matters.
            self.quarantined_recipients += 1
            return "quarantined"
        if message_state == _QUARANTINED:
            return self._problem(
                "recipient",
                rid,
                f"is {state!r} but its message {mid} is quarantined",
                Repair.QUARANTINE_RECIPIENT,
            )
        if envelope is None:
            return f"goes with bad message {mid}"
        why = _bad_text(r, _RECIPIENT_TEXT) or _check_recipient(r, envelope)
        if why is not None:
            return self._problem("recipient", rid, why, Repair.QUARANTINE_RECIPIENT)
        index: int = r[2]
        first = seen.setdefault(index, rid)
        if first != rid:
            return self._problem(
                "recipient",
                rid,
                f"envelope recipient {index} already has recipient row {first}",
                Repair.QUARANTINE_RECIPIENT,
            )
        if self.ranked and r[10] != envelope.priority.rank:
            # Claimed by rank, one rank at a time: a recipient of a rank no claim reads
            # would never be delivered.
            return self._problem(
                "recipient",
                rid,
                f"has rank {r[10]!r}, its message's priority ({envelope.priority.label}) "
                f"is rank {envelope.priority.rank}",
                Repair.SET_RANK,
            )
        if state == _LEASED and self.live_owners is not None and r[9] in self.live_owners:
            return "ok leased"  # by a node of the cluster that is running
        if state == _LEASED:
            where = (
                "the check runs offline"
                if self.live_owners is None
                else "no running node of the cluster"
            )
            return self._problem(
                "recipient",
                rid,
                f"is leased by {r[9]!r}, a worker that no longer exists ({where})",
                Repair.REQUEUE,
            )
        return f"ok {state}"

    def _orphaned_content(self) -> Iterator[str]:
        for message_id, length in self.conn.execute(_ORPHAN_CONTENT_SQL):
            self.content += 1
            status = self._problem(
                "content",
                message_id,
                f"is orphaned: no message {message_id} ({plural(length or 0, 'byte')})",
                Repair.QUARANTINE_CONTENT,
            )
            if self.listing:
                yield f"content {message_id} {status}"


def _has_rank(conn: Any) -> bool:
    return any(row[1] == "rank" for row in conn.execute('PRAGMA table_info("recipients")'))


def _sorts_before(message_id: Any, mid: int) -> bool:
    """Whether a recipient's `message_id` comes before message `mid`: then it has no message.

    SQLite orders NULL first, then numbers, then text and blobs, after every id.
    """
    if not is_number(mid):  # a damaged table whose ids are not integers
        return message_id is None and mid is not None
    return message_id != mid and (
        message_id is None or (is_number(message_id) and message_id < mid)
    )


def _check_message(m: Sequence[Any]) -> tuple[Envelope | None, str | None]:
    """The envelope of a sound message row (content included), or None and what is wrong."""
    why = _bad_text(m, _MESSAGE_TEXT)
    if why is not None:
        return None, why
    # One bad object must never stop the check, whatever a validator lets escape.
    try:
        envelope, why = check_message_row(m[:8])
    except Exception as exc:
        return None, f"envelope does not decode: {type(exc).__name__}: {exc}"
    if why is None:
        why = _content_problem(m[8] is not None, m[9], m[10], m[4])
    return (envelope, None) if why is None else (None, why)


def _check_recipient(r: Sequence[Any], envelope: Envelope) -> str | None:
    try:
        return check_recipient_row(r[:9], envelope)
    except Exception as exc:
        return f"recipient does not validate: {type(exc).__name__}: {exc}"


def _bad_text(row: Sequence[Any], columns: tuple[tuple[int, str], ...]) -> str | None:
    for index, name in columns:
        value = row[index]
        if type(value) is str and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"its {name} is not valid UTF-8"
    return None


def _content_problem(exists: bool, kind: object, length: object, size: object) -> str | None:
    if not exists:
        return "its content is missing"
    if kind != "blob":
        return f"its content is {kind}, not a blob"
    if length != size:
        short = (
            "truncated"
            if isinstance(length, int) and isinstance(size, int) and length < size
            else "wrong length"
        )
        shown = length if isinstance(length, int) else -1
        return f"its content is {plural(shown, 'byte')}, {size!r} were stored ({short})"
    return None


def scan_rows(conn: Any, *, unindexed: bool, live_owners: frozenset[str] | None = None) -> Scanner:
    """Scan every row; the scanner holds the problems and counts."""
    scan = Scanner(conn, listing=False, unindexed=unindexed, live_owners=live_owners)
    for _ in scan.run():
        pass
    return scan


def list_objects(path: str, *, unindexed: bool = False) -> Generator[str, None, None]:
    """Every object in the database, one line each, streamed from a read-only connection."""
    try:
        conn = connect(path, readonly=True)
    except sqlite3.Error as exc:
        yield f"(cannot list the objects: {exc})"
        return
    try:
        with read_snapshot(conn):
            yield from Scanner(conn, listing=True, unindexed=unindexed).run()
    except FatalError as exc:
        yield f"(the listing stopped: {exc.reason})"
