"""The one path every message enters, as Postfix's cleanup(8): from SMTP, P1, `waypost
submit`, the report generator or a gateway, a message leaves here routed, traced and
checked for loops and critical extensions, as a `NewMessage` ready to enqueue.

What cannot be served is decided here too: refused whole where the transport can refuse
(SMTP, submit, reports), or kept with an `error:` hop where it cannot (a P1 transfer is
confirmed or refused as a whole, so such a recipient is non-delivered with a report).
"""

from __future__ import annotations

import msgspec

from waypost import events
from waypost.address import is_oraddress_text
from waypost.arrival import Arrival, LoopError, Source, UnroutableError
from waypost.clock import Clock
from waypost.message import ContentType, Envelope, Message, ObjectKind, header_message_id
from waypost.nexthop import NextHop, Transport
from waypost.routing import Decision, RoutingTable
from waypost.smtp.server_received import count_received
from waypost.store.base import NewMessage
from waypost.x400.p1_envelope import unsupported_critical
from waypost.x400.p1_objects import add_trace, loop_detected

# The texts of the intake's own `error:` hops. Their status codes are what the report
# says (X.411 diagnostics loop-detected and unsupported-critical-function).
LOOP_HOP = NextHop(
    Transport.ERROR, "5.4.6 loop detected: the message has been through this domain before"
)
_CRITICAL = "5.3.3 unsupported critical function"
_NO_ROUTE = "5.4.4"
# A recipient of one world with content of the other: the MIXER gateway converts it.
GATEWAY_HOP = NextHop(Transport.GATEWAY, "mixer")
# Hops that re-routing keeps: they judge the message, not the routing table.
_VERDICTS = (LOOP_HOP.destination, _CRITICAL)


