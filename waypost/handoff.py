"""What the queue manager hands a delivery agent and what it gets back: the one interface
between the queue and every agent (local, smtp, x400, error), with no transport in it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from waypost.message import Envelope, Message, Notify, Recipient, ReportRequest
from waypost.nexthop import NextHop


class Result(enum.StrEnum):
    """What a delivery attempt came to."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A recipient leased to this worker, with its message's envelope."""

    recipient_id: int
    message_id: int
    rcpt_index: int
    address: str
    next_hop: str
    attempts: int
    received_at: float
    expires_at: float
    size: int
    envelope: Envelope
    last_error: str | None = None
    lease_was_expired: bool = False
    previous_owner: str | None = None
    # The message's content when the claim read it along (a small message, from a database
    # across the network: one round trip fewer); otherwise the queue reads it.
    content: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    """One message for some of its recipients, all to the same next hop."""

    next_hop: NextHop
    message_id: int
    envelope: Envelope
    content: bytes
    recipients: Sequence[Claim]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Conversion:
    """A message a gateway made for some recipients of a handoff, routed by the intake.

    The queue stores it in the same transaction that settles those recipients as
    delivered, so responsibility passes exactly once: never both, never neither. The
    attempts it answers for all carry this one object.
    """

    message: Message
    next_hops: Sequence[NextHop]
    # What it is, for the event: e.g. "rfc5322 → P22", "X.411 report → DSN".
    kind: str = ""


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
    # The next hop itself could not be used (no connection, no greeting, no open): the
    # hop's failure, not the message's. The queue manager then holds the hop's other
    # recipients back without a try each until a probe finds it up (queue/destinations.py).
    hop_failure: bool = False
    # False when nothing was tried for this recipient (its next hop was known to be
    # unreachable): the recipient's count of attempts is not raised.
    attempted: bool = True
    # A gateway's answer: the converted message that takes over this recipient
    # (result DELIVERED); stored with the outcome in one transaction.
    conversion: Conversion | None = None


class Deliverer(Protocol):
    """A delivery agent for one transport (local, smtp, x400, error)."""

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        """One Attempt per recipient of the handoff. Must not raise for a peer's faults."""
        ...


class ReportKind(enum.StrEnum):
    """What a report is about, as NOTIFY names it (RFC 3461 §4.1)."""

    FAILURE = "failure"
    DELAY = "delay"
    SUCCESS = "success"


_NOTIFY = {
    ReportKind.FAILURE: Notify.FAILURE,
    ReportKind.DELAY: Notify.DELAY,
    ReportKind.SUCCESS: Notify.SUCCESS,
}


def should_report(
    envelope: Envelope,
    recipient: Recipient,
    kind: ReportKind,
    *,
    delay_without_notify: bool = False,
) -> bool:
    """Whether a report of `kind` is owed for this recipient (RFC 3461 §4.1; X.411 for O/R
    originators, whose reports are P1 reports).

    Never for a null reverse path or a report. NOTIFY, when given, decides
    alone. Without it: failures are reported, delays only if
    `delay_without_notify`, successes only when an X.400 originator asked for
    every report (report_request ALWAYS); report_request NONE silences all.
    """
    if not envelope.originator or envelope.is_report:
        return False
    if envelope.originator.startswith("/"):
        # An O/R originator: X.411's per-recipient requests; the originating MTA's
        # (mta_report_request) counts too, as it decides what reaches the originator.
        request = max(recipient.report_request, recipient.mta_report_request)
        if kind is ReportKind.FAILURE:
            return request >= ReportRequest.NON_DELIVERY
        return kind is ReportKind.SUCCESS and request is ReportRequest.ALWAYS
    if recipient.notify:
        return Notify.NEVER not in recipient.notify and _NOTIFY[kind] in recipient.notify
    if recipient.report_request is ReportRequest.NONE:
        return False
    if kind is ReportKind.FAILURE:
        return True
    if kind is ReportKind.DELAY:
        return delay_without_notify
    return recipient.report_request is ReportRequest.ALWAYS


def all_attempts(
    claims: Sequence[Claim],
    result: Result,
    detail: str,
    *,
    retry_after: float | None = None,
    hop_failure: bool = False,
    attempted: bool = True,
) -> list[Attempt]:
    """The same answer for every recipient (a connection that failed, a refused hop)."""
    return [
        Attempt(
            recipient_id=c.recipient_id,
            result=result,
            detail=detail,
            retry_after=retry_after,
            hop_failure=hop_failure,
            attempted=attempted,
        )
        for c in claims
    ]
