"""The `aftn` delivery agent: the AFTN/AMHS gateway's AMHS to AFTN direction (ICAO Doc 9880
Part II). An AMHS message for AFTN users is converted to one AFTN message (waypost.amhs.
convert) and written to the AFTN station `aftn:NAME` over a TCP connection kept open, with
the next transmission identification of that station's channel. Written and flushed is
delivered: the gateway is the AMHS message's delivery point, so a delivery report is owed
when asked; a message AFTN cannot carry fails with a non-delivery report saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field, replace

from waypost import events
from waypost.amhs.aftn import AFTNMessage, Framing, encode
from waypost.amhs.convert import (
    ConversionError,
    GatewaySettings,
    amhs_to_aftn,
    probe_answer,
    report_to_aftn,
)
from waypost.amhs.record import Recorder, record_of_aftn
from waypost.asn1 import BERError
from waypost.handoff import Attempt, Claim, Handoff, Result, all_attempts
from waypost.message import Envelope, ObjectKind
from waypost.nexthop import Transport
from waypost.x400.p1_report import decode_report_content

# Wait before a station that could not be reached is tried again.
RETRY_AFTER = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AftnStation:
    """An AFTN station ([[amhs.peer]]) and how to reach it."""

    name: str
    host: str
    port: int
    framing: Framing
    channel: str
    connect_timeout: float = 30.0


@dataclass(slots=True)
class _Link:
    """The connection to one station and its channel-sequence number."""

    station: AftnStation
    sequence: int = 0
    writer: asyncio.StreamWriter | None = None
    drain_task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def next_id(self) -> str:
        """The next transmission identification: the circuit and 001 to 999, then 001
        again (Annex 10 Volume II §4.4.2.1.1)."""
        self.sequence = self.sequence % 999 + 1
        return f"{self.station.channel}{self.sequence:03d}"


class AftnDeliverer:
    """Delivers to the next hops `aftn:NAME`."""

    def __init__(
        self,
        settings: GatewaySettings,
        stations: list[AftnStation],
        *,
        recorder: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self._links = {s.name: _Link(s) for s in stations}
        self.recorder = recorder

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        claims = list(handoff.recipients)
        hop = handoff.next_hop
        link = self._links.get(hop.destination) if hop.transport is Transport.AFTN else None
        if link is None:
            return all_attempts(
                claims, Result.DEFERRED, f"no [[amhs.peer]] named {hop.destination}"
            )
        envelope = handoff.envelope
        if envelope.object_kind is ObjectKind.REPORT:
            return await self._report(handoff, link)
        if envelope.object_kind is ObjectKind.PROBE:
            return [self._probe(envelope, claim, link) for claim in claims]
        try:
            aftn = amhs_to_aftn(
                envelope,
                handoff.content,
                [c.address for c in claims],
                self.settings,
                link.station.framing,
            )
        except ConversionError as exc:
            return all_attempts(claims, Result.FAILED, exc.detail)
        return await self._transmit(handoff, link, aftn)

    def _probe(self, envelope: Envelope, claim: Claim, link: _Link) -> Attempt:
        """A probe is answered as its message would be: convertible or not."""
        why = probe_answer(envelope, claim.address, self.settings)
        if why is not None:
            return Attempt(recipient_id=claim.recipient_id, result=Result.FAILED, detail=why)
        return Attempt(
            recipient_id=claim.recipient_id,
            result=Result.DELIVERED,
            detail=f"would be converted and sent to AFTN station {link.station.name}",
            remote_mta=link.station.name,
        )

    async def _report(self, handoff: Handoff, link: _Link) -> list[Attempt]:
        """A report to an AFTN user: an unknown-address service message when it is the
        non-delivery of an AFTN message the gateway converted; any other is absorbed here
        with an event (AFTN has no form for it)."""
        claims = list(handoff.recipients)
        try:
            report = decode_report_content(handoff.content)
        except (BERError, ValueError) as exc:
            aftn = None
            why = f"it does not decode: {exc}"
        else:
            aftn = report_to_aftn(report, self.settings, time.time())
            why = "AFTN has no form for it"
        if aftn is None:
            events.emit(
                events.AFTN_REPORT_ABSORBED,
                message_id=handoff.message_id,
                mts_id=handoff.envelope.mts_id,
                reason=why,
            )
            detail = f"report absorbed by the AFTN/AMHS gateway: {why}"
            return all_attempts(claims, Result.DELIVERED, detail)
        return await self._transmit(handoff, link, aftn)

    async def _transmit(self, handoff: Handoff, link: _Link, aftn: AFTNMessage) -> list[Attempt]:
        claims = list(handoff.recipients)
        envelope = handoff.envelope
        async with link.lock:
            tid = link.next_id()
            data = encode(replace(aftn, transmission_id=tid), link.station.framing)
            try:
                await self._send(link, data)
            except OSError as exc:
                link.sequence -= 1  # not sent: the number is used by the next message
                detail = f"4.4.1 AFTN station {link.station.name} not reached: {exc}"
                return all_attempts(
                    claims, Result.DEFERRED, detail, retry_after=RETRY_AFTER, hop_failure=True
                )
        if self.recorder is not None:
            await self.recorder(
                record_of_aftn(
                    replace(aftn, transmission_id=tid),
                    at=time.time(),
                    direction="out",
                    channel=f"aftn:{link.station.name}",
                    message_id=handoff.message_id,
                    mts_id=envelope.mts_id,
                )
            )
        events.emit(
            events.AFTN_SENT,
            message_id=handoff.message_id,
            mts_id=envelope.mts_id,
            peer=link.station.name,
            transmission_id=tid,
            priority=aftn.priority.value,
            addressees=" ".join(aftn.addressees),
        )
        return [
            Attempt(
                recipient_id=c.recipient_id,
                result=Result.DELIVERED,
                detail=f"sent to AFTN station {link.station.name} as {tid}",
                remote_mta=link.station.name,
            )
            for c in claims
        ]

    async def _send(self, link: _Link, data: bytes) -> None:
        """Write on the station's connection, opened (again) when there is none."""
        for fresh in (False, True):
            writer = link.writer
            if writer is None or writer.is_closing() or fresh:
                await self._close(link)
                writer = await self._connect(link)
            try:
                writer.write(data)
                await writer.drain()
                return
            except OSError:
                if fresh:
                    await self._close(link)
                    raise
        raise AssertionError("unreachable")

    async def _connect(self, link: _Link) -> asyncio.StreamWriter:
        station = link.station
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(station.host, station.port), station.connect_timeout
            )
        except TimeoutError:
            raise OSError(f"no connection within {station.connect_timeout:g} s") from None
        link.writer = writer
        # What the station sends on the connection (channel checks) is read and dropped;
        # its end closes ours, so the next message opens a new one.
        link.drain_task = asyncio.get_running_loop().create_task(_discard(reader, writer))
        return writer

    async def _close(self, link: _Link) -> None:
        writer, link.writer = link.writer, None
        if link.drain_task is not None:
            link.drain_task.cancel()
            link.drain_task = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        for link in self._links.values():
            await self._close(link)


async def _discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(4096):
            pass
    writer.close()
