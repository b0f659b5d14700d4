"""Validation of every object read back from the MTA database.

The founding bug of this project was an MTA that terminated on one bad
control-block index. Here every row is checked before use — it decodes,
references exist, values are in range — and a failure is a reason naming
what is wrong, never an exception that escapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from waypost.message import Envelope, EnvelopeError, decode_envelope
from waypost.store.base import MESSAGE_STATES, RECIPIENT_STATES, TIMED_STATES, ReportOwed
from waypost.store.schema import is_valid_text

_REPORTS = frozenset(r.value for r in ReportOwed)


def is_number(value: object) -> bool:
    """A finite int or float (not a bool): what a time or count read back must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_message_row(row: Sequence[object]) -> tuple[Envelope | None, str | None]:
    """Validate a `messages` row (id, mts_id, originator, envelope, size, received_at,
    expires_at, state); returns the decoded envelope, or the reason it is bad."""
    _id, mts_id, originator, blob, size, received_at, expires_at, state = row
    if not (is_valid_text(mts_id) and is_valid_text(originator)):
        return None, "MTS identifier or originator is not valid UTF-8 text"
    if state not in MESSAGE_STATES:
        return None, f"message state {state!r} is not one of {sorted(MESSAGE_STATES)}"
    if not isinstance(blob, bytes):
        return None, f"envelope is {type(blob).__name__}, not a blob"
    if not isinstance(size, int) or size < 0:
        return None, f"size {size!r} is out of range"
    if not is_number(received_at) or not is_number(expires_at):
        return None, "arrival or expiry time is not a number"
    try:
        envelope = decode_envelope(blob)
    except EnvelopeError as exc:
        return None, str(exc)
    if envelope.mts_id != mts_id:
        return None, f"MTS identifier {mts_id!r} differs from the envelope's {envelope.mts_id!r}"
    if envelope.originator != originator:
        return None, "originator differs from the envelope's"
    return envelope, None


def check_recipient_row(row: Sequence[object], envelope: Envelope) -> str | None:
    """Validate a `recipients` row (id, message_id, rcpt_index, address, next_hop, state,
    due_at, attempts, report) against its message's envelope; the reason, or None."""
    _id, _mid, rcpt_index, address, next_hop, state, due_at, attempts, report = row
    if state not in RECIPIENT_STATES:
        return f"recipient state {state!r} is not one of {sorted(RECIPIENT_STATES)}"
    if not isinstance(rcpt_index, int) or not 0 <= rcpt_index < len(envelope.recipients):
        return (
            f"recipient index {rcpt_index!r} is out of range "
            f"(the envelope has {len(envelope.recipients)} recipients)"
        )
    if envelope.recipients[rcpt_index].address != address:
        return f"address {address!r} differs from envelope recipient {rcpt_index}"
    if not is_valid_text(next_hop) or not next_hop:
        return "next hop is empty or not valid UTF-8 text"
    if not isinstance(attempts, int) or attempts < 0:
        return f"attempt count {attempts!r} is out of range"
    if state in TIMED_STATES:
        if not is_number(due_at):
            return f"a {state} recipient has no valid due time ({due_at!r})"
    elif due_at is not None:
        return f"a {state} recipient has a due time"
    if report is not None and report not in _REPORTS:
        return f"report {report!r} is not one of {sorted(_REPORTS)}"
    return None
