"""The MTA database's interface: recipient states, claims, outcomes, and the Store protocol."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from waypost.handoff import Claim, Result
from waypost.message import Envelope, Message, Priority
from waypost.nexthop import NextHop


class RecipientState(enum.StrEnum):
    """Where a recipient is in its life: queued → leased → delivered / deferred / failed."""

    QUEUED = "queued"
    LEASED = "leased"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    FAILED = "failed"
    HELD = "held"
    QUARANTINED = "quarantined"


RECIPIENT_STATES = frozenset(s.value for s in RecipientState)
# States in which the recipient waits for a time (due_at) to be worked on again.
TIMED_STATES = frozenset({RecipientState.QUEUED, RecipientState.DEFERRED, RecipientState.LEASED})


class MessageState(enum.StrEnum):
    """A message is active until all its recipients are final; quarantined when it is bad."""

    ACTIVE = "active"
    QUARANTINED = "quarantined"


MESSAGE_STATES = frozenset(s.value for s in MessageState)


class ReportOwed(enum.StrEnum):
    """A report that the transports still have to send for a recipient."""

    NON_DELIVERY = "non-delivery"
    DELIVERY = "delivery"
    # Relayed to a next hop that cannot report success itself (RFC 3461 §4.2 "relayed").
    RELAYED = "relayed"


class StoreError(Exception):
    """The MTA database could not do what was asked: answer the peer with a temporary error."""


class StoreCorruptError(StoreError):
    """The database file itself is damaged (SQLite reports corruption)."""


class NoDatabaseError(StoreError):
    """The MTA database does not exist yet (a command never creates it)."""


class BadContentError(StoreError):
    """A message's content is missing or does not match its recorded size."""


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long a message may wait in the queue, by its priority: past it, its recipients
    expire and are reported. Exchange's MTA defaults: urgent 2 days, normal 7, non-urgent
    10 (the EUR AMHS Manual recommends 7 days for the MTS)."""

    urgent: float = 2 * 86400.0
    normal: float = 7 * 86400.0
    non_urgent: float = 10 * 86400.0

    @classmethod
    def uniform(cls, seconds: float) -> Lifetimes:
        """The same lifetime whatever the priority."""
        return cls(seconds, seconds, seconds)

    def of(self, priority: Priority) -> float:
        if priority is Priority.URGENT:
            return self.urgent
        if priority is Priority.NON_URGENT:
            return self.non_urgent
        return self.normal


def lifetime_of(lifetime: float | Lifetimes, envelope: Envelope) -> float:
    """The lifetime of a message with this envelope."""
    if isinstance(lifetime, Lifetimes):
        return lifetime.of(envelope.priority)
    return lifetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMessage:
    """A message to enqueue, with the next hop already chosen for each recipient."""

    message: Message
    next_hops: Sequence[NextHop]

    def __post_init__(self) -> None:
        if len(self.next_hops) != len(self.message.envelope.recipients):
            raise ValueError("one next hop per recipient is needed")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """The result of one attempt for one claimed recipient."""

    recipient_id: int
    result: Result
    detail: str = ""
    next_attempt: float | None = None
    report: ReportOwed | None = None
    # False: nothing was tried (the next hop was known to be down), so the recipient's
    # count of attempts stays as it was.
    attempted: bool = True

    def __post_init__(self) -> None:
        if self.result is Result.DEFERRED and self.next_attempt is None:
            raise ValueError("a deferred outcome needs its next attempt time")


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarantined:
    """An object the store moved to quarantine, for the caller to report as an event."""

    kind: str
    object_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimBatch:
    """What one claim returns: good work, and the bad objects it set aside."""

    claims: list[Claim]
    quarantined: list[Quarantined]


@dataclass(frozen=True, slots=True)
class OwedRecipient:
    """A recipient for which a report is owed: its outcome's detail and when it came."""

    recipient_id: int
    rcpt_index: int
    address: str
    report: str
    detail: str
    when: float


@dataclass(frozen=True, slots=True)
class OwedReport:
    """The reports owed on one message; `envelope` is None (and `problem` says why) when the
    message does not validate."""

    message_id: int
    envelope: Envelope | None
    problem: str | None
    received_at: float
    recipients: list[OwedRecipient]


@dataclass(frozen=True, slots=True)
class HopState:
    """The recipients of one next hop in one state: how many, their messages' octets, and
    when the oldest of those messages arrived."""

    next_hop: str
    state: str
    recipients: int
    octets: int
    oldest: float


@dataclass(frozen=True, slots=True)
class PriorityState:
    """The recipients of one priority (urgent, normal, non-urgent) in one state: how many,
    and when the oldest of their messages arrived."""

    priority: str
    state: str
    recipients: int
    oldest: float


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """The queue by next hop and state, by priority and state, and the reports owed (for
    the metrics)."""

    hops: list[HopState]
    messages: int
    reports_owed: int
    priorities: list[PriorityState] = field(default_factory=list)


class Store(Protocol):
    """The MTA database as the services see it. Every write returns once it is durable."""

    async def enqueue(self, new: NewMessage) -> int:
        """Store the message and its recipients; returns the message id once durable."""
        ...

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, urgent_only: bool = False
    ) -> ClaimBatch:
        """Lease up to `limit` due recipients (queued, deferred, or with an expired lease),
        the most urgent first; with `urgent_only`, only urgent ones."""
        ...

    async def settle(self, owner: str, outcomes: Sequence[Settlement]) -> int:
        """Record outcomes of leased recipients; returns how many were still this owner's."""
        ...

    async def hand_over(
        self, owner: str, outcomes: Sequence[Settlement], new: NewMessage
    ) -> int | None:
        """Settle the recipients a gateway converted and enqueue the message it made of them,
        in one transaction; returns the new message's id once durable. Only when this owner
        still leases every one of them: otherwise nothing changes and None is returned (a
        lease that expired belongs to whoever claimed the recipients since)."""
        ...

    async def hand_over_leased(
        self, owner: str, outcomes: Sequence[Settlement], new: NewMessage, lease_seconds: float
    ) -> tuple[int, list[Claim]] | None:
        """`hand_over`, the new message's recipients leased to this owner in the same
        transaction when they are due now; returns the new message's id and their claims
        (none when the message is deferred), or None as hand_over does. The owner delivers
        them at once, the content in hand; a lease it does not settle expires and the queue
        claims them again."""
        ...

    async def read_content(self, message_id: int, *, size_hint: int | None = None) -> bytes:
        """The message's content, checked against its recorded size (`size_hint`, when the
        caller knows it, lets a small message be read without a thread hop)."""
        ...

    async def quarantine_message(self, message_id: int, reason: str) -> None:
        """Set a bad message and its recipients aside, keeping a copy."""
        ...

    async def reports_owed(self, limit: int) -> list[OwedReport]:
        """Recipients whose outcome is final and whose report is still to be sent, by message
        (at most `limit` recipients)."""
        ...

    async def complete_reports(
        self, message_id: int, recipient_ids: Sequence[int], report: NewMessage | None
    ) -> int | None:
        """Enqueue `report` (if any) and mark the recipients' reports sent, in one
        transaction; returns the report's message id."""
        ...

    async def next_due(self, *, urgent_only: bool = False) -> float | None:
        """When the next recipient (the next urgent one) becomes due, if any."""
        ...

    async def make_due(self, *, next_hop: str | None = None) -> int:
        """Make the deferred recipients due now, all of them or those of one next hop (as
        stored); returns how many."""
        ...

    async def queue_summary(self) -> QueueSummary:
        """The queue by next hop and state, and the reports owed (for the metrics)."""
        ...

    async def close(self) -> None: ...
