"""The `gateway:mixer` delivery agent: converts a message for the other world (RFC 2156,
RFC 2157) and submits the result through the intake, like every other message.

The converted message is not stored here: it goes back to the queue manager with the
attempts it answers for, and the store enqueues it in the same transaction that marks
those recipients delivered (Store.hand_over), so responsibility passes exactly once. A
message that cannot be converted fails with a report, never silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from msgspec.structs import replace

from waypost import events
from waypost.arrival import Arrival, LoopError, Source, UnroutableError
from waypost.clock import Clock
from waypost.handoff import Attempt, Claim, Conversion, Handoff, Result, all_attempts
from waypost.intake import Intake, is_x400_content
from waypost.message import Message, ObjectKind
from waypost.mixer.address_map import AddressMapper
from waypost.mixer.convert import (
    ConversionError,
    Converted,
    GatewayLoopError,
    GatewaySide,
    ipm_to_mail,
    is_ipm_content,
    mail_to_ipm,
)
from waypost.store.base import NewMessage

Converter = Callable[[Message, Sequence[int], GatewaySide], Converted]


class GatewayDeliverer:
    """Converts each handoff for the other world and hands the result to the queue."""

    def __init__(
        self, mapper: AddressMapper, intake: Intake, *, clock: Clock, hostname: str
    ) -> None:
        self.mapper = mapper
        self.intake = intake
        self.clock = clock
        self.hostname = hostname

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        envelope = handoff.envelope
        claims = list(handoff.recipients)
        side = GatewaySide(
            mapper=self.mapper,
            x400_domain=self.intake.x400_domain,
            hostname=self.hostname,
            now=self.clock.now(),
        )
        message = Message(envelope=envelope, content=handoff.content)
        if envelope.object_kind is not ObjectKind.MESSAGE:
            # X.411 reports and probes ⇄ DSNs: not converted by this gateway yet.
            return self._refuse(handoff, claims, "5.6.3 X.400 reports and probes are not converted")
        if is_x400_content(envelope):
            if not is_ipm_content(envelope.content_type):
                detail = f"5.6.1 content type {envelope.content_type} has no Internet form"
                return self._refuse(handoff, claims, detail)
            kind, convert = "X.400 → Internet mail", _ipm_to_mail
        else:
            kind, convert = "Internet mail → X.400", _mail_to_ipm
        try:
            converted = convert(message, [c.rcpt_index for c in claims], side)
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
        message = converted.message
        kept = list(converted.kept)
        new: NewMessage | None = None
        while message is not None and kept:
            try:
                new = self.intake.admit(message, Arrival(source=Source.GATEWAY, peer="mixer"))
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


def _ipm_to_mail(message: Message, indexes: Sequence[int], side: GatewaySide) -> Converted:
    return ipm_to_mail(message.envelope, message.content, indexes, side)


def _mail_to_ipm(message: Message, indexes: Sequence[int], side: GatewaySide) -> Converted:
    return mail_to_ipm(message.envelope, message.content, indexes, side)


def _with_recipients(message: Message, keep: list[int]) -> Message | None:
    if not keep:
        return None
    envelope = message.envelope
    recipients = [envelope.recipients[i] for i in keep]
    return Message(envelope=replace(envelope, recipients=recipients), content=message.content)
