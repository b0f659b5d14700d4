"""The `smtp` delivery agent: delivers a handoff to its next hop over SMTP, reusing connections.

The sans-I/O `ClientConnection` speaks the protocol; this module owns sockets,
timeouts, TLS and the cache of open connections, and turns each recipient's
outcome into an Attempt. A next hop is `smtp:[host]:port` (that host) or
`smtp:domain` (its MX hosts in preference order, RFC 5321 §5.1). When no host of
the hop can be used (no connection, no greeting, a failed MX lookup), the
recipients are deferred as a hop failure: the queue manager then holds the hop's
other messages back and logs the hop down once, rather than a warning per host
and message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import ssl
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from waypost import events
from waypost.handoff import Attempt, Claim, Handoff, Result, all_attempts
from waypost.message import Envelope
from waypost.net.tls import aead_only
from waypost.nexthop import NextHop
from waypost.smtp.client_protocol import (
    NEED_DATA,
    ClientConnection,
    ClientState,
    Closed,
    Ready,
    RecipientOutcome,
    TLSReady,
    TLSRefused,
    TransactionDone,
)

# What the client waits for (ClientConnection.waiting_for), for choosing a timeout.
_OPENING = frozenset({"the greeting", "EHLO", "HELO", "STARTTLS"})
_END_OF_DATA = "the end of data"


class TlsPolicy(enum.StrEnum):
    """Postfix's smtp_tls_security_level: none, may (opportunistic), encrypt (required)."""

    NONE = "none"
    OPPORTUNISTIC = "opportunistic"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    helo_name: str
    tls: TlsPolicy = TlsPolicy.OPPORTUNISTIC
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    data_timeout: float = 600.0
    max_messages_per_connection: int = 100
    connection_cache_time: float = 5.0


class SmtpHostError(Exception):
    """Nothing could be delivered to a host; `result` says whether to try again."""

    def __init__(self, detail: str, result: Result = Result.DEFERRED) -> None:
        super().__init__(detail)
        self.detail = detail
        self.result = result


class TlsHandshakeError(SmtpHostError):
    """STARTTLS was agreed but the handshake failed: the connection is lost."""


# (host, port) pairs to try in order, for a next hop.
Resolver = Callable[[NextHop], Awaitable[list[tuple[str, int]]]]


async def resolve_mx(hop: NextHop) -> list[tuple[str, int]]:
    """MX hosts of the hop's domain by preference, or the domain itself (implicit MX)."""
    domain = hop.destination
    try:
        answer = await dns.asyncresolver.resolve(domain, "MX", lifetime=30)
    except dns.resolver.NXDOMAIN:
        raise SmtpHostError(f"5.1.2 domain {domain} does not exist", Result.FAILED) from None
    except dns.resolver.NoAnswer:
        return [(domain, 25)]
    except dns.exception.DNSException as exc:
        raise SmtpHostError(f"4.4.3 MX lookup of {domain} failed: {exc}") from None
    records = sorted(answer, key=lambda r: r.preference)
    hosts = [str(r.exchange).rstrip(".") for r in records]
    if hosts == [""]:  # a null MX (RFC 7505): the domain accepts no mail
        raise SmtpHostError(f"5.1.10 domain {domain} accepts no mail (null MX)", Result.FAILED)
    return [(h, 25) for h in hosts if h]


async def resolve(hop: NextHop, mx: Resolver = resolve_mx) -> list[tuple[str, int]]:
    if not hop.mx_lookup:
        return [(hop.destination, hop.port or 25)]
    return await mx(hop)


