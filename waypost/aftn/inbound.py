"""AFTN messages received over TCP, converted to AMHS and queued (ICAO Doc 9880 Part II, the
gateway's AFTN to AMHS direction). A connection's messages are read one at a time: each is
durable in the queue before the next is read, and one the queue cannot take closes the
connection (AFTN over TCP acknowledges nothing: the station sends again what a broken
connection cut). What cannot be converted whole is answered with an AFTN service message,
itself queued as an AMHS message to the originator, so that it travels like any other."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from waypost import events
from waypost.address import parse_oraddress
from waypost.amhs.aftn import AFTNFormatError, AFTNMessage, Deframer, Framing, decode
from waypost.amhs.convert import FromAFTN, GatewaySettings, aftn_to_amhs, unknown_addressees
from waypost.amhs.record import Recorder, record_of_aftn
from waypost.arrival import Admit, Arrival, Source, UnroutableError
from waypost.clock import Clock
from waypost.message import Message
from waypost.net.driver import SessionServer
from waypost.net.listener import Admission, ConnectionLimits, Listener
from waypost.store.base import StoreError

READ_SIZE = 64 * 1024


class NotQueuedError(Exception):
    """The queue could not take an AFTN message: the connection is closed."""


@dataclass(frozen=True, slots=True)
class Received:
    """What became of one AFTN message: the AMHS message's id (None when nothing was
    queued) and the addressees that could not be reached."""

    message_id: int | None
    unknown: tuple[str, ...]


class AftnGateway:
    """Converts AFTN messages to AMHS and queues them through the intake."""

    def __init__(
        self,
        settings: GatewaySettings,
        admit: Admit,
        clock: Clock,
        *,
        recorder: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self.admit = admit
        self.clock = clock
        self.recorder = recorder

    async def receive(self, aftn: AFTNMessage, peer: str) -> Received:
        """Queue the AMHS message an AFTN message makes, and the service message for what
        it could not carry; NotQueuedError when the queue cannot take it."""
        now = self.clock.now()
        converted = aftn_to_amhs(aftn, self.settings, now)
        arrival = Arrival(source=Source.AFTN, peer=peer)
        unknown = list(converted.unknown)
        message_id = None
        message = converted.message
        while message is not None:
            try:
                queued = await self.admit(message, arrival)
            except UnroutableError as exc:
                # Addressees the register maps but no route reaches: left out, and named
                # in the service message like those the register does not hold.
                message, dropped = _without(message, {a for a, _ in exc.reasons})
                unknown += [self._aftn_of(address) for address in dropped]
                continue
            except StoreError as exc:
                raise NotQueuedError(str(exc)) from None
            message_id = queued.message_id if queued is not None else None
            break
        if self.recorder is not None:
            await self.recorder(
                record_of_aftn(
                    aftn,
                    at=now,
                    direction="in",
                    channel=f"aftn:{peer}",
                    message_id=message_id,
                    mts_id=message.envelope.mts_id if message is not None else None,
                )
            )
        service = converted.service
        if len(unknown) != len(converted.unknown):
            service = unknown_addressees(aftn, tuple(unknown), self.settings, now)
        if service is not None:
            await self._send_service(aftn, service, peer, now)
        if message_id is not None and message is not None:
            envelope = message.envelope
            events.emit(
                events.AFTN_RECEIVED,
                transmission_id=aftn.transmission_id,
                peer=peer,
                priority=aftn.priority.value,
                filing_time=aftn.filing_time,
                originator=aftn.originator,
                message_id=message_id,
                mts_id=envelope.mts_id,
                recipients=len(envelope.recipients),
            )
        return Received(message_id, tuple(unknown))

    def _aftn_of(self, oraddress: str) -> str:
        try:
            return self.settings.register.to_aftn(parse_oraddress(oraddress))
        except ValueError:
            return oraddress

    async def _send_service(
        self, original: AFTNMessage, service: AFTNMessage, peer: str, now: float
    ) -> None:
        """Queue the service message to the originator, as an AMHS message from the
        gateway's own AFTN address (its O/R address in the register)."""
        events.emit(
            events.AFTN_SERVICE_MESSAGE,
            transmission_id=original.transmission_id,
            peer=peer,
            filing_time=original.filing_time,
            originator=original.originator,
            reason=service.text.splitlines()[0],
        )
        converted: FromAFTN = aftn_to_amhs(service, self.settings, now)
        if converted.message is None:
            return  # the gateway's own address or the originator's has no AMHS address
        with contextlib.suppress(UnroutableError, StoreError):
            await self.admit(converted.message, Arrival(source=Source.AFTN, peer="gateway"))


