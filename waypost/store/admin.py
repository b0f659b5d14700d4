"""Operator actions on the queue: hold, release, retry, delete, bounce and reroute
(Postfix's postsuper)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from waypost import events
from waypost.message import Envelope
from waypost.store.database import Database
from waypost.store.validate import check_message_row


class Action(enum.StrEnum):
    HOLD = "hold"
    RELEASE = "release"
    RETRY = "retry"
    DELETE = "delete"
    BOUNCE = "bounce"


def _scope(message_ids: Sequence[int] | None) -> tuple[str, list[object]]:
    if message_ids is None:
        return "TRUE", []
    return f"message_id IN ({', '.join('?' for _ in message_ids)})", list(message_ids)


def apply(db: Database, action: Action, message_ids: Sequence[int] | None, now: float) -> int:
    """Apply one action to the given messages (None: the whole queue); returns recipients changed.

    The caller owns the transaction.
    """
    where, args = _scope(message_ids)
    conn = db.conn
    if action is Action.HOLD:
        cur = conn.execute(
            "UPDATE recipients SET state = 'held', due_at = NULL, updated_at = ? "
            f"WHERE state IN ('queued', 'deferred') AND {where}",
            [now, *args],
        )
        return int(cur.rowcount)
    if action is Action.RELEASE:
        cur = conn.execute(
            "UPDATE recipients SET state = 'queued', due_at = ?, updated_at = ? "
            f"WHERE state = 'held' AND {where}",
            [now, now, *args],
        )
        return int(cur.rowcount)
    if action is Action.RETRY:
        cur = conn.execute(
            "UPDATE recipients SET due_at = ?, updated_at = ? "
            f"WHERE state IN ('queued', 'deferred') AND {where}",
            [now, now, *args],
        )
        return int(cur.rowcount)
    ids = _message_ids(db, where, args)
    if action is Action.DELETE:
        changed = 0
        for message_id in ids:
            changed += conn.execute(
                "SELECT count(*) FROM recipients WHERE message_id = ?", (message_id,)
            ).fetchone()[0]
            db.delete_message(message_id)
        return changed
    # BOUNCE: every recipient not yet final fails now, and a report is owed to
    # the originator unless the message is itself a report.
    changed = 0
    for message_id in ids:
        originator = conn.execute(
            "SELECT originator FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        report = "non-delivery" if originator and originator[0] else None
        changed += conn.execute(
            "UPDATE recipients SET state = 'failed', due_at = NULL, lease_owner = NULL, "
            "last_error = '5.0.0 returned to the sender by the operator', report = ?, "
            "updated_at = ? WHERE message_id = ? AND state NOT IN ('delivered', 'failed')",
            (report, now, message_id),
        ).rowcount
        db.remove_if_finished(message_id)
    return changed


def _message_ids(db: Database, where: str, args: list[object]) -> list[int]:
    if args:
        present = db.conn.execute(
            f"SELECT id FROM messages WHERE {where.replace('message_id', 'id')}", args
        )
    else:
        present = db.conn.execute("SELECT id FROM messages")
    return [int(row[0]) for row in present]


@dataclass(frozen=True, slots=True)
class Rerouted:
    """A recipient whose next hop an operator's re-routing changed."""

    message_id: int
    recipient_id: int
    address: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class RerouteResult:
    """What `reroute` did: recipients routed again (`rerouted` those whose hop changed),
    and those left alone because a delivery of them was in progress."""

    routed: int
    rerouted: list[Rerouted]
    in_delivery: int


# Chooses a recipient's next hop again: its message's envelope, its index there, and the
# hop it has (as stored text); returns the new hop's text.
Chooser = Callable[[Envelope, int, str], str]


def reroute(
    db: Database, message_ids: Sequence[int] | None, choose: Chooser, now: float
) -> RerouteResult:
    """Route again every recipient not yet delivered (queued, deferred or held) of the given
    messages (None: the whole queue), as Postfix's `postsuper -r`; queued and deferred
    ones are due at once. A message that does not validate is left for the queue manager
    to quarantine. The caller owns the transaction."""
    where, args = _scope(message_ids)
    rows = db.conn.execute(
        "SELECT r.id, r.message_id, r.rcpt_index, r.address, r.next_hop, "
        "m.id, m.mts_id, m.originator, m.envelope, m.size, m.received_at, m.expires_at, "
        "m.state FROM recipients AS r JOIN messages AS m ON m.id = r.message_id "
        "WHERE r.state IN ('queued', 'deferred', 'held') AND m.state = 'active' "
        f"AND {where.replace('message_id', 'r.message_id')} "
        "ORDER BY r.message_id, r.rcpt_index",
        args,
    ).fetchall()
    envelopes: dict[int, Envelope | None] = {}
    routed = 0
    changed: list[Rerouted] = []
    for rid, mid, rcpt_index, address, old, *message_row in rows:
        if mid not in envelopes:
            envelopes[mid] = check_message_row(message_row)[0]
        envelope = envelopes[mid]
        if envelope is None or not 0 <= rcpt_index < len(envelope.recipients):
            continue
        new = choose(envelope, rcpt_index, old)
        routed += 1
        # A held recipient stays held (and not due) until it is released.
        db.conn.execute(
            "UPDATE recipients SET next_hop = ?, updated_at = ?, "
            "due_at = CASE WHEN state = 'held' THEN due_at ELSE ? END WHERE id = ?",
            (new, now, now, rid),
        )
        if new != old:
            changed.append(Rerouted(mid, rid, address, old, new))
    in_delivery = db.conn.execute(
        f"SELECT count(*) FROM recipients WHERE state = 'leased' AND {where}", args
    ).fetchone()[0]
    return RerouteResult(routed=routed, rerouted=changed, in_delivery=int(in_delivery))


def log_rerouted(result: RerouteResult) -> None:
    """Event 1406 for each recipient whose next hop `reroute` changed."""
    for moved in result.rerouted:
        events.emit(
            events.RECIPIENT_REROUTED,
            message_id=moved.message_id,
            recipient=moved.address,
            old=moved.old,
            new=moved.new,
        )
