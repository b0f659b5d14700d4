"""What the queue manager asks of a delivery agent, and what it gets back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from waypost.message import Envelope
from waypost.store.base import Claim, Result


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """The outcome of trying one recipient: delivered, deferred (try again) or failed."""

    recipient_id: int
    result: Result
    detail: str = ""
    # Who answered (for the Remote-MTA of a report), when it was a remote MTA.
    remote_mta: str | None = None
    # Delivered to a next hop that took over the duty to report success (it
    # offered DSN): no success report is owed here.
    passed_on: bool = False
    # A deferred recipient's own wait, in seconds, before it is tried again (an X.400
    # connector's open or transfer interval); None means the queue's back-off.
    retry_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """One message for some of its recipients, all to the same next hop."""

    next_hop: str
    message_id: int
    envelope: Envelope
    content: bytes
    recipients: Sequence[Claim]


class Deliverer(Protocol):
    """A delivery agent for one transport (local, smtp, x400)."""

    async def deliver(self, transfer: Transfer) -> list[Attempt]:
        """One Attempt per recipient of the transfer. Must not raise for a peer's faults."""
        ...
