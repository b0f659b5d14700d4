"""Turning a submitted message into queue entries: every recipient routed to a next hop
first, and an X.400 object given its originating domain's trace element."""

from __future__ import annotations

import time

import msgspec

from waypost.address import is_oraddress_text
from waypost.message import Message
from waypost.routing import RoutingTable
from waypost.store.base import NewMessage
from waypost.x400.p1_objects import add_trace


class UnroutableError(Exception):
    """Recipients that have no route, each with the reason."""

    def __init__(self, reasons: tuple[tuple[str, str], ...]) -> None:
        super().__init__(reasons)
        self.reasons = reasons

    def __str__(self) -> str:
        return "; ".join(f"{address}: {reason}" for address, reason in self.reasons)


def route_message(
    message: Message, routing: RoutingTable, *, x400_domain: str | None = None
) -> NewMessage:
    """The message with a next hop for each recipient; raises UnroutableError naming the others.

    With `x400_domain`, a message from an O/R originator gets that domain's trace element,
    as X.411 has the MTA it is submitted to add it.
    """
    envelope = message.envelope
    if x400_domain is not None and is_oraddress_text(envelope.originator):
        traced = add_trace(envelope, x400_domain, envelope.arrival or time.time())
        message = msgspec.structs.replace(message, envelope=traced)
    hops: list[str] = []
    missing: list[tuple[str, str]] = []
    for recipient in message.envelope.recipients:
        decision = routing.route(recipient.address)
        if decision.next_hop is None:
            reason = decision.explanation[-1] if decision.explanation else "no route"
            missing.append((recipient.address, reason))
            continue
        hops.append(str(decision.next_hop))
    if missing:
        raise UnroutableError(tuple(missing))
    return NewMessage(message=message, next_hops=hops)
