"""The queue as `mailq` shows it (Postfix's showq format), from the MTA database: read
directly by root or the MTA's user, or by the MTA for anyone over its showq socket."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from waypost.store.database import QueueRow
from waypost.store.location import DatabaseLocation

# What is still to be delivered; quarantined rows are the operator's (`waypost queue list`).
SHOWN_STATES = ("queued", "deferred", "leased", "held")
_MARKS = {"leased": "*", "held": "!"}  # Postfix: * in the active queue, ! on hold
HEADING = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"


def read_listing(database: DatabaseLocation) -> str:
    """The whole listing from the MTA database (raises StoreError)."""
    db = database.open(readonly=True)
    try:
        return "".join(line + "\n" for line in mailq_lines(db.queue_rows(states=SHOWN_STATES)))
    except db.errors as exc:
        raise db.translate(exc) from None
    finally:
        db.close()


def mailq_lines(rows: Iterable[QueueRow]) -> Iterator[str]:
    """Postfix's layout: one block per message, the sender then each recipient with its
    last error above it, and a total."""
    messages = 0
    size_total = 0
    current: int | None = None
    block: list[QueueRow] = []
    for row in rows:
        if row.message_id != current and block:
            yield from _block(block, first=messages == 0)
            messages += 1
            size_total += _size(block[0])
            block = []
        current = row.message_id
        block.append(row)
    if block:
        yield from _block(block, first=messages == 0)
        messages += 1
        size_total += _size(block[0])
    if not messages:
        yield "Mail queue is empty"
        return
    requests = "Request" if messages == 1 else "Requests"
    yield f"-- {(size_total + 1023) // 1024} Kbytes in {messages} {requests}."


def _block(rows: list[QueueRow], *, first: bool) -> Iterator[str]:
    if first:
        yield HEADING
    head = rows[0]
    mark = next((_MARKS[r.state] for r in rows if r.state in _MARKS), " ")
    arrival = _arrival(head.received_at)
    sender = head.originator or "MAILER-DAEMON"
    # Postfix's columns: "%-11s %7ld %20.20s %s", recipients from column 41.
    yield f"{str(head.message_id) + mark:<11} {_size(head):>7} {arrival:>20.20} {sender}"
    for row in rows:
        if row.last_error:
            yield f"({row.last_error})"
        yield f"{'':41}{row.address}"
    yield ""


def _size(row: QueueRow) -> int:
    return row.size if isinstance(row.size, int) else 0


def _arrival(received_at: object) -> str:
    if not isinstance(received_at, (int, float)) or not 0 <= received_at < 1e11:
        return "?"
    return time.strftime("%a %b %e %H:%M:%S", time.localtime(received_at))
