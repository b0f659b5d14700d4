"""The `x400` delivery agent: outbound P1 associations to adjacent MTAs, governed by the
connector parameters of each `[[x400.peer]]` as on an Exchange 5.5 X.400 connector.

Associations. Each peer has a pool. A transfer takes an idle open association
if there is one; otherwise it opens one when none is open, or another when
at least one is open, fewer than `max_associations` are open or opening, and
the transfers waiting for the peer (itself included) number at least
`threshold` times that; otherwise it waits for one to be free. The transfers
waiting are the queue manager's concurrent deliveries to this next hop, so
`[queue] destination_concurrency` (and `delivery_concurrency`) less the share
kept for urgent messages must be at least `max_associations` for all of them to
be used. An urgent transfer goes before those waiting, and opens another
association (up to `max_associations`) whatever the threshold.
`permanent_associations` of them are opened at the start, never released for
being idle, and opened again when lost (after `open_interval` when an open
fails): urgent messages never wait for an association to open. One message goes over
an association at a time, many in turn; an idle association is released
after `association_lifetime`. `connect_timeout` bounds the TCP connection,
`answer_timeout` each wait for the bind answer or a transfer confirmation,
`disconnect_timeout` the orderly release. An idle association is read while it
waits: an abort, a release or a FIN from the peer (an adjacent MTA that restarted)
drops it at once. A transfer that fails on an association that had been idle,
before the peer secured anything, is the peer having forgotten the association,
not the message's fault: it is made again at once over another association,
with nothing counted or deferred.

Failed opens (no connection, bind refused, no answer). An open that fails
when no other association is open counts one failed open for the peer and
defers its transfer, and those waiting, for `open_interval` seconds (an
`Attempt.retry_after` the queue manager honours); until then transfers for
the peer are deferred to that same time without another try. Those are hop
failures (`Attempt.hop_failure`): the queue manager holds the peer's other
messages back until then too, and logs the peer down once; only the transfer
whose open failed is charged an attempt, and the others show since when the
peer is unreachable, its last error and the next open. A successful open
resets the count; once it exceeds `max_open_retries`, the transfers are
failed instead (`5.4.1 …`: a non-delivery report is owed), until an open
succeeds again. A failed open of an additional association counts nothing:
its transfer waits for the open ones, and the pool stops growing for an
`open_interval`. `flush()` (an operator's "try now") ends every open interval.

Failed transfers (no confirmation, abort, lost connection) on an open
association. The association is dropped and the recipients deferred for
`transfer_interval`, or for `open_interval` once the recipient has been
tried `max_transfer_retries` times before (`Claim.attempts`, which counts
every earlier attempt, whatever became of it). A confirmed transfer is
delivered: responsibility passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec

from waypost import events
from waypost.asn1 import BERError
from waypost.handoff import Attempt, Claim, Handoff, Result, all_attempts
from waypost.message import ContentType, Envelope, ObjectKind, Priority
from waypost.nexthop import Transport
from waypost.osi.rtse import SessionConnectionIdentifier
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
    Recovery,
    Refused,
    Release,
    Released,
    Resume,
    Role,
    Selectors,
    SendEvent,
    State,
    Transfer,
    TransferConfirmed,
)
from waypost.x400.association import MODES, READ_SIZE, our_bind
from waypost.x400.ipm_downgrade import DowngradeError, downgrade_to_p2
from waypost.x400.p1_bind import decode_bind, decode_bind_error, encode_bind
from waypost.x400.p1_objects import encode_stored
from waypost.x400.settings import PeerSettings, X400Settings
from waypost.x400.trace import describe_event, describe_object

# A recipient deferred for the open interval comes back on the queue's clock, not
# this module's: a little slack keeps it from arriving just before its turn.
OPEN_SLACK = 0.5


class X400PeerError(Exception):
    """The open or the transfer did not happen (or was not confirmed)."""


class BindRefusedError(X400PeerError):
    """The peer refused our MTA-bind (already reported as X400_PEER_REFUSED)."""


class RecoveryRefusedError(X400PeerError):
    """The peer would not resume an interrupted transfer: it starts again."""


class OpenFailedError(Exception):
    """No association to the peer now: `final` when its open retries are exhausted;
    `attempted` when this transfer's own open failed (not one made or held back for it)."""

    def __init__(
        self, detail: str, retry_after: float, *, final: bool, attempted: bool = True
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.final = final
        self.attempted = attempted

    def attempts(self, claims: list[Claim]) -> list[Attempt]:
        """The transfer's recipients: the peer's failure, not the message's."""
        return all_attempts(
            claims,
            Result.FAILED if self.final else Result.DEFERRED,
            self.detail,
            retry_after=self.retry_after,
            hop_failure=True,
            attempted=self.attempted,
        )


@dataclass(eq=False)
class _Outbound:
    """One open initiator association to an adjacent MTA."""

    peer: PeerSettings
    assoc: Association
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    last_used: float
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    # While idle: reads what the peer says unasked (an abort, a release, its FIN).
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    transfers: int = 0  # confirmed over this association
    # One of the peer's permanent associations: never released for being idle.
    kept: bool = False

    @property
    def reused(self) -> bool:
        """Whether this association was idle before: the peer may have forgotten it."""
        return self.transfers > 0

    @property
    def alive(self) -> bool:
        fresh = self.kept or time.monotonic() - self.last_used < self.peer.association_lifetime
        return fresh and self.assoc.state is State.OPEN and not self.reader.at_eof()

    async def next_event(self, timeout: float) -> Event:
        """The peer's next event, within `timeout` seconds (one timer, not one per read)."""
        try:
            async with asyncio.timeout(timeout):
                return await self._next_event()
        except TimeoutError:
            raise X400PeerError(f"no answer within {timeout:g} s") from None

    async def _next_event(self) -> Event:
        while True:
            event = self.assoc.next_event()
            await self.flush()
            if event is not NEED_DATA:
                assert not isinstance(event, type(NEED_DATA))
                if events.enabled(events.X400_TRACE):
                    self.trace("<", describe_event(event))
                return event
            try:
                data = await self.reader.read(READ_SIZE)
            except OSError as exc:
                raise X400PeerError(f"connection failed: {exc}") from None
            self.assoc.receive_data(data)

    async def send(self, event: SendEvent) -> None:
        self.writer.write(self.assoc.send(event))
        if events.enabled(events.X400_TRACE):
            self.trace(">", describe_event(event))
        await self._drain()

    def trace(self, direction: str, text: str) -> None:
        events.emit(events.X400_TRACE, peer=self.peer.name, direction=direction, apdu=text)

    async def flush(self) -> None:
        out = self.assoc.data_to_send()
        if out:
            self.writer.write(out)
            await self._drain()

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except OSError as exc:
            raise X400PeerError(f"connection failed: {exc}") from None

    async def unwatch(self) -> None:
        """Stop reading while idle (before anything else reads the stream)."""
        watcher, self.watcher = self.watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            # wait() neither raises the watcher's CancelledError nor swallows our own.
            await asyncio.wait([watcher])

    async def release(self) -> None:
        """Orderly release, bounded by the peer's `disconnect_timeout`; then close."""
        await self.unwatch()
        with contextlib.suppress(X400PeerError, LocalProtocolError, OSError, TimeoutError):
            if self.assoc.state is State.OPEN and not self.reader.at_eof():
                async with asyncio.timeout(self.peer.disconnect_timeout):
                    await self.send(Release())
                    while True:
                        event = await self.next_event(self.peer.disconnect_timeout)
                        if isinstance(event, Released | Aborted | ConnectionClosed):
                            break
        await self.close()

    async def close(self) -> None:
        await self.unwatch()
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def idle_ended(self) -> str:
        """Wait, while idle, for the peer to speak unasked; what ended the association. A
        peer that restarted sent an abort (or just a FIN) that nobody read: a transfer
        over that association would fail."""
        while True:
            try:
                data = await self.reader.read(READ_SIZE)
            except OSError as exc:
                return f"connection failed: {exc}"
            self.assoc.receive_data(data)
            reason = "the peer closed the connection"
            with contextlib.suppress(LocalProtocolError):
                while (event := self.assoc.next_event()) is not NEED_DATA:
                    if isinstance(event, Aborted):
                        reason = _describe(event)
                    elif isinstance(event, Released):
                        reason = "released by the peer"
                self.writer.write(self.assoc.data_to_send())  # e.g. the answer to a release
            if not data or self.assoc.state is not State.OPEN:
                return reason
            # Anything else (a two-way-alternate peer asking for the turn) leaves it open.


Opener = Callable[[PeerSettings], Awaitable[_Outbound]]


class _Pool:
    """The associations to one peer, and its count of failed opens."""

    def __init__(
        self, peer: PeerSettings, opener: Opener, background: Callable[[Awaitable[None]], None]
    ) -> None:
        self.peer = peer
        self._opener = opener
        self._background = background
        self._idle: deque[_Outbound] = deque()
        # Transfers waiting for an association: urgent ones are served first.
        self._urgent_waiters: deque[asyncio.Future[_Outbound | None]] = deque()
        self._waiters: deque[asyncio.Future[_Outbound | None]] = deque()
        self.kept = 0  # permanent associations open (idle or in use)
        self._kept_changed = asyncio.Event()
        self.opened = 0  # open or being opened, idle or in use
        self.opening = 0  # being opened
        self.waiting = 0  # transfers in acquire()
        self.failed_opens = 0
        self._last_error = ""
        self._down_since = 0.0  # wall clock: the first of the failed opens in a row
        self._next_open = 0.0  # monotonic: no open before it, after a failed one
        self._grow_after = 0.0  # monotonic: no additional open before it
        self.retired = False  # the peer's settings were reloaded: this pool opens no more

    async def acquire(self, *, urgent: bool = False) -> _Outbound:
        """An association for one transfer; raises OpenFailedError when there is none to have.
        An urgent transfer goes before the others waiting, and may open another association
        (up to max_associations) however few are waiting."""
        self.waiting += 1
        try:
            while True:
                conn = self._take_idle()
                if conn is not None:
                    try:
                        await conn.unwatch()
                    except BaseException:
                        self.discard(conn)
                        raise
                    if conn.alive:
                        return conn
                    self.discard(conn)  # it ended while the watcher stopped
                    continue
                if self._may_open(urgent=urgent):
                    conn = await self._open()
                    if conn is not None:
                        return conn
                    continue  # only an additional open failed: look again
                # Something is open or opening, so a release or a failure will wake us.
                conn = await self._wait(urgent=urgent)
                if conn is not None:
                    return conn
        finally:
            self.waiting -= 1

    def release(self, conn: _Outbound) -> None:
        """A transfer is done with `conn`: hand it to a waiter, or park it idle."""
        if not conn.alive:
            self.discard(conn)
            return
        if self.retired:
            self.opened -= 1
            self._lost(conn)
            self._background(conn.release())
            self._wake(everyone=True)
            return
        if not conn.kept and self.kept < self.peer.permanent_associations:
            conn.kept = True  # adopted: one permanent association fewer to open
            self.kept += 1
        for waiters in (self._urgent_waiters, self._waiters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
        conn.last_used = time.monotonic()
        loop = asyncio.get_running_loop()
        if not conn.kept:
            conn.timer = loop.call_later(self.peer.association_lifetime, self._expire, conn)
        conn.watcher = loop.create_task(self._watch(conn))
        self._idle.append(conn)

    async def _watch(self, conn: _Outbound) -> None:
        """An idle association the peer ends (a restart aborts it) leaves the pool at once,
        so that the next transfer opens a new one instead of failing on it."""
        reason = await conn.idle_ended()
        if conn not in self._idle:
            return
        conn.watcher = None  # this task is ending: nobody need wait for it
        self._idle.remove(conn)
        self._cancel_timer(conn)
        self.opened -= 1
        self._lost(conn)
        events.emit(events.X400_IDLE_ASSOCIATION_LOST, peer=self.peer.name, reason=reason)
        self._background(conn.close())

    def discard(self, conn: _Outbound) -> None:
        """`conn` is broken (or its state unknown): close it; a waiter may open another."""
        self.opened -= 1
        self._lost(conn)
        self._background(conn.close())
        self._wake(everyone=False)

    def _lost(self, conn: _Outbound) -> None:
        """`conn` leaves the pool: a permanent one is opened again (keep_open)."""
        if conn.kept:
            conn.kept = False
            self.kept -= 1
            self._kept_changed.set()

    async def close(self) -> None:
        conns = list(self._idle)
        self._idle.clear()
        for conn in conns:
            self._cancel_timer(conn)
            self._lost(conn)
        self.opened -= len(conns)
        await asyncio.gather(*(c.release() for c in conns), return_exceptions=True)

    def _take_idle(self) -> _Outbound | None:
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the others may expire
            self._cancel_timer(conn)
            if conn.alive:
                return conn
            self.opened -= 1
            self._lost(conn)
            self._background(conn.release())
        return None

    async def keep_open(self) -> None:
        """Keep `permanent_associations` open until the pool is retired: each one lost is
        opened again at once, and after a failed open, again after `open_interval` (so
        that an urgent message never waits for an association to open)."""
        while not self.retired:
            wanted = self.peer.permanent_associations
            if self.kept >= wanted or self.opened >= self.peer.max_associations:
                self._kept_changed.clear()
                await self._kept_changed.wait()
                continue
            now = time.monotonic()
            wait = max(self._next_open, self._grow_after if self.opened else 0.0) - now
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                conn = await self._open()
            except OpenFailedError as exc:
                self._permanent_failed(exc.detail, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
                continue
            if conn is None:  # an additional open failed; _open_failed said why
                continue
            if self.retired:
                self.opened -= 1
                await conn.release()
                return
            conn.kept = True
            self.kept += 1
            self.release(conn)

    def _permanent_failed(self, error: str, retry_after: float) -> None:
        events.emit(
            events.X400_PERMANENT_OPEN_FAILED,
            peer=self.peer.name,
            error=error,
            retry_at=_iso(time.time() + retry_after),
        )

    def _may_open(self, *, urgent: bool = False) -> bool:
        """Open another association now? Raises OpenFailedError inside the open interval."""
        now = time.monotonic()
        if self.opened == 0:
            if now + min(OPEN_SLACK, self.peer.open_interval / 10) < self._next_open:
                raise self._failure(now, attempted=False)
            return True
        # No second association before the first is open: a dead peer costs one open.
        # An urgent transfer does not wait for others to pile up (`threshold`).
        return (
            self.opened > self.opening
            and self.opened < self.peer.max_associations
            and (urgent or self.waiting >= self.peer.threshold * self.opened)
            and now >= self._grow_after
        )

    async def _open(self) -> _Outbound | None:
        self.opened += 1
        self.opening += 1
        try:
            conn = await self._opener(self.peer)
        except X400PeerError as exc:
            self.opened -= 1
            self._open_failed(str(exc))
            return None
        except BaseException:
            self.opened -= 1
            self._wake(everyone=True)
            raise
        finally:
            self.opening -= 1
        self.failed_opens = 0
        self._next_open = 0.0
        self._wake(everyone=True)  # the waiters may open more now
        return conn

    def flush(self) -> None:
        """Open again at the next transfer, however recently an open failed."""
        self._next_open = 0.0
        self._grow_after = 0.0

    def _open_failed(self, error: str) -> None:
        """Returns when others are open (the pool stops growing for a while); raises
        OpenFailedError when none is: a failed open of the peer, counted."""
        now = time.monotonic()
        if self.opened > 0:
            self._grow_after = now + self.peer.open_interval
            # Not the peer's failure (others are open): the queue manager hears nothing of it.
            events.emit(events.X400_TRANSFER_FAILED, peer=self.peer.name, error=error)
            return
        if self.failed_opens == 0:
            self._down_since = time.time()
        self.failed_opens += 1
        self._last_error = error
        self._next_open = now + self.peer.open_interval
        self._grow_after = 0.0
        self._wake(everyone=True)
        raise self._failure(now, attempted=True)

    def _failure(self, now: float, *, attempted: bool) -> OpenFailedError:
        """The failure a transfer meets: its own open's error (`attempted`), or, held back
        in the open interval, since when the peer is unreachable and when it is tried next."""
        retry_after = max(0.0, self._next_open - now)
        if self.failed_opens > self.peer.max_open_retries:
            detail = (
                f"5.4.1 could not open an association to {self.peer.name} after "
                f"{self.failed_opens} attempts: {self._last_error}"
            )
            return OpenFailedError(detail, retry_after, final=True, attempted=attempted)
        detail = self._last_error
        if not attempted:
            detail = (
                f"{self.peer.name} unreachable since {_iso(self._down_since)}: {detail}; "
                f"next open at {_iso(time.time() + retry_after)}"
            )
        return OpenFailedError(detail, retry_after, final=False, attempted=attempted)

    async def _wait(self, *, urgent: bool = False) -> _Outbound | None:
        waiter: asyncio.Future[_Outbound | None] = asyncio.get_running_loop().create_future()
        waiters = self._urgent_waiters if urgent else self._waiters
        waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                conn = waiter.result()
                if conn is not None:
                    self.release(conn)
            else:
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
            raise

    def _wake(self, *, everyone: bool) -> None:
        """Let waiters look again, the urgent first (None: no association handed over)."""
        for waiters in (self._urgent_waiters, self._waiters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    if not everyone:
                        return

    def _expire(self, conn: _Outbound) -> None:
        conn.timer = None
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
            self.opened -= 1
            self._lost(conn)
            self._background(conn.release())

    @staticmethod
    def _cancel_timer(conn: _Outbound) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None


class X400Deliverer:
    """The delivery agent for next hops `x400:NAME`: a pool of associations per peer."""

    def __init__(self, config: X400Settings) -> None:
        self.config = config
        self._pools: dict[str, _Pool] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self._interrupted = _Interrupted()
        self._connections = itertools.count(1)
        # Told of each message transferred (the ATS record's hook), with its channel.
        self.on_transferred: Callable[[Handoff, str], Awaitable[None]] | None = None
        # Each pool's keeper of its permanent associations, once started.
        self._keepers: dict[str, asyncio.Task[None]] | None = None

    def keep_permanent(self) -> None:
        """Open the peers' permanent associations and keep them open (at the MTA's start,
        and for the peers a reload configures)."""
        if self._keepers is None:
            self._keepers = {}
        for peer in self.config.peer:
            if peer.permanent_associations and peer.name not in self._keepers:
                pool = self._pool(peer.name)
                assert pool is not None
                self._keepers[peer.name] = asyncio.create_task(pool.keep_open())

    def _stop_keeper(self, name: str) -> None:
        task = self._keepers.pop(name, None) if self._keepers is not None else None
        if task is not None:
            task.cancel()
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def flush(self) -> None:
        """An operator asked to try now: every peer's open interval ends (the queue
        manager's flush calls this)."""
        for pool in self._pools.values():
            pool.flush()

    def reconfigure(self, config: X400Settings) -> None:
        """A reload: peers are found in `config` from now on. The pool of a peer whose
        settings changed (or that is gone) is retired: its idle associations are released,
        those in use are released when their transfer is done, and the next transfer opens
        a new pool with the new settings."""
        self.config = config
        peers = {peer.name: peer for peer in config.peer}
        for name, pool in list(self._pools.items()):
            if peers.get(name) != pool.peer:
                del self._pools[name]
                pool.retired = True
                self._stop_keeper(name)
                self._background(pool.close())
        if self._keepers is not None:
            self.keep_permanent()

    def associations(self) -> list[tuple[str, int]]:
        """(peer, associations open or being opened) for each peer with a pool."""
        return [(name, pool.opened) for name, pool in self._pools.items()]

    def _pool(self, name: str) -> _Pool | None:
        pool = self._pools.get(name)
        if pool is None:
            for peer in self.config.peer:
                if peer.name == name:
                    pool = self._pools[name] = _Pool(peer, self._open, self._background)
        return pool

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        claims = list(handoff.recipients)
        hop = handoff.next_hop
        pool = self._pool(hop.destination) if hop.transport is Transport.X400 else None
        if pool is None:
            return all_attempts(
                claims, Result.DEFERRED, f"no [[x400.peer]] named {hop.destination}"
            )
        peer = pool.peer
        try:
            envelope, content = _for_peer(peer, handoff)
        except DowngradeError as exc:
            events.emit(
                events.X400_CONTENT_NOT_DOWNGRADED,
                message_id=handoff.message_id,
                peer=peer.name,
                reason=str(exc),
            )
            # X.411 reason unable-to-transfer, diagnostic content-type-not-supported
            # (report_maker's table for 5.6.1): never P22 to a 1984 MTA.
            detail = f"5.6.1 {peer.name} (X.410 mode) takes no P22 and it has no P2 form: {exc}"
            return all_attempts(claims, Result.FAILED, detail)
        try:
            apdu = _apdu(handoff, envelope, content, self.config.global_domain)
        except ValueError as exc:  # AddressError too: a value P1 cannot carry
            return all_attempts(claims, Result.FAILED, f"5.6.0 cannot encode the P1 object: {exc}")
        key = _TransferKey(peer.name, handoff.message_id, tuple(c.recipient_id for c in claims))
        recovered = await self._try_recovery(peer, key, apdu, claims)
        if recovered is not None:
            return recovered if recovered else _delivered(peer, claims)
        free_retries = peer.max_associations  # each costs an idle association, at most all
        urgent = handoff.envelope.priority is Priority.URGENT
        while True:
            try:
                conn = await pool.acquire(urgent=urgent)
            except OpenFailedError as exc:
                return exc.attempts(claims)
            if events.enabled(events.X400_TRACE):
                conn.trace(">", describe_object(envelope, len(content)))
            try:
                await _send_message(conn, apdu, peer.answer_timeout)
            except X400PeerError as exc:
                secured = conn.assoc.interrupted()
                pool.discard(conn)
                if conn.reused and secured is None and free_retries > 0:
                    free_retries -= 1
                    # An association that had been idle failed before the peer secured
                    # anything: the peer no longer knows it (it restarted, or its host
                    # did). Not the message's fault: at once, over another association.
                    events.emit(events.X400_IDLE_ASSOCIATION_LOST, peer=peer.name, reason=str(exc))
                    continue
                self._interrupted.keep(key, secured, apdu)
                events.emit(events.X400_TRANSFER_FAILED, peer=peer.name, error=str(exc))
                return [_transfer_failed(peer, c, str(exc)) for c in claims]
            except BaseException:
                pool.discard(conn)
                raise
            pool.release(conn)
            if self.on_transferred is not None:
                await self.on_transferred(handoff, f"x400:{peer.name}")
            return _delivered(peer, claims)

    async def _try_recovery(
        self, peer: PeerSettings, key: _TransferKey, apdu: bytes, claims: list[Claim]
    ) -> list[Attempt] | None:
        """Resume this transfer if an earlier attempt was interrupted after a checkpoint
        (within `recovery_timeout`): [] when it is now confirmed, the Attempts when it
        failed again, None when there is nothing to resume or the peer refused."""
        recovery = self._interrupted.take(key, apdu, peer.recovery_timeout)
        if recovery is None:
            return None
        try:
            conn = await self._connect(peer, recover=recovery)
        except RecoveryRefusedError as exc:
            events.emit(events.X400_RECOVERY_REFUSED, peer=peer.name, reason=str(exc))
            return None
        except X400PeerError as exc:
            self._interrupted.keep(key, recovery, apdu)  # try again next time
            events.emit(events.X400_TRANSFER_FAILED, peer=peer.name, error=str(exc))
            return None
        point = recovery.checkpoint
        events.emit(
            events.X400_TRANSFER_RECOVERED,
            direction="Outbound",
            peer=peer.name,
            serial=point.serial,
            octets=point.offset,
        )
        try:
            await _send_message(conn, apdu, peer.answer_timeout, resume=recovery)
        except X400PeerError as exc:
            self._interrupted.keep(key, conn.assoc.interrupted(), apdu)
            self._background(conn.close())
            events.emit(events.X400_TRANSFER_FAILED, peer=peer.name, error=str(exc))
            return [_transfer_failed(peer, c, str(exc)) for c in claims]
        self._background(conn.release())
        return []

    async def _open(self, peer: PeerSettings) -> _Outbound:
        """A new bound association to `peer`; X400PeerError if not, reported by the pool
        (an additional open) or by the queue manager (the peer down: once, not per open)."""
        conn = await self._connect(peer)
        events.emit(
            events.X400_ASSOCIATION_OPENED,
            direction="Outbound",
            peer=peer.name,
            address=peer.address,
            mode=peer.mode,
        )
        return conn

    async def _connect(self, peer: PeerSettings, *, recover: Recovery | None = None) -> _Outbound:
        host, _, port = peer.address.rpartition(":")
        host = host.strip("[]")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port), limit=1 << 20), peer.connect_timeout
            )
        except (OSError, TimeoutError, ValueError) as exc:
            error = str(exc) or f"no connection within {peer.connect_timeout:g} s"
            raise X400PeerError(f"connect to {peer.address} failed: {error}") from None
        conn = _Outbound(
            peer=peer,
            assoc=Association(role=Role.INITIATOR, mode=MODES[peer.mode], settings=_settings(peer)),
            reader=reader,
            writer=writer,
            last_used=time.monotonic(),
        )
        try:
            await self._bind(conn, recover)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _bind(self, conn: _Outbound, recover: Recovery | None = None) -> None:
        """Bind (or, with `recover`, ask to resume an interrupted transfer instead)."""
        peer = conn.peer
        bind = b"" if recover is not None else encode_bind(our_bind(self.config, peer))
        open_ = Open(bind_argument=bind, connection_id=self._connection_id(), recover=recover)
        try:
            await conn.send(open_)
            event = await conn.next_event(peer.answer_timeout)
        except X400PeerError as exc:
            raise X400PeerError(f"open failed: {exc}") from None
        if recover is not None:
            if isinstance(event, Accepted) and event.recovered:
                return
            reason = _describe(event)
            if isinstance(event, Refused) and event.reason is not None:
                reason = event.reason.name.lower().replace("_", "-")
            raise RecoveryRefusedError(reason)
        if isinstance(event, Refused):
            reason = event.reason.name if event.reason is not None else event.layer.value
            if event.bind_error is not None:
                with contextlib.suppress(BERError):
                    reason = decode_bind_error(event.bind_error).name.lower().replace("_", "-")
            events.emit(events.X400_PEER_REFUSED, peer=peer.name, reason=reason)
            raise BindRefusedError(f"bind refused by {peer.name}: {reason}")
        if not isinstance(event, Accepted):
            raise X400PeerError(f"open failed: {_describe(event)}")
        try:
            result = decode_bind(event.bind_result)
        except BERError as exc:
            await _abort(conn)
            raise X400PeerError(f"undecodable bind result: {exc}") from None
        if result.name != peer.name:
            await _abort(conn)
            raise X400PeerError(f"the responder binds as {result.name!r}, not {peer.name!r}")

    def _connection_id(self) -> SessionConnectionIdentifier:
        """A name for the next session connection, unique to this MTA: what a recovery
        names (X.228: calling SS-user reference and common reference, a UTC time)."""
        reference = f"{self.config.mta_name}-{os.getpid()}-{next(self._connections)}"
        return SessionConnectionIdentifier(
            calling_ss_user_reference=reference.encode("ascii", "replace")[:64],
            common_reference=time.strftime("%y%m%d%H%M%SZ", time.gmtime()),
        )

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for name in list(self._keepers or ()):
            self._stop_keeper(name)
        pools = list(self._pools.values())
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)