class Intake:
    """Routing, trace, loop and extension checks, for every message the same way."""

    def __init__(
        self,
        routing: RoutingTable,
        *,
        clock: Clock,
        x400_domain: str,
        max_received: int = 50,
        gateway: bool = False,
    ) -> None:
        self.routing = routing
        self.clock = clock
        self.x400_domain = x400_domain
        self.max_received = max_received
        # The MIXER gateway is on: content goes through it to a recipient of the other world.
        self.gateway = gateway

    def admit(self, message: Message, arrival: Arrival) -> NewMessage | None:
        """The message ready to enqueue, each recipient with its next hop.

        Raises UnroutableError (submit, reports, gateway) or LoopError (SMTP) when it
        must be refused; returns None when there is nothing to store (a P1 report
        that looped, or no recipient this MTA is responsible for).
        """
        if arrival.source is Source.P1:
            return self._admit_p1(message, arrival)
        if arrival.source is Source.SMTP:
            return self._admit_smtp(message, arrival)
        if (
            arrival.source is Source.GATEWAY
            and message.envelope.content_type == ContentType.INTERNET
            and count_received(message.content) >= self.max_received
        ):
            # Converted from X.400 with a trace as long as SMTP's loop limit: crossing
            # again would make the loop the other world detects no sooner.
            raise LoopError(f"{self.max_received} or more Received: fields")
        if arrival.source is not Source.REPORT and is_oraddress_text(message.envelope.originator):
            # X.411: the MTA a message is submitted to adds its domain's trace element.
            envelope = message.envelope
            traced = add_trace(envelope, self.x400_domain, envelope.arrival or self.clock.now())
            message = msgspec.structs.replace(message, envelope=traced)
        return NewMessage(message=message, next_hops=self._route_all(message.envelope))

    def reroute(self, envelope: Envelope, rcpt_index: int, current: NextHop | None) -> NextHop:
        """A queued recipient's next hop under today's routing table (an operator's
        `waypost queue reroute`); the intake's own verdicts (loop, critical extension)
        stay, and a recipient that no longer has a route fails with a report."""
        if (
            current is not None
            and current.transport is Transport.ERROR
            and current.destination.startswith(_VERDICTS)
        ):
            return current
        address = envelope.recipients[rcpt_index].address
        decision = self.routing.route(address)
        if decision.next_hop is not None:
            return self._across(envelope, address, decision.next_hop)
        return NextHop(Transport.ERROR, f"{_NO_ROUTE} {_reason(decision)}")

    def _across(self, envelope: Envelope, address: str, hop: NextHop) -> NextHop:
        """The gateway when the recipient is of the other world than the content (an O/R
        address for Internet mail, a mailbox for X.400 content); else `hop`."""
        if not self.gateway or hop.transport in (Transport.GATEWAY, Transport.ERROR):
            return hop
        if is_x400_content(envelope) != is_oraddress_text(address):
            return GATEWAY_HOP
        return hop

    def _route_all(self, envelope: Envelope) -> list[NextHop]:
        hops: list[NextHop] = []
        missing: list[tuple[str, str]] = []
        for recipient in envelope.recipients:
            decision = self.routing.route(recipient.address)
            if decision.next_hop is None:
                missing.append((recipient.address, _reason(decision)))
                continue
            hops.append(self._across(envelope, recipient.address, decision.next_hop))
        if missing:
            raise UnroutableError(tuple(missing))
        return hops

    def _admit_smtp(self, message: Message, arrival: Arrival) -> NewMessage:
        if count_received(message.content) >= self.max_received:
            events.emit(
                events.SMTP_LOOP,
                client=arrival.peer,
                hops=self.max_received,
                originator=message.envelope.originator or "<>",
            )
            raise LoopError(f"{self.max_received} or more Received: fields")
        if arrival.received:
            message = msgspec.structs.replace(message, content=arrival.received + message.content)
        if arrival.next_hops is None:
            return NewMessage(message=message, next_hops=self._route_all(message.envelope))
        return NewMessage(message=message, next_hops=arrival.next_hops)

    def _admit_p1(self, message: Message, arrival: Arrival) -> NewMessage | None:
        """Every recipient this MTA is responsible for, with its route or an `error:` hop
        saying why it must be non-delivered; reports that looped are dropped."""
        envelope = message.envelope
        domain = self.x400_domain
        is_report = envelope.object_kind is ObjectKind.REPORT
        looped = loop_detected(envelope, domain)
        if looped:
            events.emit(
                events.X400_LOOP_DETECTED,
                peer=arrival.peer,
                kind=envelope.object_kind.value,
                mts_id=envelope.mts_id,
                domain=domain,
                outcome="discarded (reports are never reported on)"
                if is_report
                else "non-delivered with loop-detected",
            )
            if is_report:
                return None
        now = self.clock.now()
        envelope = add_trace(envelope, domain, now)
        recipients = []
        hops: list[NextHop] = []
        for index, recipient in enumerate(envelope.recipients):
            if not recipient.responsibility and not is_report:
                continue  # another MTA answers for it (X.411 responsibility)
            recipients.append(recipient)
            if looped:
                hops.append(LOOP_HOP)
            elif arrival.next_hops is not None:  # the listener's verdict (an unreadable object)
                hops.append(arrival.next_hops[index])
            else:
                hops.append(self._p1_hop(envelope, index, arrival))
        if not recipients:
            return None
        envelope = msgspec.structs.replace(envelope, recipients=recipients, arrival=now)
        return NewMessage(
            message=Message(envelope=envelope, content=message.content), next_hops=hops
        )

    def _p1_hop(self, envelope: Envelope, index: int, arrival: Arrival) -> NextHop:
        """The next hop of one recipient: its route, or an `error:` hop saying why not."""
        recipient = envelope.recipients[index]
        # Waypost relays every extension but acts on none: X.411 says one critical for
        # transfer that an MTA does not support means non-delivery.
        # (The envelope's extensions and this recipient's; most messages have none.)
        found = (
            unsupported_critical(msgspec.structs.replace(envelope, recipients=[recipient]))
            if envelope.extensions or recipient.extensions
            else None
        )
        if found:
            events.emit(
                events.X400_CRITICAL_EXTENSION,
                peer=arrival.peer,
                kind=envelope.object_kind.value,
                mts_id=envelope.mts_id,
                extension=found[0].type,
                critical_for="transfer",
                outcome=f"{recipient.address} non-delivered",
            )
            return NextHop(Transport.ERROR, f"{_CRITICAL} (extension {found[0].type})")
        decision = self.routing.route(recipient.address)
        if decision.next_hop is not None:
            return self._across(envelope, recipient.address, decision.next_hop)
        reason = _reason(decision)
        events.emit(
            events.X400_NO_ROUTE,
            peer=arrival.peer,
            mts_id=envelope.mts_id,
            recipient=recipient.address,
            reason=reason,
        )
        # Kept, not dropped: the error transport fails it with a report owed.
        return NextHop(Transport.ERROR, f"{_NO_ROUTE} {reason}")


def is_x400_content(envelope: Envelope) -> bool:
    """Whether the object belongs to the X.400 world: an IPM (P2, P22, P772…), an X.400
    report or a probe; Internet mail (RFC 5322, DSNs) does not."""
    return (
        envelope.object_kind is not ObjectKind.MESSAGE
        or envelope.content_type != ContentType.INTERNET
    )


def _reason(decision: Decision) -> str:
    return decision.explanation[-1] if decision.explanation else "no route"


def record_queued(
    message_id: int, new: NewMessage, arrival: Arrival, *, came_as: Message | None = None
) -> None:
    """Event 1420, the first record of a message's life: where it came from, its ids, and
    each recipient's route. `came_as`: the message as it arrived, when what was stored is
    its conversion (its Message-ID is the one the sender knows)."""
    if not events.enabled(events.MESSAGE_QUEUED):
        return
    message = new.message
    envelope = message.envelope
    first = came_as or message
    internet = first.envelope.content_type == ContentType.INTERNET
    msgid = header_message_id(first.content) if internet else None
    events.emit(
        events.MESSAGE_QUEUED,
        message_id=message_id,
        mts_id=envelope.mts_id,
        msgid=msgid or "",
        sender=first.envelope.originator or "<>",
        source=arrival.source.value,
        peer=arrival.peer,
        tls=arrival.tls,
        auth=arrival.auth,
        size=len(message.content),
        recipients=len(new.next_hops),
        routes=tuple(
            (r.address, str(hop)) for r, hop in zip(envelope.recipients, new.next_hops, strict=True)
        ),
    )
