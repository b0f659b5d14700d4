"""What the console's queue pages show, read from the MTA database (synchronous: run in a
worker thread by store_access)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from waypost import content_summary
from waypost.message import Envelope, ObjectKind
from waypost.store.base import RecipientState, StoreError
from waypost.store.database import Database, QueueRow
from waypost.store.listing import QueueFilter, count_rows, select_rows

# Recipients listed on a next hop's page at most.
HOP_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Totals:
    """Messages in the queue, and recipients by state (every state, zeros included)."""

    messages: int
    by_state: dict[str, int]


def totals(db: Database) -> Totals:
    by_state = {state.value: 0 for state in RecipientState}
    for state, count in db.conn.execute("SELECT state, count(*) FROM recipients GROUP BY state"):
        by_state[str(state)] = int(count)
    messages = db.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    return Totals(messages=int(messages), by_state=by_state)


@dataclass(slots=True)
class HopMessage:
    """A message with recipients on one next hop, and those recipients."""

    message_id: int
    originator: str
    received_at: float
    size: int
    recipients: list[QueueRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HopListing:
    messages: list[HopMessage]
    shown: int
    total: int


def hop_messages(db: Database, next_hop: str, limit: int = HOP_LIMIT) -> HopListing:
    """The recipients of one next hop, grouped by message, oldest message first."""
    where = QueueFilter(next_hop=next_hop)
    by_id: dict[int, HopMessage] = {}
    shown = 0
    for row in select_rows(db, where, limit):
        shown += 1
        message = by_id.get(row.message_id)
        if message is None:
            message = by_id[row.message_id] = HopMessage(
                row.message_id, row.originator, row.received_at, row.size
            )
        message.recipients.append(row)
    total = count_rows(db, where) if shown >= limit else shown
    return HopListing(messages=list(by_id.values()), shown=shown, total=total)


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """One message in full: its row, its envelope (or why it does not decode), its
    recipients and what its content says (content_summary.document's form)."""

    message_id: int
    mts_id: str
    originator: str
    size: int
    received_at: float
    expires_at: float
    state: str
    envelope: Envelope | None
    envelope_problem: str | None
    kind: str
    recipients: list[QueueRow]
    content: dict[str, Any]
    content_missing: bool

    @property
    def object_kind(self) -> str | None:
        """An X.400 report or probe says so; a message says nothing."""
        if self.envelope is None or self.envelope.object_kind is ObjectKind.MESSAGE:
            return None
        return self.envelope.object_kind.value


def message_detail(db: Database, message_id: int) -> MessageDetail | None:
    """The message, or None when it is not (or no longer) in the queue."""
    row = db.conn.execute(
        "SELECT mts_id, originator, envelope, size, received_at, expires_at, state "
        "FROM messages WHERE id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        return None
    mts_id, originator, blob, size, received_at, expires_at, state = row
    envelope, problem = content_summary.decoded_envelope(blob)
    kind = content_summary.kind_of(envelope)
    try:
        content: bytes | None = db.read_content(message_id)
    except StoreError:
        content = None
    return MessageDetail(
        message_id=message_id,
        mts_id=str(mts_id),
        originator=str(originator or ""),
        size=size,
        received_at=received_at,
        expires_at=expires_at,
        state=str(state),
        envelope=envelope,
        envelope_problem=problem,
        kind=kind,
        recipients=list(db.queue_rows(message_id=message_id)),
        content=content_summary.document(kind, content),
        content_missing=content is None and kind != "probe",
    )


def message_exists(db: Database, message_id: int) -> bool:
    return (
        db.conn.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is not None
    )
