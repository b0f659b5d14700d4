"""Turning a message into queue entries: every recipient routed to a next hop first."""

from __future__ import annotations

from waypost.message import Message
from waypost.routing import RoutingTable
from waypost.store.base import NewMessage


class UnroutableError(Exception):
    """Recipients that have no route, each with the reason."""

    def __init__(self, reasons: tuple[tuple[str, str], ...]) -> None:
        super().__init__(reasons)
        self.reasons = reasons

    def __str__(self) -> str:
        return "; ".join(f"{address}: {reason}" for address, reason in self.reasons)


def route_message(message: Message, routing: RoutingTable) -> NewMessage:
    """The message with a next hop for each recipient; raises UnroutableError naming the others."""
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
