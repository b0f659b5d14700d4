"""Moving bad objects aside: a copy of the row goes to `quarantine`, nothing is deleted silently.

`conn` is sqlite3's connection, or PostgreSQL's through its adapter (store.postgresql)."""

from __future__ import annotations

import base64
import json
from typing import Any

_MESSAGE_COLUMNS = "id, mts_id, originator, envelope, size, received_at, expires_at, state"
_RECIPIENT_COLUMNS = (
    "id, message_id, rcpt_index, address, next_hop, state, due_at, attempts, last_error, "
    "lease_owner, report, updated_at, rank"
)


def _row_json(cursor: Any, row: tuple[object, ...]) -> str:
    names = [d[0] for d in cursor.description]
    doc: dict[str, object] = {}
    for name, value in zip(names, row, strict=True):
        if isinstance(value, bytes):
            doc[name] = {"base64": base64.b64encode(value).decode()}
        else:
            doc[name] = value
    return json.dumps(doc, default=repr)


def _record(
    conn: Any,
    kind: str,
    object_id: int | None,
    reason: str,
    row: str,
    data: bytes | None,
    now: float,
) -> None:
    conn.execute(
        "INSERT INTO quarantine (kind, object_id, reason, row, data, quarantined_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (kind, object_id, reason, row, data, now),
    )


def quarantine_recipient(
    conn: Any, recipient_id: int, reason: str, now: float, *, remove: bool = False
) -> bool:
    """Set one recipient aside. With `remove` (its message is gone) the row leaves the queue;
    otherwise it stays, in state quarantined, so that its message is kept for inspection."""
    cur = conn.execute(f"SELECT {_RECIPIENT_COLUMNS} FROM recipients WHERE id = ?", (recipient_id,))
    row = cur.fetchone()
    if row is None:
        return False
    _record(conn, "recipient", recipient_id, reason, _row_json(cur, row), None, now)
    if remove:
        conn.execute("DELETE FROM recipients WHERE id = ?", (recipient_id,))
    else:
        conn.execute(
            "UPDATE recipients SET state = 'quarantined', due_at = NULL, lease_owner = NULL, "
            "last_error = ?, updated_at = ? WHERE id = ?",
            (reason[:500], now, recipient_id),
        )
    return True


def quarantine_message(conn: Any, message_id: int, reason: str, now: float) -> bool:
    """Set a message and all its recipients aside; the rows stay for `waypost queue show`."""
    cur = conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,))
    row = cur.fetchone()
    if row is None:
        return False
    envelope = row[3] if isinstance(row[3], bytes) else None
    _record(conn, "message", message_id, reason, _row_json(cur, row), envelope, now)
    conn.execute("UPDATE messages SET state = 'quarantined' WHERE id = ?", (message_id,))
    conn.execute(
        "UPDATE recipients SET state = 'quarantined', due_at = NULL, lease_owner = NULL, "
        "last_error = ?, updated_at = ? WHERE message_id = ?",
        (reason[:500], now, message_id),
    )
    return True


def quarantine_content(conn: Any, message_id: int, reason: str, now: float) -> bool:
    """Move content that belongs to no message out of the content table."""
    row = conn.execute(
        "SELECT message_id, CAST(data AS BLOB) FROM content WHERE message_id = ?", (message_id,)
    ).fetchone()
    if row is None:
        return False
    data = row[1] if isinstance(row[1], bytes) else None
    _record(conn, "content", message_id, reason, json.dumps({"message_id": message_id}), data, now)
    conn.execute("DELETE FROM content WHERE message_id = ?", (message_id,))
    return True
