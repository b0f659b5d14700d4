"""Operator actions on the queue: hold, release, retry, delete, bounce (Postfix's postsuper)."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from waypost.store.database import Database


class Action(enum.StrEnum):
    HOLD = "hold"
    RELEASE = "release"
    RETRY = "retry"
    DELETE = "delete"
    BOUNCE = "bounce"


def _scope(message_ids: Sequence[int] | None) -> tuple[str, list[object]]:
    if message_ids is None:
        return "1", []
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
        return cur.rowcount
    if action is Action.RELEASE:
        cur = conn.execute(
            "UPDATE recipients SET state = 'queued', due_at = ?, updated_at = ? "
            f"WHERE state = 'held' AND {where}",
            [now, now, *args],
        )
        return cur.rowcount
    if action is Action.RETRY:
        cur = conn.execute(
            "UPDATE recipients SET due_at = ?, updated_at = ? "
            f"WHERE state IN ('queued', 'deferred') AND {where}",
            [now, now, *args],
        )
        return cur.rowcount
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
