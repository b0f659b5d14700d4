"""The SMTP server's asyncio driver: sockets, timers, TLS, and the application's decisions.

The protocol itself is the sans-I/O `ServerConnection`; this module feeds it
bytes, writes its replies, and answers its questions: relay policy at RCPT,
durable enqueue before the 250 after DATA (451 4.3.0 on any failure there,
never a 5xx and never internals), AUTH against the users file, STARTTLS.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from waypost import events
from waypost.arrival import Admit, Arrival, LoopError, Source
from waypost.clock import Clock, SystemClock
from waypost.message import Envelope, Message, Recipient, ReportRequest, new_mts_id
from waypost.net.driver import PausingDriver, SessionServer
from waypost.net.listener import Admission, ConnectionLimits, Listener
from waypost.nexthop import NextHop
from waypost.smtp import server_replies as replies
from waypost.smtp.auth import AuthUsers
from waypost.smtp.policy import LOW_DISK, DiskGuard, RelayPolicy
from waypost.smtp.server_protocol import (
    NEED_DATA,
    PAUSED,
    AuthRequest,
    ConnectionClosed,
    Hello,
    MailFrom,
    MessageData,
    Phase,
    RcptTo,
    Reply,
    Reset,
    ServerConnection,
    StartTLS,
    Violation,
)
from waypost.smtp.server_received import received_header
from waypost.smtp.server_settings import ServerSettings
from waypost.store.base import StoreError

TOO_MANY_HOPS = Reply(554, "5.4.6", "Too many hops: a mail loop?")


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpServerConfig:
    """Everything the driver needs besides the protocol's own settings."""

    settings: ServerSettings
    policy: RelayPolicy
    disk: DiskGuard
    admit: Admit
    clock: Clock = field(default_factory=SystemClock)
    idle_timeout: float = 300.0
    data_timeout: float = 600.0
    # The whole message transfer (DATA, or BDAT chunks up to LAST) may last data_timeout
    # plus one second per min_data_rate octets received, and never more than data_deadline:
    # a client trickling an octet at a time resets data_timeout but not these (Postfix's
    # smtpd_timeout per read, and a deadline for the whole).
    data_deadline: float = 3600.0
    min_data_rate: int = 1024  # octets per second; 0: no minimum
    tls: ssl.SSLContext | None = None
    users: AuthUsers | None = None
    # Implicit TLS (RFC 8314 §3.3, port 465): the handshake comes before the greeting.
    implicit_tls: bool = False
    # Whether clients in the policy's relay_networks may relay (not on a submission port,
    # where only authenticated users do).
    trust_networks: bool = True


class SmtpServer(SessionServer):
    """The SMTP listener and its sessions."""

    def __init__(
        self,
        config: SmtpServerConfig,
        addresses: list[tuple[str, int]],
        limits: ConnectionLimits | None = None,
        *,
        name: str = "smtp",
    ) -> None:
        # Sessions take the config when they start: replacing it (a new immutable object)
        # changes what later sessions get, never a session in progress.
        self.config = config
        self.listener = Listener(name, addresses, self._session, limits=limits)
        self.sessions: set[SmtpSession] = set()

    def reconfigure(self, config: SmtpServerConfig, limits: ConnectionLimits) -> None:
        """A reload: connections accepted from now on get `config` (its settings, policy,
        TLS context and users) and `limits`; those in progress keep the config they began
        with, so a transaction is never judged half by one and half by the other."""
        self.config = config
        self.listener.limits = limits

    def _session(self, admission: Admission, release: Callable[[], None]) -> SmtpSession:
        session = SmtpSession(self, admission, release)
        self.sessions.add(session)
        return session


