"""How a message arrived, as the transports tell the intake (`waypost.intake`), and how
the intake refuses one: the types both sides share, so no transport imports the intake."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from waypost.message import Message
from waypost.nexthop import NextHop


class Source(enum.StrEnum):
    """Where a message came from."""

    SUBMIT = "submit"  # `waypost submit`, or the service's own submit()
    SMTP = "smtp"
    P1 = "p1"
    REPORT = "report"  # a DSN or X.411 report made by this MTA
    GATEWAY = "gateway"  # converted from the other world, resubmitted
    AFTN = "aftn"  # an AFTN message, converted by the AFTN/AMHS gateway


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """How a message arrived: its source, who sent it, and what the transport decided.

    `peer` is the SMTP client's address or the X.400 peer's name, for events.
    `next_hops`: SMTP routes each recipient at RCPT (its relay policy asks the
    intake's routing table), so the hops come with the message. `received` is the
    transport's own trace field (SMTP `Received:`), put in front of the content
    after the loop check.
    """

    source: Source
    peer: str = ""
    # The TLS in use (protocol and cipher) and the authenticated identity, for tracking.
    tls: str = ""
    auth: str = ""
    next_hops: Sequence[NextHop] | None = None
    received: bytes = b""


class UnroutableError(Exception):
    """Recipients that have no route, each with the reason."""

    def __init__(self, reasons: tuple[tuple[str, str], ...]) -> None:
        super().__init__(reasons)
        self.reasons = reasons

    def __str__(self) -> str:
        return "; ".join(f"{address}: {reason}" for address, reason in self.reasons)


class LoopError(Exception):
    """The message has been through too many MTAs (RFC 5321 §6.3): refuse it."""


@dataclass(frozen=True, slots=True)
class Queued:
    """A message the intake admitted, durable in the queue."""

    message_id: int
    recipients: int  # how many this MTA took responsibility for


Admit = Callable[[Message, Arrival], Awaitable[Queued | None]]
"""Pass a message through the intake and enqueue it, returning once it is durable (None
when there was nothing to store). Raises UnroutableError, LoopError or StoreError."""