class SmtpSession:
    """One open SMTP connection, greeted, ready for transactions."""

    def __init__(
        self,
        host: str,
        port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: ClientSettings,
        *,
        lmtp: bool = False,
    ) -> None:
        self.key = (host, port)
        self.reader = reader
        self.writer = writer
        self.settings = settings
        self.lmtp = lmtp
        self.client = ClientConnection(local_hostname=settings.helo_name, lmtp=lmtp)
        if events.enabled(events.SMTP_TRACE):  # the smtp category at its maximum level
            self.client.trace = []
        self.messages = 0
        self.idle_since = time.monotonic()
        self.alive = True
        self.dsn = False
        # Port 0: `host` is the path of a UNIX socket (an LMTP server's, usually).
        self.remote = f"{host}:{port}" if port else f"unix:{host}"

    @classmethod
    async def open(
        cls, host: str, port: int, settings: ClientSettings, *, lmtp: bool = False
    ) -> SmtpSession:
        """A session ready for a transaction. Opportunistic TLS whose handshake fails is
        given up for this connection and the host connected to again in clear text, as Exim
        does (its `hosts_try_tls`): a host that offers STARTTLS but no suite we accept (CBC
        only, say) still gets its mail, as it would from a client without TLS (RFC 3207 §4.1
        leaves this to the client's policy); "required" defers instead."""
        try:
            return await cls._open(host, port, settings, lmtp)
        except TlsHandshakeError as exc:
            if settings.tls is not TlsPolicy.OPPORTUNISTIC:
                raise
            events.emit(events.SMTP_TLS_FALLBACK, host=f"{host}:{port}", error=exc.detail)
            plain = dataclasses.replace(settings, tls=TlsPolicy.NONE)
            return await cls._open(host, port, plain, lmtp)

    @classmethod
    async def _open(cls, host: str, port: int, settings: ClientSettings, lmtp: bool) -> SmtpSession:
        connecting = (
            asyncio.open_connection(host, port, limit=1 << 20)
            if port
            else asyncio.open_unix_connection(host, limit=1 << 20)
        )
        try:
            reader, writer = await asyncio.wait_for(connecting, settings.connect_timeout)
        except (OSError, TimeoutError) as exc:
            where = f"{host}:{port}" if port else f"unix:{host}"
            raise SmtpHostError(f"4.4.1 connect to {where} failed: {exc or 'timeout'}") from None
        session = cls(host, port, reader, writer, settings, lmtp=lmtp)
        await session._until_ready()
        return session

    async def _until_ready(self) -> None:
        tried_tls = False
        while True:
            event = await self._next()
            if isinstance(event, Ready):
                self.dsn = event.capabilities.dsn
                want_tls = self.settings.tls is not TlsPolicy.NONE
                if want_tls and not event.tls and event.capabilities.starttls and not tried_tls:
                    tried_tls = True
                    self.client.start_tls()
                    continue
                if self.settings.tls is TlsPolicy.REQUIRED and not event.tls:
                    await self.close()
                    raise SmtpHostError(
                        f"4.7.4 TLS is required but {self.remote} does not offer it"
                    )
                return
            if isinstance(event, TLSReady):
                await self._start_tls()
            elif isinstance(event, TLSRefused):
                if self.settings.tls is TlsPolicy.REQUIRED:
                    await self.close()
                    raise SmtpHostError(f"4.7.4 {self.remote} refused STARTTLS: {event.reply}")
                return  # opportunistic: go on in clear text
            elif isinstance(event, Closed):
                self.alive = False
                await self.close()
                raise SmtpHostError(_closed_detail(event, self.remote))

    async def _start_tls(self) -> None:
        context = aead_only(ssl.create_default_context())
        # Opportunistic and "required" both encrypt without authenticating the
        # server (Postfix's may / encrypt levels): MX hosts rarely have
        # certificates for the names that route to them.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        await self._flush()
        try:
            await asyncio.wait_for(self.writer.start_tls(context), self.settings.connect_timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.alive = False
            await self.close()
            raise TlsHandshakeError(
                f"4.7.5 TLS handshake with {self.remote} failed: {exc}"
            ) from None
        self.client.tls_started()

    async def transfer(
        self, envelope: Envelope, content: bytes, recipients: list[int]
    ) -> list[RecipientOutcome]:
        """One transaction; returns an outcome per index into `recipients`."""
        self.messages += 1
        self.client.send_message(envelope, content, [envelope.recipients[i] for i in recipients])
        while True:
            event = await self._next()
            if isinstance(event, TransactionDone):
                self.idle_since = time.monotonic()
                self.dsn = not event.dsn_unsupported and self.client.capabilities.dsn
                if self.client.state is ClientState.CLOSED:
                    # Ended by a timeout or a lost connection: never to be reused.
                    await self.close()
                return list(event.outcomes)
            if isinstance(event, Closed):
                self.alive = False
                await self.close()
                raise SmtpHostError(_closed_detail(event, self.remote))

    async def _next(self) -> object:
        while True:
            event = self.client.next_event()
            if event is not NEED_DATA:
                if isinstance(event, Closed):
                    self.alive = False
                    with contextlib.suppress(Exception):
                        await self._flush()
                return event
            await self._flush()
            timeout = self._timeout_for(self.client.waiting_for)
            try:
                # asyncio.timeout, not wait_for: wait_for makes a Task for every read.
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(65536)
            except TimeoutError:
                self.client.timeout()
                continue
            except (OSError, ConnectionError):
                self.client.connection_lost()
                continue
            self.client.receive_data(data)
            if self.client.trace:
                self._trace()

    def _timeout_for(self, waiting: str | None) -> float:
        """RFC 5321 §4.5.3.2: the greeting and the opening exchange within connect_timeout,
        the reply to the end of data within data_timeout, other replies command_timeout."""
        if waiting in _OPENING:
            return self.settings.connect_timeout
        if waiting == _END_OF_DATA:
            return self.settings.data_timeout
        return self.settings.command_timeout

    def _trace(self) -> None:
        """The lines sent and read since the last time, as events 1790."""
        trace = self.client.trace
        assert trace is not None
        for direction, line in trace:
            events.emit(events.SMTP_TRACE, peer=self.remote, direction=direction, line=line)
        trace.clear()

    async def _flush(self) -> None:
        if self.client.trace:
            self._trace()
        out = self.client.data_to_send()
        if out:
            self.writer.write(out)
            try:
                await self.writer.drain()
            except (OSError, ConnectionError):
                self.client.connection_lost()

    async def quit(self) -> None:
        if self.alive:
            with contextlib.suppress(Exception):
                self.client.quit()
                await asyncio.wait_for(self._drain_until_closed(), 5)
        await self.close()

    async def _drain_until_closed(self) -> None:
        while not isinstance(await self._next(), Closed):
            pass

    async def close(self) -> None:
        self.alive = False
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def _closed_detail(event: Closed, remote: str) -> str:
    if event.reply is not None:
        return f"{event.reply} (from {remote})"
    return f"4.4.2 {remote}: {event.detail}"


class SmtpDeliverer:
    """The delivery agent for next hops `smtp:…`, with a cache of idle connections."""

    # The LMTP agent is this one speaking LMTP (delivery.lmtp).
    lmtp = False

    def __init__(self, settings: ClientSettings, *, mx: Resolver = resolve_mx) -> None:
        self.settings = settings
        self.mx = mx
        self._idle: dict[tuple[str, int], list[SmtpSession]] = defaultdict(list)
        self._reaper: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Future[None]] = set()

    def reconfigure(self, settings: ClientSettings) -> None:
        """A reload: new connections use `settings`. Idle cached connections were opened
        under the old ones (TLS policy, HELO name) and are closed; those in use finish
        their transaction and are closed instead of cached (`_park`)."""
        self.settings = settings
        sessions = [s for group in self._idle.values() for s in group]
        self._idle.clear()
        for session in sessions:
            self._background(session.quit())

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        claims = list(handoff.recipients)
        try:
            targets = await self.targets(handoff.next_hop)
        except SmtpHostError as exc:
            return _hop_failed(claims, exc)
        indexes = [c.rcpt_index for c in claims]
        unusable: list[tuple[str, SmtpHostError]] = []
        for host, port in targets:
            try:
                session = await self._session(host, port)
            except SmtpHostError as exc:
                unusable.append((f"{host}:{port}", exc))
                continue
            for address, error in unusable:
                # Another host of the hop took over: worth a warning (rate-limited per host).
                events.emit(
                    events.SMTP_HOP_FAILED,
                    next_hop=str(handoff.next_hop),
                    host=address,
                    error=error.detail,
                )
            try:
                outcomes = await session.transfer(handoff.envelope, handoff.content, indexes)
            except SmtpHostError as exc:
                # The connection failed mid-transaction: the message may or may not have
                # arrived; try again later rather than at the next MX (at least once).
                return all_attempts(claims, exc.result, exc.detail)
            self._park(session)
            return [_attempt(claims[o.index], o, session) for o in outcomes]
        return _hop_failed(claims, unusable[-1][1] if unusable else SmtpHostError(_NO_HOST))

    async def targets(self, hop: NextHop) -> list[tuple[str, int]]:
        """The hosts (and ports) to try for a hop, in order."""
        return await resolve(hop, self.mx)

    async def _session(self, host: str, port: int) -> SmtpSession:
        idle = self._idle.get((host, port))
        while idle:
            session = idle.pop()
            fresh = time.monotonic() - session.idle_since < self.settings.connection_cache_time
            if session.alive and fresh and not session.reader.at_eof():
                return session
            await session.quit()
        return await SmtpSession.open(host, port, self.settings, lmtp=self.lmtp)

    def _park(self, session: SmtpSession) -> None:
        if not session.alive:
            return
        if (
            session.messages >= self.settings.max_messages_per_connection
            or session.settings is not self.settings
        ):
            self._background(session.quit())
            return
        self._idle[session.key].append(session)
        if self._reaper is None:
            loop = asyncio.get_running_loop()
            self._reaper = loop.call_later(self.settings.connection_cache_time, self._reap)

    def _reap(self) -> None:
        self._reaper = None
        now = time.monotonic()
        for key, sessions in list(self._idle.items()):
            keep = []
            for session in sessions:
                if now - session.idle_since >= self.settings.connection_cache_time:
                    self._background(session.quit())
                else:
                    keep.append(session)
            self._idle[key] = keep
        if any(self._idle.values()):
            loop = asyncio.get_running_loop()
            self._reaper = loop.call_later(self.settings.connection_cache_time, self._reap)

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        sessions = [s for group in self._idle.values() for s in group]
        self._idle.clear()
        await asyncio.gather(*(s.quit() for s in sessions), return_exceptions=True)


_NO_HOST = "4.4.1 no host to try"


def _hop_failed(claims: list[Claim], error: SmtpHostError) -> list[Attempt]:
    """No host of the hop could be used: the last one's error, for every recipient. A
    temporary one is the hop's failure (not the message's); a permanent one (no such
    domain, a null MX) fails the recipients."""
    temporary = error.result is Result.DEFERRED
    return all_attempts(claims, error.result, error.detail, hop_failure=temporary)


def _attempt(claim: Claim, outcome: RecipientOutcome, session: SmtpSession) -> Attempt:
    return Attempt(
        recipient_id=claim.recipient_id,
        result=outcome.result,
        detail=outcome.detail,
        remote_mta=session.remote if outcome.remote else None,
        # Into a mailbox by LMTP is final: this MTA reports it, whatever the store offers.
        passed_on=outcome.result is Result.DELIVERED and session.dsn and not session.lmtp,
    )
