"""The asyncio drivers of P1 associations: the X.400 listener and the `x400` deliverer.

The sans-I/O `waypost.osi.stack.Association` speaks the protocol; this module
owns sockets and timers, checks MTA-bind credentials against `[[x400.peer]]`,
hands each inbound message to the MTA database durably *before* it confirms
the transfer, and turns each outbound transfer into Attempts.

The listener serves both modes on one address: until the first session CN is
decoded, a 1988 and an X.410 responder read the same bytes (their transport
CCs are identical, one is written); the one that yields an `OpenRequest` is
kept. Reports and probes are confirmed and logged, not processed yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable

import msgspec

from waypost import events
from waypost.config import X400Config, X400PeerConfig
from waypost.message import Message
from waypost.net.driver import PausingDriver, SessionServer
from waypost.net.listener import Admission, ConnectionLimits, Listener
from waypost.osi.stack import (
    NEED_DATA,
    Abort,
    Aborted,
    Accept,
    Association,
    ConfirmTransfer,
    ConnectionClosed,
    Event,
    LocalProtocolError,
    Mode,
    OpenRequest,
    Refuse,
    Released,
    Role,
    State,
    TransferReceived,
)
from waypost.routing import RoutingTable
from waypost.store.base import NewMessage, StoreError
from waypost.x400.ber import BERError
from waypost.x400.p1_bind import (
    MTABind,
    MTABindError,
    decode_bind,
    encode_bind,
    encode_bind_error,
)
from waypost.x400.p1_envelope import (
    P1Message,
    decode_mts_apdu,
)

Enqueue = Callable[[NewMessage], Awaitable[int]]

DEFAULT_LIFETIME = 300.0  # idle seconds before an association without a known peer closes
CONNECT_TIMEOUT = 30.0
ANSWER_TIMEOUT = 120.0  # waiting for an AC, a transfer confirmation or a release answer
READ_SIZE = 65536
MODES = {"1988": Mode.NORMAL_1988, "x410": Mode.X410}


def _password_ok(expected: str, given: str | bytes | None) -> bool:
    if not expected:
        return True  # the name alone suffices
    if given is None:
        return False
    raw = given if isinstance(given, bytes) else given.encode("utf-8", "replace")
    return hmac.compare_digest(raw, expected.encode("utf-8"))


def our_bind(config: X400Config, peer: X400PeerConfig) -> MTABind:
    """The MTABindArgument/Result this MTA presents to `peer`."""
    return MTABind(name=peer.our_name or config.mta_name, password=peer.our_password)


# ----------------------------------------------------------------------------- inbound


class X400Server(SessionServer):
    """The P1 listener and its associations."""

    def __init__(
        self,
        config: X400Config,
        routing: RoutingTable,
        enqueue: Enqueue,
        addresses: list[tuple[str, int]],
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.config = config
        self.routing = routing
        self.enqueue = enqueue
        self.listener = Listener("x400", addresses, self._session, limits=limits)
        self.sessions: set[X400Session] = set()

    def peer(self, name: str) -> X400PeerConfig | None:
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
        self.peer: X400PeerConfig | None = None
        self._lifetime = DEFAULT_LIFETIME
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
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._feed(data)
        self._touch()

    def eof_received(self) -> bool:
        self._feed(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
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
        """Until one mode yields an OpenRequest: its event; or None (more bytes needed)."""
        decided: tuple[Association, Event] | None = None
        for candidate in list(self._candidates):
            event = candidate.next_event()
            if event is NEED_DATA:
                continue
            assert not isinstance(event, type(NEED_DATA))
            if isinstance(event, OpenRequest) or len(self._candidates) == 1:
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
            if isinstance(event, OpenRequest):
                self._on_open(event)
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
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._lifetime
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check_timer)

    def _check_timer(self) -> None:
        self._timer = None
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        if self._busy is not None or loop.time() < self._deadline:
            self._timer = loop.call_at(max(self._deadline, loop.time() + 1), self._check_timer)
            return
        events.emit(events.X400_TIMEOUT, peer=self.who, seconds=f"{self._lifetime:g}")
        self._abort()

    # -- decisions ------------------------------------------------------------------------------

    def _refuse(self, name: str, reason: str, error: MTABindError) -> None:
        assert self.assoc is not None
        events.emit(events.X400_BIND_REFUSED, client=self.client, mta_name=name, reason=reason)
        self._write(self.assoc.send(Refuse(bind_error=encode_bind_error(error))))

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
        self._lifetime = peer.association_lifetime or DEFAULT_LIFETIME
        result = encode_bind(our_bind(self.server.config, peer))
        self._write(self.assoc.send(Accept(bind_result=result)))
        events.emit(
            events.X400_ASSOCIATION_OPENED,
            direction="Inbound",
            peer=peer.name,
            address=self.client,
            mode=self.assoc.mode.value,
        )

    async def _on_transfer(self, event: TransferReceived) -> None:
        assert self.assoc is not None
        try:
            apdu = decode_mts_apdu(event.apdu)
        except BERError as exc:
            events.emit(events.X400_ASSOCIATION_ABORTED, peer=self.who, layer="p1", reason=str(exc))
            self._abort()
            return
        if isinstance(apdu, P1Message):
            if not await self._store(apdu):
                self._abort()
                return
        else:
            events.emit(events.X400_NOT_HANDLED, peer=self.who, kind=apdu.kind)
        self._write(self.assoc.send(ConfirmTransfer()))

    async def _store(self, apdu: P1Message) -> bool:
        """Enqueue the routed recipients durably; False when the store failed."""
        envelope = apdu.envelope.envelope
        recipients = []
        hops: list[str] = []
        for recipient in envelope.recipients:
            if not recipient.responsibility:
                continue  # another MTA answers for it
            decision = self.server.routing.route(recipient.address)
            recipients.append(recipient)
            if decision.next_hop is None:
                reason = decision.explanation[-1] if decision.explanation else "no route"
                events.emit(
                    events.X400_NO_ROUTE,
                    peer=self.who,
                    mts_id=envelope.mts_id,
                    recipient=recipient.address,
                    reason=reason,
                )
                # Kept, not dropped: the error transport fails it with a report owed.
                hops.append(f"error:{reason}")
            else:
                hops.append(str(decision.next_hop))
        if not recipients:
            return True
        envelope = msgspec.structs.replace(envelope, recipients=recipients, arrival=time.time())
        new = NewMessage(message=Message(envelope=envelope, content=apdu.content), next_hops=hops)
        try:
            message_id = await self.server.enqueue(new)
        except StoreError as exc:
            events.emit(
                events.X400_STORE_FAILED, peer=self.who, mts_id=envelope.mts_id, error=str(exc)
            )
            return False
        events.emit(
            events.X400_MESSAGE_RECEIVED,
            peer=self.who,
            mts_id=envelope.mts_id,
            recipients=len(recipients),
            message_id=message_id,
        )
        return True