class SmtpSession(PausingDriver):
    """One SMTP connection."""

    component = "smtp session"

    def __init__(self, server: SmtpServer, admission: Admission, release: Callable[[], None]):
        super().__init__()
        self.server = server
        self.config = server.config
        self.admission = admission
        self.client = admission.peer[0]
        # Once per connection; never on a submission port.
        self.trusted = self.config.trust_networks and self.config.policy.trusted(self.client)
        self._release = release
        self.conn = ServerConnection(self.config.settings, tls_active=self.config.implicit_tls)
        self._mail: MailFrom | None = None
        self._rcpts: list[tuple[RcptTo, NextHop]] = []
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        # The message transfer in progress: when it started, the octets read since.
        self._data_started: float | None = None
        self._data_octets = 0
        self._data_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # At the smtp category's maximum level, when the connection opens: a level changed
        # by a reload applies to the connections that follow.
        if events.enabled(events.SMTP_TRACE):
            self.conn.trace = []
        if self.config.implicit_tls:
            self._run(self._implicit_tls())
        else:
            self._greet()

    def _greet(self) -> None:
        assert self.transport is not None
        if self.admission.refused:
            events.emit(
                events.SMTP_CONNECTION_REFUSED, client=self.client, reason=self.admission.refused
            )
            host = self.config.settings.hostname
            refusal = replies.SERVICE_UNAVAILABLE.with_text(f"{host} {self.admission.refused}")
            self.transport.write(self.conn.greeting(refusal))
            self._close()
            return
        greeting = self.conn.greeting()
        if self.conn.trace is not None:
            self._trace_lines(greeting)
        self.transport.write(greeting)
        self._touch()

    def data_received(self, data: bytes) -> None:
        if self._data_started is not None:
            self._data_octets += len(data)
        lines = self.conn.lines_read
        self.conn.receive_data(data)
        self._pump()
        # After the bytes were read: a DATA command switches to data_timeout. A command line
        # still incomplete does not count as traffic, so a client dribbling one octet at a
        # time (slow-loris) is timed out all the same; but a pipelining client whose reads
        # end mid-line, or wait behind unanswered commands, is busy, not idle.
        if (
            self.conn.receiving_message
            or not self.conn.partial_input
            or self.conn.lines_read != lines
        ):
            self._touch()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self._pump()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        for timer in (self._timer, self._data_timer):
            if timer is not None:
                timer.cancel()
        self.server.sessions.discard(self)
        self._release()

    def shutdown(self) -> None:
        """The server is stopping: say so and close (a message being stored finishes first)."""
        if self._busy is None and self.transport is not None and not self._closing:
            self.conn.shut_down()
            self._flush()
            self._close()

    # -- the protocol machine -----------------------------------------------------------------

    def _pump(self) -> None:
        if self._closing or self._busy is not None:
            return
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                break
            if isinstance(event, MailFrom):
                self._on_mail(event)
            elif isinstance(event, RcptTo):
                self._on_rcpt(event)
            elif isinstance(event, MessageData):
                self._run(self._on_message(event))
                break
            elif isinstance(event, AuthRequest):
                self._run(self._on_auth(event))
                break
            elif isinstance(event, StartTLS):
                self._flush()
                self._run(self._on_starttls())
                break
            elif isinstance(event, (Reset, Hello)):
                self._mail, self._rcpts = None, []
            elif isinstance(event, Violation):
                events.emit(events.SMTP_VIOLATION, client=self.client, reason=event.reason)
            elif isinstance(event, ConnectionClosed):
                self._flush()
                self._close()
                return
        self._flush()
        if self.conn.closed:
            self._close()
        else:
            self._watch_transfer()

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if self.conn.trace is not None:
            self._trace_lines(out)
        self._write(out)

    def _trace_lines(self, replies: bytes) -> None:
        """The commands read since the last flush, then the replies about to be sent."""
        assert self.conn.trace is not None
        for line in self.conn.trace:
            events.emit(events.SMTP_TRACE, peer=self.client, direction="<", line=line)
        self.conn.trace.clear()
        for reply in replies.decode("utf-8", "backslashreplace").splitlines():
            events.emit(events.SMTP_TRACE, peer=self.client, direction=">", line=reply)

    def _fail(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.transport is not None and not self._closing:
            self._closing = True
            self.transport.close()

    # -- timers ---------------------------------------------------------------------------------

    def _touch(self) -> None:
        loop = asyncio.get_running_loop()
        limit = (
            self.config.data_timeout if self.conn.receiving_message else self.config.idle_timeout
        )
        self._deadline = loop.time() + limit
        # One timer per session, moved only when the deadline comes earlier (rare:
        # entering DATA); a later deadline is found when the timer fires.
        if self._timer is None or self._deadline < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(self._deadline, self._check_timer)

    def _check_timer(self) -> None:
        self._timer = None
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        if self._busy is not None or loop.time() < self._deadline:
            self._timer = loop.call_at(max(self._deadline, loop.time() + 1), self._check_timer)
            return
        events.emit(events.SMTP_TIMEOUT, client=self.client)
        self.conn.timeout()
        self._flush()
        self._close()

    def _watch_transfer(self) -> None:
        """Start or stop the bound on the message transfer as the session enters or leaves it."""
        transferring = self.conn.receiving_message or self.conn.phase is Phase.CHUNKING
        if not transferring:
            self._data_started = None
            if self._data_timer is not None:
                self._data_timer.cancel()
                self._data_timer = None
        elif self._data_started is None:
            loop = asyncio.get_running_loop()
            self._data_started = loop.time()
            self._data_octets = 0
            self._data_timer = loop.call_at(self._transfer_bound(), self._check_transfer)

    def _transfer_bound(self) -> float:
        """When the transfer must be over, given the octets read so far (only ever later)."""
        assert self._data_started is not None
        config = self.config
        allowed = config.data_deadline
        if config.min_data_rate > 0:
            allowed = min(allowed, config.data_timeout + self._data_octets / config.min_data_rate)
        return self._data_started + allowed

    def _check_transfer(self) -> None:
        self._data_timer = None
        if self._closing or self._data_started is None:
            return
        loop = asyncio.get_running_loop()
        if self._busy is not None:
            # The message is complete and being stored (BDAT LAST): its reply comes first.
            self._data_timer = loop.call_at(loop.time() + 1, self._check_transfer)
            return
        bound = self._transfer_bound()
        if loop.time() < bound:
            self._data_timer = loop.call_at(bound, self._check_transfer)
            return
        events.emit(
            events.SMTP_TRANSFER_TOO_SLOW,
            client=self.client,
            seconds=f"{loop.time() - self._data_started:.1f}",
            octets=self._data_octets,
        )
        self.conn.too_slow()
        self._flush()
        self._close()

    # -- decisions ------------------------------------------------------------------------------

    def _on_mail(self, event: MailFrom) -> None:
        self._mail, self._rcpts = None, []
        if not self.config.disk.has_room():
            events.emit(
                events.SMTP_DISK_LOW, path=self.config.disk.path, minimum=self.config.disk.min_free
            )
            self.conn.reject(event, LOW_DISK)
            return
        self._mail = event
        self.conn.accept(event)

    def _on_rcpt(self, event: RcptTo) -> None:
        may_relay = self.trusted or self.conn.authenticated_as is not None
        decision = self.config.policy.recipient(event.path, may_relay=may_relay)
        if decision.refusal is not None or decision.next_hop is None:
            refusal = decision.refusal or replies.TEMPORARY_FAILURE
            events.emit(
                events.SMTP_RECIPIENT_REFUSED,
                client=self.client,
                recipient=str(event.path),
                reply=f"{refusal.code} {refusal.status} {refusal.text}",
            )
            self.conn.reject(event, refusal)
            return
        self._rcpts.append((event, decision.next_hop))
        self.conn.accept(event)

    async def _on_message(self, event: MessageData) -> None:
        if self.conn.trace is not None:
            size = len(event.content)
            events.emit(
                events.SMTP_TRACE, peer=self.client, direction="<", line=f"(content, {size} octets)"
            )
        mail, rcpts = self._mail, self._rcpts
        self._mail, self._rcpts = None, []
        if mail is None or not rcpts:  # the machine prevents this; refuse safely if not
            self.conn.reject(event, replies.TEMPORARY_FAILURE)
            return
        try:
            message_id, mts_id = await self._store(mail, rcpts, event.content, crlf=event.crlf)
        except LoopError:  # the intake has said so (event 1306)
            self.conn.reject(event, TOO_MANY_HOPS)
            return
        except StoreError as exc:
            events.emit(events.SMTP_STORE_FAILED, client=self.client, error=str(exc))
            self.conn.reject(event, replies.TEMPORARY_FAILURE)
            return
        except Exception as exc:
            events.emit(events.UNEXPECTED_ERROR, component="smtp server", error=repr(exc))
            self.conn.reject(event, replies.TEMPORARY_FAILURE)
            return
        events.emit(
            events.SMTP_ACCEPTED,
            message_id=message_id,
            mts_id=mts_id,
            originator=str(mail.reverse_path or "<>"),
            recipients=len(rcpts),
            size=len(event.content),
            client=self.client,
        )
        self.conn.accept(event, f"Ok: queued as {message_id}")

    async def _store(
        self, mail: MailFrom, rcpts: list[tuple[RcptTo, NextHop]], content: bytes, *, crlf: bool
    ) -> tuple[int, str]:
        hostname = self.config.settings.hostname
        mts_id = new_mts_id(hostname)
        now = self.config.clock.now()
        tls = self._tls_description()
        header = received_header(
            from_name=self.conn.hello_name or "unknown",
            from_addr=self.client,
            by_name=hostname,
            protocol=self.conn.protocol_name(),
            queue_id=mts_id.partition("@")[0],
            recipient=str(rcpts[0][0].path) if len(rcpts) == 1 else None,
            when=now,
            tls=tls,
        )
        envelope = Envelope(
            mts_id=mts_id,
            originator=str(mail.reverse_path) if mail.reverse_path is not None else "",
            recipients=[
                Recipient(
                    address=str(rcpt.path),
                    originally_specified_number=i + 1,
                    notify=list(rcpt.notify),
                    orcpt=rcpt.orcpt,
                    report_request=ReportRequest.NON_DELIVERY,
                )
                for i, (rcpt, _) in enumerate(rcpts)
            ],
            arrival=now,
            ret=mail.ret,
            envid=mail.envid,
            body=mail.body,
            smtputf8=mail.smtputf8,
            is_report=mail.reverse_path is None,
            crlf=crlf,
        )
        arrival = Arrival(
            source=Source.SMTP,
            peer=self.client,
            tls=tls or "",
            auth=self.conn.authenticated_as or "",
            next_hops=[hop for _, hop in rcpts],
            received=header,
        )
        queued = await self.config.admit(Message(envelope=envelope, content=content), arrival)
        assert queued is not None  # a message over SMTP always has recipients to store
        return queued.message_id, mts_id

    def _tls_description(self) -> str | None:
        if self.transport is None:
            return None
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        cipher = ssl_object.cipher()
        return f"{ssl_object.version()} with cipher {cipher[0]}" if cipher else ssl_object.version()

    async def _on_auth(self, event: AuthRequest) -> None:
        users = self.config.users
        ok = False
        if users is not None:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(None, users.verify, event.username, event.password)
        if ok:
            self.conn.accept(event)
        else:
            events.emit(
                events.SMTP_AUTH_FAILED,
                client=self.client,
                username=event.username,
                mechanism=event.mechanism,
            )
            self.conn.reject(event, replies.AUTH_FAILED)

    async def _on_starttls(self) -> None:
        if await self._start_tls():
            self.conn.tls_started()
            self._touch()

    async def _implicit_tls(self) -> None:
        if await self._start_tls():
            self._greet()

    async def _start_tls(self) -> bool:
        """The TLS handshake on the connection; False (and the connection closed) if it fails."""
        tls = self.config.tls
        assert tls is not None and self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            new_transport = await loop.start_tls(
                self.transport, self, tls, server_side=True, ssl_handshake_timeout=60
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            events.emit(events.SMTP_TLS_FAILED, client=self.client, error=str(exc) or repr(exc))
            self._closing = True
            self.transport.abort()
            return False
        if new_transport is None:
            self._close()
            return False
        self.transport = new_transport
        return True
