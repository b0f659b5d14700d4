"""The `x400` delivery agent: outbound P1 associations to adjacent MTAs.

One association per peer is opened on demand, bound with the peer's
credentials, reused for several transfers, and released when its lifetime
ends; each transfer becomes Attempts (confirmed = delivered, responsibility
passed on; anything else = deferred).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import msgspec

from waypost import events
from waypost.config import X400Config, X400PeerConfig, selector_bytes
from waypost.osi.stack import (
    NEED_DATA,
    Abort,
    Aborted,
    Accepted,
    Association,
    AssociationSettings,
    ConnectionClosed,
    Event,
    LocalProtocolError,
    Open,
    Refused,
    Release,
    Released,
    Role,
    Selectors,
    State,
    Transfer,
    TransferConfirmed,
)
from waypost.queue.deliverer import Attempt
from waypost.queue.deliverer import Transfer as QueueTransfer
from waypost.routing import parse_next_hop
from waypost.store.base import Claim, Result
from waypost.x400.association import MODES, READ_SIZE, our_bind
from waypost.x400.ber import BERError
from waypost.x400.p1_bind import decode_bind, decode_bind_error, encode_bind
from waypost.x400.p1_objects import encode_stored

CONNECT_TIMEOUT = 30.0
ANSWER_TIMEOUT = 120.0  # waiting for an AC, a transfer confirmation or a release answer


class HopError(Exception):
    """The transfer did not happen (or was not confirmed): defer and try again."""


@dataclass
class _Outbound:
    """One open initiator association to an adjacent MTA."""

    peer: X400PeerConfig
    assoc: Association
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    last_used: float

    @property
    def alive(self) -> bool:
        fresh = time.monotonic() - self.last_used < self.peer.association_lifetime
        return fresh and self.assoc.state is State.OPEN and not self.reader.at_eof()

    async def next_event(self, timeout: float) -> Event:
        while True:
            event = self.assoc.next_event()
            await self.flush()
            if event is not NEED_DATA:
                assert not isinstance(event, type(NEED_DATA))
                return event
            try:
                data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
            except TimeoutError:
                raise HopError(f"no answer within {timeout:g} s") from None
            except OSError as exc:
                raise HopError(f"connection failed: {exc}") from None
            self.assoc.receive_data(data)

    async def send(self, event: Event) -> None:
        self.writer.write(self.assoc.send(event))
        await self.flush()

    async def flush(self) -> None:
        out = self.assoc.data_to_send()
        if out:
            self.writer.write(out)
            try:
                await self.writer.drain()
            except OSError as exc:
                raise HopError(f"connection failed: {exc}") from None

    async def release(self) -> None:
        with contextlib.suppress(HopError, LocalProtocolError, OSError):
            if self.assoc.state is State.OPEN:
                await self.send(Release())
                while True:
                    event = await self.next_event(ANSWER_TIMEOUT)
                    if isinstance(event, Released | Aborted | ConnectionClosed):
                        break
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class X400Deliverer:
    """The delivery agent for next hops `x400:NAME`: one reusable association per peer."""

    def __init__(self, config: X400Config) -> None:
        self.config = config
        self._open: dict[str, _Outbound] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Future[None]] = set()

    def _peer(self, name: str) -> X400PeerConfig | None:
        for peer in self.config.peer:
            if peer.name == name:
                return peer
        return None

    async def deliver(self, transfer: QueueTransfer) -> list[Attempt]:
        claims = list(transfer.recipients)
        try:
            hop = parse_next_hop(transfer.next_hop)
        except ValueError as exc:
            return _all(claims, Result.DEFERRED, f"bad next hop {transfer.next_hop}: {exc}")
        peer = self._peer(hop.destination) if hop.transport == "x400" else None
        if peer is None:
            return _all(claims, Result.DEFERRED, f"no [[x400.peer]] named {hop.destination}")
        lock = self._locks.setdefault(peer.name, asyncio.Lock())
        async with lock:
            try:
                conn = await self._association(peer)
                await self._transfer(conn, transfer)
            except HopError as exc:
                self._drop(peer.name)
                detail = str(exc)
                if not detail.startswith("bind refused"):
                    events.emit(events.X400_TRANSFER_FAILED, peer=peer.name, error=detail)
                return _all(claims, Result.DEFERRED, detail)
            self._park(conn)
        return [
            Attempt(
                recipient_id=c.recipient_id,
                result=Result.DELIVERED,
                detail=f"transferred to {peer.name}",
                remote_mta=peer.name,
                passed_on=True,
            )
            for c in claims
        ]

    async def _association(self, peer: X400PeerConfig) -> _Outbound:
        conn = self._open.pop(peer.name, None)
        timer = self._timers.pop(peer.name, None)
        if timer is not None:
            timer.cancel()
        if conn is not None:
            if conn.alive:
                return conn
            self._background(conn.release())
        return await self._connect(peer)

    async def _connect(self, peer: X400PeerConfig) -> _Outbound:
        host, _, port = peer.address.rpartition(":")
        host = host.strip("[]")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port), limit=1 << 20), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise HopError(f"connect to {peer.address} failed: {exc or 'timeout'}") from None
        ssel = selector_bytes(peer.s_selector) or None
        psel = selector_bytes(peer.p_selector) or None
        settings = AssociationSettings(
            checkpoint_size=peer.checkpoint_size,
            window_size=peer.window_size,
            two_way_alternate=peer.two_way_alternate,
            selectors=Selectors(
                called_tsel=selector_bytes(peer.t_selector), called_ssel=ssel, called_psel=psel
            ),
        )
        mode = MODES[peer.mode]
        conn = _Outbound(
            peer=peer,
            assoc=Association(role=Role.INITIATOR, mode=mode, settings=settings),
            reader=reader,
            writer=writer,
            last_used=time.monotonic(),
        )
        try:
            await self._bind(conn)
        except BaseException:
            await conn.close()
            raise
        events.emit(
            events.X400_ASSOCIATION_OPENED,
            direction="Outbound",
            peer=peer.name,
            address=peer.address,
            mode=peer.mode,
        )
        return conn

    async def _bind(self, conn: _Outbound) -> None:
        peer = conn.peer
        await conn.send(Open(bind_argument=encode_bind(our_bind(self.config, peer))))
        event = await conn.next_event(ANSWER_TIMEOUT)
        if isinstance(event, Refused):
            reason = event.reason.name if event.reason is not None else event.layer.value
            if event.bind_error is not None:
                with contextlib.suppress(BERError):
                    reason = decode_bind_error(event.bind_error).name.lower().replace("_", "-")
            events.emit(events.X400_PEER_REFUSED, peer=peer.name, reason=reason)
            raise HopError(f"bind refused by {peer.name}: {reason}")
        if not isinstance(event, Accepted):
            raise HopError(f"open failed: {_describe(event)}")
        try:
            result = decode_bind(event.bind_result)
        except BERError as exc:
            await self._abort(conn)
            raise HopError(f"undecodable bind result: {exc}") from None
        if result.name != peer.name:
            await self._abort(conn)
            raise HopError(f"the responder binds as {result.name!r}, not {peer.name!r}")

    async def _abort(self, conn: _Outbound) -> None:
        with contextlib.suppress(HopError, LocalProtocolError, OSError):
            await conn.send(Abort())

    async def _transfer(self, conn: _Outbound, transfer: QueueTransfer) -> None:
        wanted = {c.rcpt_index for c in transfer.recipients}
        recipients = [r for i, r in enumerate(transfer.envelope.recipients) if i in wanted]
        envelope = msgspec.structs.replace(transfer.envelope, recipients=recipients)
        apdu = encode_stored(envelope, transfer.content)
        try:
            await conn.send(Transfer(apdu=apdu))
        except LocalProtocolError as exc:
            raise HopError(f"cannot transfer: {exc}") from None
        while True:
            event = await conn.next_event(ANSWER_TIMEOUT)
            if isinstance(event, TransferConfirmed):
                conn.last_used = time.monotonic()
                return
            if isinstance(event, Aborted | Released | ConnectionClosed | Refused):
                raise HopError(f"transfer not confirmed: {_describe(event)}")

    def _park(self, conn: _Outbound) -> None:
        name = conn.peer.name
        self._open[name] = conn
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(
            conn.peer.association_lifetime, self._expire, name, conn
        )

    def _expire(self, name: str, conn: _Outbound) -> None:
        self._timers.pop(name, None)
        if self._open.get(name) is conn:
            del self._open[name]
            self._background(conn.release())

    def _drop(self, name: str) -> None:
        conn = self._open.pop(name, None)
        if conn is not None:
            self._background(conn.close())

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        conns = list(self._open.values())
        self._open.clear()
        await asyncio.gather(*(c.release() for c in conns), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)


def _describe(event: Event) -> str:
    if isinstance(event, Aborted):
        return f"aborted in the {event.layer.value} layer: {event.reason}"
    return type(event).__name__


def _all(claims: list[Claim], result: Result, detail: str) -> list[Attempt]:
    return [Attempt(recipient_id=c.recipient_id, result=result, detail=detail) for c in claims]