def _delivered(peer: PeerSettings, claims: list[Claim]) -> list[Attempt]:
    """A confirmed transfer: delivered, responsibility passed on to the peer."""
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


@dataclass(frozen=True, slots=True)
class _TransferKey:
    peer: str
    message_id: int
    recipients: tuple[int, ...]


class _Interrupted:
    """Outbound transfers interrupted after a checkpoint, by transfer, for
    `recovery_timeout`: the next attempt resumes instead of starting again. The
    APDU's digest must match (the same bytes are resumed). Bounded."""

    def __init__(self, max_count: int = 256) -> None:
        self.max_count = max_count
        self._kept: dict[_TransferKey, tuple[Recovery, bytes, float]] = {}

    def keep(self, key: _TransferKey, recovery: Recovery | None, apdu: bytes) -> None:
        if recovery is None:
            self._kept.pop(key, None)
            return
        while len(self._kept) >= self.max_count:
            del self._kept[next(iter(self._kept))]
        self._kept[key] = (recovery, _digest(apdu), time.monotonic())

    def take(self, key: _TransferKey, apdu: bytes, timeout: float) -> Recovery | None:
        kept = self._kept.pop(key, None)
        if kept is None:
            return None
        recovery, digest, at = kept
        if time.monotonic() - at > timeout or digest != _digest(apdu):
            return None
        return recovery


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _settings(peer: PeerSettings) -> AssociationSettings:
    return AssociationSettings(
        checkpoint_size=peer.checkpoint_size,
        window_size=peer.window_size,
        two_way_alternate=peer.two_way_alternate,
        selectors=Selectors(
            called_tsel=peer.t_selector,
            called_ssel=peer.s_selector or None,
            called_psel=peer.p_selector or None,
        ),
    )


