"""`waypost queue list --json` and `queue show --json`: one JSON object per line, one per
message (Postfix's `postqueue -j`). The fields are listed in docs/operations.md; a value
read from a damaged row is given as it was read."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from waypost.message import Envelope
from waypost.store.database import QueueRow


def recipient(row: QueueRow) -> dict[str, Any]:
    return {
        "recipient_id": row.recipient_id,
        "address": row.address,
        "state": row.state,
        "next_hop": row.next_hop,
        "attempts": row.attempts,
        "next_attempt": row.due_at,
        "last_error": row.last_error,
        "report": row.report,
    }


def print_messages(rows: Iterable[QueueRow]) -> None:
    """One line per message, with the recipients of it among `rows` (ordered by message)."""
    current: dict[str, Any] | None = None
    for row in rows:
        if current is None or current["id"] != row.message_id:
            if current is not None:
                print_line(current)
            current = {
                "id": row.message_id,
                "sender": row.originator,
                "size": row.size,
                "arrival_time": row.received_at,
                "recipients": [],
            }
        current["recipients"].append(recipient(row))
    if current is not None:
        print_line(current)


def envelope_fields(envelope: Envelope) -> dict[str, Any]:
    """What `queue show --json` adds from the decoded envelope."""
    return {
        "object_kind": envelope.object_kind.value,
        "content_type": str(envelope.content_type),
        "content_length": envelope.content_length,
        "priority": envelope.priority.label,
        "envid": envelope.envid,
        "ret": None if envelope.ret is None else str(envelope.ret),
        "trace": [
            {"domain": hop.domain, "arrival": hop.arrival, "action": hop.action}
            for hop in envelope.trace
        ],
    }


def print_line(document: dict[str, Any]) -> None:
    # ASCII escapes: a damaged row's undecodable bytes (lone surrogates) stay printable.
    print(json.dumps(document, ensure_ascii=True, default=str))
