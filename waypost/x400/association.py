"""The asyncio driver of inbound P1 associations: the X.400 listener.

The sans-I/O `waypost.osi.stack.Association` speaks the protocol; this module
owns sockets and timers, checks MTA-bind credentials against `[[x400.peer]]`,
and hands each inbound message to the intake, which stores it durably *before*
the transfer is confirmed (the `x400` delivery agent is `waypost.delivery.x400`).

The listener serves both modes on one address: until the first session CN is
decoded, a 1988 and an X.410 responder read the same bytes (their transport
CCs are identical, one is written); the one that yields an `OpenRequest` is
kept. The intake adds this domain's trace element, and stores a loop, an
unsupported critical extension or an unroutable recipient with an `error:` hop,
so that it is non-delivered with a report owed rather than refused (a P1
transfer cannot refuse one recipient). Objects are read liberally: a string
breaking its ASN.1 type is kept as received, an object that cannot be
interpreted is confirmed and non-delivered; only unframeable BER aborts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from waypost import events
from waypost.arrival import Admit, Arrival, Source
from waypost.asn1 import BERError
from waypost.message import Envelope, Message
from waypost.net.driver import PausingDriver, SessionServer
from waypost.net.listener import Admission, ConnectionLimits, Listener
from waypost.nexthop import NextHop, Transport
from waypost.osi.rtse import RefuseReason, SessionConnectionIdentifier
from waypost.osi.stack import (
    NEED_DATA,
    Abort,
    Aborted,
    Accept,
    AcceptRecovery,
    Association,
    ConfirmTransfer,
    ConnectionClosed,
    LocalProtocolError,
    Mode,
    OpenRequest,
    RecoverRequest,
    Recovery,
    Refuse,
    Released,
    Role,
    State,
    TransferReceived,
)
from waypost.osi.stack import (
    ReceiveEvent as Event,
)
from waypost.store.base import StoreError
from waypost.x400.p1_bind import (
    MTABind,
    MTABindError,
    decode_bind,
    encode_bind,
    encode_bind_error,
)
from waypost.x400.p1_objects import ReceivedObject, UninterpretableError, receive_object
from waypost.x400.settings import PeerSettings, X400Settings
from waypost.x400.trace import bind_name, describe_event, describe_object

READ_SIZE = 65536
MAX_FIELDS_NAMED = 8  # in one x400-field-kept event
MODES = {"1988": Mode.NORMAL_1988, "x410": Mode.X410}


def _password_ok(expected: str, given: str | bytes | None) -> bool:
    if not expected:
        return True  # the name alone suffices
    if given is None:
        return False
    raw = given if isinstance(given, bytes) else given.encode("utf-8", "replace")
    return hmac.compare_digest(raw, expected.encode("utf-8"))


def our_bind(config: X400Settings, peer: PeerSettings) -> MTABind:
    """The MTABindArgument/Result this MTA presents to `peer`."""
    return MTABind(name=peer.our_name or config.mta_name, password=peer.our_password)


# ----------------------------------------------------------------------------- inbound


@dataclass(frozen=True, slots=True)
class _Kept:
    recovery: Recovery
    peer: PeerSettings
    host: str
    expires: float


class InterruptedTransfers:
    """What inbound transfers interrupted by a lost connection had secured, by session
    connection, until the peer resumes them or `recovery_timeout` passes; bounded."""

    def __init__(self, *, max_count: int = 64, max_octets: int = 64 << 20) -> None:
        self.max_count = max_count
        self.max_octets = max_octets
        self._kept: dict[SessionConnectionIdentifier, _Kept] = {}

    def keep(self, recovery: Recovery, peer: PeerSettings, host: str, timeout: float) -> None:
        now = time.monotonic()
        self._expire(now)
        size = len(recovery.checkpoint.data)
        if size > self.max_octets:
            return
        while self._kept and (
            len(self._kept) >= self.max_count or self._octets() + size > self.max_octets
        ):
            del self._kept[next(iter(self._kept))]  # the oldest goes first
        self._kept[recovery.identifier] = _Kept(recovery, peer, host, now + timeout)

    def take(self, identifier: SessionConnectionIdentifier, host: str) -> _Kept | None:
        """The kept transfer of that session connection, if from `host` and in time."""
        self._expire(time.monotonic())
        kept = self._kept.get(identifier)
        if kept is None or kept.host != host:
            return None
        del self._kept[identifier]
        return kept

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()

    def _octets(self) -> int:
        return sum(len(k.recovery.checkpoint.data) for k in self._kept.values())

    def _expire(self, now: float) -> None:
        for key in [k for k, v in self._kept.items() if v.expires <= now]:
            del self._kept[key]


class X400Server(SessionServer):
    """The P1 listener and its associations."""

    def __init__(
        self,
        config: X400Settings,
        admit: Admit,
        addresses: list[tuple[str, int]],
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.config = config
        self.admit = admit
        self.listener = Listener("x400", addresses, self._session, limits=limits)
        self.sessions: set[X400Session] = set()
        # Transfers interrupted by a lost connection, kept for the peer to resume.
        self.interrupted = InterruptedTransfers()

    def reconfigure(self, config: X400Settings, limits: ConnectionLimits) -> None:
        """A reload: binds from now on are checked against `config`'s peers, and new
        connections counted against `limits`; an association already bound keeps its peer's
        settings until it ends."""
        self.config = config
        self.listener.limits = limits

    def associations(self) -> dict[str, int]:
        """Open inbound associations by the peer bound on them (`unknown` before a bind)."""
        counts: dict[str, int] = {}
        for session in self.sessions:
            name = session.peer.name if session.peer is not None else "unknown"
            counts[name] = counts.get(name, 0) + 1
        return counts

    def peer(self, name: str) -> PeerSettings | None:
        for peer in self.config.peer:
            if peer.name == name:
                return peer
        return None

    def _session(self, admission: Admission, release: Callable[[], None]) -> X400Session:
        session = X400Session(self, admission, release)
        self.sessions.add(session)
        return session


class X400Session(PausingDriver):
    """One inbound P1 association (responder)."""

    component = "x400 association"

    def __init__(self, server: X400Server, admission: Admission, release: Callable[[], None]):
        super().__init__()
        self.server = server
        self.admission = admission
        self.client = "{}:{}".format(*admission.peer)
        self._release = release
        # Both modes read the same bytes until the CN says which one the peer speaks.
        self._candidates = [
            Association(role=Role.RESPONDER, mode=Mode.NORMAL_1988),
            Association(role=Role.RESPONDER, mode=Mode.X410),
        ]
        self.assoc: Association | None = None
        self.peer: PeerSettings | None = None
        # Silence longer than `_lifetime` aborts; so does no MTA bind by `_bind_deadline`.
        self._lifetime = server.config.idle_timeout
        self._bind_deadline = 0.0
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def who(self) -> str:
        return f"{self.peer.name} ({self.client})" if self.peer else self.client

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.admission.refused:
            events.emit(
                events.X400_ASSOCIATION_ABORTED,
                peer=self.client,
                layer="transport",
                reason=self.admission.refused,
            )
            self._close()
            return
        loop = asyncio.get_running_loop()
        self._bind_deadline = loop.time() + self.server.config.bind_timeout
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._feed(data)
        self._touch()

    def eof_received(self) -> bool:
        self._feed(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._keep_interrupted()
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        self.server.sessions.discard(self)
        self._release()

    def shutdown(self) -> None:
        """The server is stopping: abort unless a message is being stored."""
        if self._busy is None and not self._closing:
            if self.assoc is not None and self.assoc.state is State.OPEN:
                with contextlib.suppress(LocalProtocolError):
                    self._write(self.assoc.send(Abort()))
            self._close()

    # -- the protocol machine -----------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self.assoc is not None:
            self.assoc.receive_data(data)
        else:
            for candidate in self._candidates:
                candidate.receive_data(data)
        self._pump()

    def _decide(self) -> Event | None:
        """Until one mode yields an OpenRequest (or a RecoverRequest): its event; or None
        (more bytes needed)."""
        decided: tuple[Association, Event] | None = None
        for candidate in list(self._candidates):
            event = candidate.next_event()
            if event is NEED_DATA:
                continue
            assert not isinstance(event, type(NEED_DATA))
            if isinstance(event, OpenRequest | RecoverRequest) or len(self._candidates) == 1:
                decided = (candidate, event)
                break
            self._candidates.remove(candidate)  # this mode does not fit what came
        # The transport CC is the same in both; write it once.
        out = self._candidates[0].data_to_send()
        for other in self._candidates[1:]:
            other.data_to_send()
        if decided is None:
            self._write(out)
            return None
        self.assoc, event = decided
        self._candidates = []
        self._write(self.assoc.data_to_send())
        return event

    def _pump(self) -> None:
        while not self._closing and self._busy is None:
            if self.assoc is None:
                first = self._decide()
                if first is None:
                    return
                event: Event | object = first
            else:
                event = self.assoc.next_event()
                if event is NEED_DATA:
                    break
            if events.enabled(events.X400_TRACE):
                self._trace("<", describe_event(event))
            if isinstance(event, OpenRequest):
                self._on_open(event)
            elif isinstance(event, RecoverRequest):
                self._on_recover(event)
            elif isinstance(event, TransferReceived):
                self._run(self._on_transfer(event))
            elif isinstance(event, Aborted):
                events.emit(
                    events.X400_ASSOCIATION_ABORTED,
                    peer=self.who,
                    layer=event.layer.value,
                    reason=event.reason,
                )
            elif isinstance(event, Released | ConnectionClosed):
                pass
        self._flush()

    def _trace(self, direction: str, text: str) -> None:
        events.emit(events.X400_TRACE, peer=self.who, direction=direction, apdu=text)

    def _flush(self) -> None:
        assoc = self.assoc
        if assoc is None:
            return
        self._write(assoc.data_to_send())
        if assoc.state in (State.CLOSED, State.ERROR):
            self._close()

    def _fail(self) -> None:
        self._abort()

    def _close(self) -> None:
        if self.transport is not None and not self._closing:
            self._closing = True
            self.transport.close()

    def _abort(self) -> None:
        if self.assoc is not None:
            with contextlib.suppress(LocalProtocolError):
                self._write(self.assoc.send(Abort()))
        self._close()

    # -- timers ---------------------------------------------------------------------------------

    def _touch(self) -> None:
        """Traffic: the idle deadline moves, but never past the bind deadline until bound."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._lifetime
        if self.peer is None:
            self._deadline = min(self._deadline, self._bind_deadline)
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check_timer)

    def _check_timer(self) -> None:
        self._timer = None
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._busy is not None:
            # Storing a message: the peer waits for us, so the wait counts as traffic.
            self._deadline = max(self._deadline, now + self._lifetime)
            self._timer = loop.call_at(now + min(self._lifetime, 1.0), self._check_timer)
            return
        if now < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check_timer)
            return
        seconds = self._lifetime
        if self.peer is None and self._deadline >= self._bind_deadline:
            seconds = self.server.config.bind_timeout
        events.emit(events.X400_TIMEOUT, peer=self.who, seconds=f"{seconds:g}")
        self._abort()

    # -- decisions ------------------------------------------------------------------------------

    def _refuse(self, name: str, reason: str, error: MTABindError) -> None:
        assert self.assoc is not None
        events.emit(events.X400_BIND_REFUSED, client=self.client, mta_name=name, reason=reason)
        self._write(self.assoc.send(Refuse(bind_error=encode_bind_error(error))))
        if events.enabled(events.X400_TRACE):
            self._trace(">", f"bind refused: {error.name.lower().replace('_', '-')}")

    def _on_open(self, event: OpenRequest) -> None:
        assert self.assoc is not None
        try:
            bind = decode_bind(event.bind_argument)
        except BERError as exc:
            self._refuse(
                "?", f"undecodable bind argument: {exc}", MTABindError.AUTHENTICATION_ERROR
            )
            return
        if bind.name is None:
            self._refuse("(unauthenticated)", "no MTA name", MTABindError.AUTHENTICATION_ERROR)
            return
        peer = self.server.peer(bind.name)
        if peer is None:
            self._refuse(bind.name, "unknown MTA", MTABindError.AUTHENTICATION_ERROR)
            return
        if not _password_ok(peer.peer_password, bind.password):
            self._refuse(bind.name, "wrong password", MTABindError.AUTHENTICATION_ERROR)
            return
        self.peer = peer
        self._lifetime = max(self.server.config.idle_timeout, peer.association_lifetime)
        result = encode_bind(our_bind(self.server.config, peer))
        self._write(self.assoc.send(Accept(bind_result=result)))
        if events.enabled(events.X400_TRACE):
            self._trace(">", f"bind accepted ({bind_name(result)})")
        events.emit(
            events.X400_ASSOCIATION_OPENED,
            direction="Inbound",
            peer=peer.name,
            address=self.client,
            mode=self.assoc.mode.value,
        )

    def _on_recover(self, event: RecoverRequest) -> None:
        """A peer resumes a transfer interrupted on an earlier connection: only from the
        address that connection came from, within that peer's recovery_timeout."""
        assert self.assoc is not None
        host = self.admission.peer[0]
        kept = self.server.interrupted.take(event.identifier, host)
        if kept is None:
            events.emit(
                events.X400_RECOVERY_REFUSED,
                peer=self.client,
                reason="no interrupted transfer of that session connection is held",
            )
            self._write(self.assoc.send(Refuse(reason=RefuseReason.CANNOT_RECOVER)))
            return
        self.peer = kept.peer
        self._lifetime = max(self.server.config.idle_timeout, kept.peer.association_lifetime)
        point = kept.recovery.checkpoint
        self._write(self.assoc.send(AcceptRecovery(checkpoint=point)))
        events.emit(
            events.X400_TRANSFER_RECOVERED,
            direction="Inbound",
            peer=self.who,
            serial=point.serial,
            octets=point.offset,
        )

    def _keep_interrupted(self) -> None:
        """The connection is gone: keep what an interrupted transfer had secured."""
        if self.assoc is None or self.peer is None or self.assoc.state is State.ERROR:
            return  # a protocol error is not a communication failure to recover from
        recovery = self.assoc.interrupted()
        if recovery is not None:
            self.server.interrupted.keep(
                recovery, self.peer, self.admission.peer[0], self.peer.recovery_timeout
            )

    async def _on_transfer(self, event: TransferReceived) -> None:
        """Take the object: only BER that cannot be framed aborts the association; a string
        breaking its type is kept, an object that cannot be taken is non-delivered, so
        that one bad object never stops the peer's queue behind it."""
        assert self.assoc is not None
        try:
            received = receive_object(event.apdu, domain=self.server.config.global_domain)
        except BERError as exc:
            events.emit(events.X400_ASSOCIATION_ABORTED, peer=self.who, layer="p1", reason=str(exc))
            self._abort()
            return
        except UninterpretableError as exc:
            stored = await self._non_deliver(exc)
        else:
            if events.enabled(events.X400_TRACE):
                self._trace("<", describe_object(received.envelope, len(received.content)))
            if received.kept:
                self._report_kept(received)
            stored = await self._store(received.envelope, received.content)
        if not stored:
            self._abort()
            return
        self._write(self.assoc.send(ConfirmTransfer()))
        if events.enabled(events.X400_TRACE):
            self._trace(">", "transfer confirmed")

    def _report_kept(self, received: ReceivedObject) -> None:
        """One event per object, naming each field kept although it breaks its type."""
        fields = dict.fromkeys(f"{fault.path} ({fault.reason})" for fault in received.kept)
        envelope = received.envelope
        events.emit(
            events.X400_FIELD_KEPT,
            peer=self.who,
            kind=envelope.object_kind.value,
            mts_id=envelope.mts_id,
            fields="; ".join(list(fields)[:MAX_FIELDS_NAMED]),
        )

    async def _non_deliver(self, exc: UninterpretableError) -> bool:
        """An object that cannot be taken is accepted all the same: non-delivered, with a
        report to its originator when it can be read (else dropped); False when the store
        failed."""
        salvage = exc.salvage
        if salvage is None:
            events.emit(
                events.X400_OBJECT_UNINTERPRETABLE,
                peer=self.who,
                kind=exc.kind,
                mts_id="(unknown)",
                reason=str(exc.error),
                outcome="dropped (no originator and recipient to report to)"
                if exc.kind != "report"
                else "dropped (a report is never reported on)",
            )
            return True
        envelope = salvage.envelope
        events.emit(
            events.X400_OBJECT_UNINTERPRETABLE,
            peer=self.who,
            kind=exc.kind,
            mts_id=envelope.mts_id,
            reason=str(exc.error),
            outcome=f"non-delivered with a report to {envelope.originator}",
        )
        # RFC 3463 5.5.4 (invalid arguments) becomes X.411's invalid-arguments diagnostic.
        hop = NextHop(Transport.ERROR, f"5.5.4 the envelope cannot be interpreted: {exc.error}")
        hops = [hop] * len(envelope.recipients)
        return await self._store(envelope, salvage.content, hops)

    async def _store(
        self, envelope: Envelope, content: bytes, hops: list[NextHop] | None = None
    ) -> bool:
        """Pass the object through the intake (routes, trace, loops, `error:` hops for what
        must be non-delivered) and enqueue it durably; False when the store failed."""
        arrival = Arrival(source=Source.P1, peer=self.who, next_hops=hops)
        try:
            queued = await self.server.admit(Message(envelope=envelope, content=content), arrival)
        except StoreError as exc:
            events.emit(
                events.X400_STORE_FAILED, peer=self.who, mts_id=envelope.mts_id, error=str(exc)
            )
            return False
        if queued is not None:
            events.emit(
                events.X400_MESSAGE_RECEIVED,
                peer=self.who,
                kind=envelope.object_kind.value,
                mts_id=envelope.mts_id,
                recipients=queued.recipients,
                message_id=queued.message_id,
            )
        return True