def _for_peer(peer: PeerSettings, handoff: Handoff) -> tuple[Envelope, bytes]:
    """The envelope and content to send `peer`: a P22 message for an X.410 (1984) peer
    becomes P2 (content type 2), which is all X.420 (1984) knows; raises DowngradeError
    when it cannot (ipm_downgrade says what may be dropped)."""
    envelope, content = handoff.envelope, handoff.content
    if (
        peer.mode == "x410"
        and envelope.content_type == ContentType.P22
        and envelope.object_kind is ObjectKind.MESSAGE
    ):
        content = downgrade_to_p2(content)
        envelope = msgspec.structs.replace(envelope, content_type=ContentType.P2)
    return envelope, content


def _apdu(handoff: Handoff, envelope: Envelope, content: bytes, domain: str) -> bytes:
    """The MTS-APDU for the handoff's recipients only, with `domain`'s trace element."""
    wanted = {c.rcpt_index for c in handoff.recipients}
    recipients = [r for i, r in enumerate(envelope.recipients) if i in wanted]
    envelope = msgspec.structs.replace(envelope, recipients=recipients)
    return encode_stored(envelope, content, domain=domain)


async def _send_message(
    conn: _Outbound, apdu: bytes, timeout: float, *, resume: Recovery | None = None
) -> None:
    """One transfer (or the rest of an interrupted one, with `resume`), returning once
    the peer confirmed it (raises X400PeerError otherwise)."""
    try:
        await conn.send(
            Transfer(apdu=apdu) if resume is None else Resume(apdu=apdu, recovery=resume)
        )
    except LocalProtocolError as exc:
        raise X400PeerError(f"cannot transfer: {exc}") from None
    while True:
        event = await conn.next_event(timeout)
        if isinstance(event, TransferConfirmed):
            conn.last_used = time.monotonic()
            conn.transfers += 1
            return
        if isinstance(event, Aborted | Released | ConnectionClosed | Refused):
            raise X400PeerError(f"transfer not confirmed: {_describe(event)}")


async def _abort(conn: _Outbound) -> None:
    with contextlib.suppress(X400PeerError, LocalProtocolError, OSError):
        await conn.send(Abort())


def _transfer_failed(peer: PeerSettings, claim: Claim, detail: str) -> Attempt:
    """Deferred for the transfer interval, or the open interval after too many tries."""
    retried_enough = claim.attempts >= peer.max_transfer_retries
    wait = peer.open_interval if retried_enough else peer.transfer_interval
    return Attempt(
        recipient_id=claim.recipient_id, result=Result.DEFERRED, detail=detail, retry_after=wait
    )


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _describe(event: Event) -> str:
    if isinstance(event, Aborted):
        return f"aborted in the {event.layer.value} layer: {event.reason}"
    return type(event).__name__
