"""The `gateway:mixer` delivery agent: converts a message for the other world (RFC 2156,
RFC 2157) and submits the result through the intake, like every other message.

The converted message is not stored here: it goes back to the queue manager with the
attempts it answers for, and the store enqueues it in the same transaction that marks
those recipients delivered (Store.hand_over), so responsibility passes exactly once. A
message that cannot be converted fails with a report, never silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from msgspec.structs import replace

from waypost import events
from waypost.address import AddressError, is_oraddress_text, parse_oraddress
from waypost.arrival import Arrival, LoopError, Source, UnroutableError
from waypost.clock import Clock
from waypost.delivery.px_lookup import PxLookup, PxLookupError
from waypost.handoff import Attempt, Claim, Conversion, Handoff, Result, all_attempts
from waypost.intake import GATEWAY_HOP, Intake, is_x400_content
from waypost.message import Envelope, Message, ObjectKind
from waypost.mixer.address_map import AddressMapper, MappingEntry
from waypost.mixer.convert import ConversionError, Converted, GatewayLoopError, GatewaySide
from waypost.mixer.crossing import to_mail, to_x400
from waypost.store.base import NewMessage

# How the gateway's converted messages enter the intake.
GATEWAY_ARRIVAL = Arrival(source=Source.GATEWAY, peer="mixer")

# Content larger than this is converted in a worker thread, so that the event loop is
# never held for more than about a millisecond (the conversions take some 4 to 6 µs of
# CPU a KiB). Smaller content converts on the loop: handing a conversion of 100 KiB to a
# thread and back cost more CPU (0.1 to 0.3 ms) than a third of the conversion itself.
OFF_LOOP_SIZE = 256 * 1024


class GatewayDeliverer:
    """Converts each handoff for the other world and hands the result to the queue."""

    def __init__(
        self,
        mapper: AddressMapper,
        intake: Intake,
        *,
        clock: Clock,
        hostname: str,
        px: PxLookup | None = None,
    ) -> None:
        self.mapper = mapper
        self.intake = intake
        self.clock = clock
        self.hostname = hostname
        # RFC 2163: mappings published in DNS, looked up when the tables have none.
        self.px = px

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        envelope = handoff.envelope
        claims = list(handoff.recipients)
        try:
            side = await self._side(envelope, [c.address for c in claims])
        except PxLookupError as exc:
            # Whether a mapping exists is not known: the message waits, as it does for an
            # MX lookup that failed (a fallback encoding would give another address).
            return all_attempts(claims, Result.DEFERRED, str(exc))
        indexes = [c.rcpt_index for c in claims]
        if envelope.object_kind is ObjectKind.PROBE:
            return self._probe(handoff, claims)
        kind = "Internet mail → X.400"
        if is_x400_content(envelope):
            kind = "X.400 → Internet mail"
        try:
            kind, converted = await _convert(envelope, handoff.content, indexes, side)
        except GatewayLoopError as exc:
            events.emit(
                events.GATEWAY_LOOP,
                message_id=handoff.message_id,
                mts_id=envelope.mts_id,
                recipient=claims[0].address,
                evidence=exc.detail.partition(": ")[2] or exc.detail,
            )
            return all_attempts(claims, Result.FAILED, exc.detail)
        except ConversionError as exc:
            return self._refuse(handoff, claims, exc.detail, kind)
        return self._submit(handoff, claims, converted, kind)

    def _submit(
        self, handoff: Handoff, claims: list[Claim], converted: Converted, kind: str
    ) -> list[Attempt]:
        """Route the converted message through the intake; recipients it cannot route fail
        here with the intake's reason, and the rest are handed over with it."""
        by_index = {c.rcpt_index: c for c in claims}
        attempts = [
            self._failed(handoff, by_index[index], detail, kind)
            for index, detail in converted.refused.items()
        ]
        # A recipient the conversion neither carried nor refused must not wait for ever.
        answered = {*converted.kept, *converted.refused}
        attempts += [
            self._failed(handoff, claim, "5.6.3 the conversion does not carry it", kind)
            for claim in claims
            if claim.rcpt_index not in answered
        ]
        message = converted.message
        kept = list(converted.kept)
        new: NewMessage | None = None
        while message is not None and kept:
            try:
                new = self.intake.admit(message, GATEWAY_ARRIVAL)
                break
            except UnroutableError as exc:
                unroutable = {address for address, _ in exc.reasons}
                reasons = dict(exc.reasons)
                recipients = message.envelope.recipients
                keep = [i for i, r in enumerate(recipients) if r.address not in unroutable]
                for position, recipient in enumerate(recipients):
                    if recipient.address in unroutable:
                        detail = f"5.4.4 {recipient.address}: {reasons[recipient.address]}"
                        attempts.append(
                            self._failed(handoff, by_index[kept[position]], detail, kind)
                        )
                kept = [kept[i] for i in keep]
                message = _with_recipients(message, keep)
            except LoopError as exc:
                detail = f"5.4.6 loop detected: {exc}"
                attempts += [self._failed(handoff, by_index[i], detail, kind) for i in kept]
                kept = []
        if new is None or not kept:
            return attempts
        conversion = Conversion(message=new.message, next_hops=new.next_hops, kind=kind)
        detail = f"2.0.0 converted ({kind}) as {new.message.envelope.mts_id}"
        attempts += [
            Attempt(
                recipient_id=by_index[index].recipient_id,
                result=Result.DELIVERED,
                detail=detail,
                # The converted message's own reports answer for it in the other world.
                passed_on=True,
                conversion=conversion,
            )
            for index in kept
        ]
        return attempts

    async def convert_on_arrival(self, new: NewMessage) -> Conversion | None:
        """A message whose every recipient crosses the gateway, converted before it is
        first stored, so that only the converted message is (one durable copy, not two).

        Only a conversion that carries every recipient is made here. Anything else (a
        probe, a DNS lookup that failed, content that cannot be converted, a loop, a
        converted recipient without a route, or one bound for the gateway again) returns
        None: the message is stored as it came and converted in the queue, which reports
        what it cannot carry.
        """
        message = new.message
        envelope = message.envelope
        if envelope.object_kind is ObjectKind.PROBE or not all(
            hop == GATEWAY_HOP for hop in new.next_hops
        ):
            return None
        recipients = envelope.recipients
        try:
            side = await self._side(envelope, [r.address for r in recipients])
            indexes = range(len(recipients))
            kind, converted = await _convert(envelope, message.content, indexes, side)
        except (PxLookupError, ConversionError):
            return None
        if converted.message is None or converted.refused or sorted(converted.kept) != [*indexes]:
            return None
        try:
            admitted = self.intake.admit(converted.message, GATEWAY_ARRIVAL)
        except (UnroutableError, LoopError):
            return None
        if admitted is None or any(hop == GATEWAY_HOP for hop in admitted.next_hops):
            return None
        return Conversion(message=admitted.message, next_hops=admitted.next_hops, kind=kind)

    async def _side(self, envelope: Envelope, recipients: list[str]) -> GatewaySide:
        """What a conversion of this message needs to know of the gateway, now."""
        return GatewaySide(
            mapper=await self._mapper_for(envelope, recipients),
            x400_domain=self.intake.x400_domain,
            hostname=self.hostname,
            now=self.clock.now(),
        )

    async def _mapper_for(self, envelope: Envelope, recipients: list[str]) -> AddressMapper:
        """The tables, with the entries DNS publishes (RFC 2163 PX records) for the
        originator and these recipients when lookups are on."""
        if self.px is None:
            return self.mapper
        to_x400: list[MappingEntry] = []
        to_rfc822: list[MappingEntry] = []
        for address in {envelope.originator, *recipients} - {""}:
            if is_oraddress_text(address):
                try:
                    parsed = parse_oraddress(address)
                except AddressError:
                    continue
                found = await self.px.oraddress_entry(parsed)
                if found is not None:
                    to_rfc822.append(found)
            else:
                domain = address.strip("<>").rpartition("@")[2]
                found = await self.px.domain_entry(domain) if domain else None
                if found is not None:
                    to_x400.append(found)
        if not to_x400 and not to_rfc822:
            return self.mapper
        return self.mapper.with_entries(domain_to_oraddress=to_x400, oraddress_to_domain=to_rfc822)

    def _probe(self, handoff: Handoff, claims: list[Claim]) -> list[Attempt]:
        """A probe asks whether a message would be delivered: across the gateway, when its
        recipient has a form in the other world (RFC 2156 §5.4's probe rule), the delivery
        report it asked for says so; nothing crosses."""
        attempts = []
        for claim in claims:
            try:
                self.mapper.to_rfc822(parse_oraddress(claim.address))
            except AddressError as exc:
                attempts.append(
                    self._failed(handoff, claim, f"5.1.3 no RFC 822 form: {exc}", "probe")
                )
                continue
            attempts.append(
                Attempt(
                    recipient_id=claim.recipient_id,
                    result=Result.DELIVERED,
                    detail="2.0.0 the gateway would convert it for Internet mail",
                )
            )
        return attempts

    def _refuse(
        self, handoff: Handoff, claims: list[Claim], detail: str, kind: str = "conversion"
    ) -> list[Attempt]:
        return [self._failed(handoff, claim, detail, kind) for claim in claims]

    def _failed(self, handoff: Handoff, claim: Claim, detail: str, kind: str) -> Attempt:
        events.emit(
            events.GATEWAY_CONVERSION_FAILED,
            message_id=handoff.message_id,
            mts_id=handoff.envelope.mts_id,
            recipient=claim.address,
            conversion=kind,
            error=detail,
        )
        return Attempt(recipient_id=claim.recipient_id, result=Result.FAILED, detail=detail)


async def _convert(
    envelope: Envelope, content: bytes, indexes: Sequence[int], side: GatewaySide
) -> tuple[str, Converted]:
    """The message converted for the other world: what it became, and the result."""
    convert = to_mail if is_x400_content(envelope) else to_x400
    if len(content) > OFF_LOOP_SIZE:
        # A large conversion takes milliseconds of CPU: in a worker thread, the event
        # loop keeps every other session and association moving meanwhile.
        return await asyncio.to_thread(convert, envelope, content, indexes, side)
    return convert(envelope, content, indexes, side)


def _with_recipients(message: Message, keep: list[int]) -> Message | None:
    if not keep:
        return None
    envelope = message.envelope
    recipients = [envelope.recipients[i] for i in keep]
    return Message(envelope=replace(envelope, recipients=recipients), content=message.content)