def _without(message: Message, refused: set[str]) -> tuple[Message | None, list[str]]:
    """The message without the recipients named, and those taken out."""
    envelope = message.envelope
    kept = [r for r in envelope.recipients if r.address not in refused]
    dropped = [r.address for r in envelope.recipients if r.address in refused]
    if not kept:
        return None, dropped
    trimmed = msgspec.structs.replace(envelope, recipients=kept)
    return msgspec.structs.replace(message, envelope=trimmed), dropped


@dataclass(slots=True, eq=False)  # one per connection, kept in a set by identity
class _Session:
    """One connection's reader task."""

    task: asyncio.Task[None]

    def shutdown(self) -> None:
        self.task.cancel()


class SequenceCheck:
    """The channel-sequence numbers of one connection's circuits (Annex 10 Volume II
    §4.4.2.1.1): each message's number follows the last of its circuit (999 by 001); one
    that does not shows messages missing in between (event 1956)."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self._last: dict[str, int] = {}

    def check(self, transmission_id: str) -> None:
        circuit, number = transmission_id[:3], int(transmission_id[3:] or 0)
        last = self._last.get(circuit)
        self._last[circuit] = number
        if last is None:
            return
        expected = last % 999 + 1
        if number != expected:
            events.emit(
                events.AFTN_SEQUENCE_GAP,
                circuit=circuit,
                peer=self.peer,
                transmission_id=transmission_id,
                expected=f"{expected:03d}",
            )


class AftnServer(SessionServer):
    """The AFTN-over-TCP listeners: each connection's octets cut into messages by the
    framing, each message handed to the gateway in turn."""

    def __init__(
        self,
        gateway: AftnGateway,
        addresses: list[tuple[str, int]],
        framing: Framing,
        *,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.gateway = gateway
        self.framing = framing
        self.listener = Listener("aftn", addresses, self._protocol, limits=limits)
        self.sessions: set[_Session] = set()

    async def close(self) -> None:
        """Stop accepting, stop reading, and wait for the messages being queued."""
        tasks = [session.task for session in self.sessions]
        await super().close()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _protocol(self, admission: Admission, release: Callable[[], None]) -> asyncio.Protocol:
        reader = asyncio.StreamReader(limit=READ_SIZE)

        def connected(r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.get_running_loop().create_task(self._serve(admission, r, writer))
            session = _Session(task)
            self.sessions.add(session)
            task.add_done_callback(lambda _: self.sessions.discard(session))
            task.add_done_callback(lambda _: release())

        return asyncio.StreamReaderProtocol(reader, connected)

    async def _serve(
        self, admission: Admission, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = "{}:{}".format(*admission.peer)
        try:
            if admission.refused is not None:
                events.emit(events.AFTN_REFUSED, peer=peer, reason=admission.refused)
                return
            deframer = Deframer(self.framing)
            numbers = SequenceCheck(peer)
            while True:
                try:
                    data = await reader.read(READ_SIZE)
                except OSError:
                    return
                if not data:
                    return
                for raw in deframer.feed(data):
                    if not await self._one(raw, peer, numbers):
                        return
        except Exception as exc:  # one connection's fault never stops the listener
            events.emit(events.UNEXPECTED_ERROR, component="aftn listener", error=repr(exc))
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _one(self, raw: bytes, peer: str, numbers: SequenceCheck) -> bool:
        """Handle one message; False when the connection must close."""
        try:
            aftn = decode(raw, self.framing)
        except AFTNFormatError as exc:
            events.emit(events.AFTN_REFUSED, peer=peer, reason=str(exc))
            return True
        numbers.check(aftn.transmission_id)
        try:
            await self.gateway.receive(aftn, peer)
        except NotQueuedError as exc:
            events.emit(
                events.AFTN_NOT_QUEUED,
                transmission_id=aftn.transmission_id,
                peer=peer,
                error=str(exc),
            )
            return False
        return True
