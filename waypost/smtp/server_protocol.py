"""Sans-I/O ESMTP server (RFC 5321 + PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN, STARTTLS,
AUTH, CHUNKING, ENHANCEDSTATUSCODES): bytes in, events out, replies queued; no I/O, no clock.

    conn = ServerConnection(ServerSettings(hostname="mx.example"), tls_active=False)
    send(conn.greeting())                  # or greeting(Reply(554, ...)) to refuse service
    while True:
        event = conn.next_event()          # an Event, NEED_DATA or PAUSED
        if event is NEED_DATA:
            send(conn.data_to_send())
            conn.receive_data(recv())      # b"" is EOF
        elif isinstance(event, Decidable): # MailFrom, RcptTo, MessageData, AuthRequest
            conn.accept(event)             # or conn.reject(event, Reply(550, "5.1.1", "..."))
        elif isinstance(event, StartTLS):
            send(conn.data_to_send()); upgrade_transport(); conn.tls_started()
        elif isinstance(event, ConnectionClosed):
            send(conn.data_to_send()); close(); break
        # Hello, Reset, Quit: already answered; Violation: log it.
    conn.timeout()                         # from the driver's timer: 421 4.4.2, then closed

A decidable event pauses the machine until accept/reject; input pipelined behind
it waits in a bounded buffer and is answered in order afterwards. Like h11, the
driver should not read while paused; `max_pipelined_bytes` is the backstop.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Callable
from typing import Literal

from waypost.smtp import server_replies as replies
from waypost.smtp.server_events import (
    NEED_DATA,
    PAUSED,
    AuthRequest,
    ConnectionClosed,
    Decidable,
    Event,
    Hello,
    LocalProtocolError,
    MailFrom,
    MessageData,
    Quit,
    RcptTo,
    Reset,
    Sentinel,
    StartTLS,
    Violation,
)
from waypost.smtp.server_message import MessageReader, has_bare_cr_or_lf
from waypost.smtp.server_parse import (
    CommandError,
    Offered,
    check_hello_name,
    parse_bdat,
    parse_mail,
    parse_rcpt,
)
from waypost.smtp.server_received import count_received, protocol_name, received_header
from waypost.smtp.server_replies import Reply
from waypost.smtp.server_sasl import SaslExchange
from waypost.smtp.server_settings import ServerSettings
from waypost.smtp.server_state import Phase, Transition, Verb, next_phase, refusal

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "AuthRequest",
    "ConnectionClosed",
    "Decidable",
    "Event",
    "Hello",
    "LocalProtocolError",
    "MailFrom",
    "MessageData",
    "Phase",
    "Quit",
    "RcptTo",
    "Reply",
    "Reset",
    "ServerConnection",
    "ServerSettings",
    "StartTLS",
    "Violation",
    "count_received",
    "has_bare_cr_or_lf",
    "protocol_name",
    "received_header",
]

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# Recognised, deliberately not implemented (RFC 5321 §4.2.4: 502, not 500).
_NOT_IMPLEMENTED = frozenset({"EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"})
# A web browser or proxy tricked into talking to port 25 (cross-protocol attack): hang up.
_HTTP_VERBS = frozenset({"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS"})
_JUNK = frozenset({Verb.NOOP, Verb.RSET, Verb.VRFY, Verb.HELP, Verb.HELO, Verb.EHLO})


class _Mode(enum.Enum):
    """What the next input bytes are."""

    COMMAND = "command"  # command lines, or SASL responses while an AUTH exchange runs
    DATA = "data"  # dot-stuffed message text up to CRLF.CRLF
    CHUNK = "chunk"  # BDAT octets, counted
    TLS_WAIT = "tls wait"  # after 220 to STARTTLS, until tls_started()
    CLOSED = "closed"


class ServerConnection:
    """One SMTP server session; see the module docstring for the driving loop."""

    def __init__(self, settings: ServerSettings, *, tls_active: bool = False) -> None:
        self.settings = settings
        self._tls = tls_active
        self._in = bytearray()
        # Whole command lines taken so far: what a driver's idle timer counts as traffic.
        self.lines_read = 0
        # The command lines read, for the protocol trace, when the driver asks for them
        # (a list it empties); authentication secrets are left out.
        self.trace: list[str] | None = None
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._pending: Decidable | None = None
        self._closed: ConnectionClosed | None = None
        self._mode = _Mode.COMMAND
        self._phase = Phase.INITIAL
        self._greeted = False
        self._refused = False
        self._eof = False
        self._overflowed = False
        # The rest of a command line is being thrown away up to its CRLF: "long" when the
        # line is over max_command_line (answered at its end), "bare" after a bare LF
        # (answered at once).
        self._discarding: Literal["long", "bare"] | None = None
        self._hello: str | None = None
        self._esmtp = False
        self._user: str | None = None
        self._errors = 0
        self._junk = 0
        self._last = "CONNECT"
        # Limits this client ran into, each told to the log once per connection.
        self._limits_told: set[str] = set()
        # The mail transaction.
        self._mail: MailFrom | None = None
        self._rcpts = 0
        self._bdat_failure: Reply | None = None
        # The message being received.
        self._message = MessageReader(settings.max_message_size)
        self._chunk_left = 0
        self._chunk_size = 0
        self._chunk_last = False
        self._chunk_error: Reply | None = None
        self._sasl: SaslExchange | None = None

    # -- what the driver and the application see ---------------------------------

    @property
    def closed(self) -> bool:
        """True once the session is over: flush `data_to_send()` and close the transport."""
        return self._closed is not None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def pending(self) -> Decidable | None:
        """The event waiting for accept/reject, if any."""
        return self._pending

    @property
    def tls_active(self) -> bool:
        return self._tls

    @property
    def esmtp(self) -> bool:
        return self._esmtp

    @property
    def hello_name(self) -> str | None:
        return self._hello

    @property
    def authenticated_as(self) -> str | None:
        return self._user

    @property
    def receiving_message(self) -> bool:
        """True while reading DATA or a BDAT chunk (RFC 5321 §4.5.3.2 times those differently)."""
        return self._mode in (_Mode.DATA, _Mode.CHUNK)

    @property
    def partial_input(self) -> bool:
        """Octets received that do not yet make a whole command line (an over-long line being
        discarded counts), or a whole line of content."""
        return bool(self._in) or self._discarding is not None

    def protocol_name(self) -> str:
        """The Received: `with` type for the current transaction (RFC 3848, RFC 6531)."""
        return protocol_name(
            esmtp=self._esmtp,
            tls=self._tls,
            authenticated=self._user is not None,
            smtputf8=self._mail is not None and self._mail.smtputf8,
        )

    def greeting(self, refuse: Reply | None = None) -> bytes:
        """The 220 greeting, or a 554 refusal (then only QUIT is served) or 421 (closed)."""
        if self._greeted:
            raise LocalProtocolError("greeting() called twice")
        if refuse is not None and refuse.code not in (421, 554):
            raise LocalProtocolError("a refusing greeting must be 554 or 421")
        self._greeted = True
        if refuse is None:
            return Reply(220, None, f"{self.settings.hostname} {self.settings.banner}").to_bytes()
        if refuse.code == 421:
            self._close(by_peer=False)
        else:
            self._refused = True
        return refuse.to_bytes()

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; `b""` means EOF."""
        if self._closed is not None or self._overflowed:
            return  # the session is over or out of sync: nothing more is read
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data after EOF")
            return
        if not data:
            self._eof = True
            return
        if self._mode is _Mode.TLS_WAIT:
            # Plaintext after STARTTLS and before the handshake: never a command.
            self._events.append(Violation(reason=f"{len(data)} octets before TLS discarded"))
            return
        room = self.settings.max_pipelined_bytes - len(self._in)
        if self._pending is not None and len(data) > room:
            self._in += data[: max(room, 0)]
            self._overflowed = True
            return
        self._in += data

    def next_event(self) -> Event | Literal[Sentinel.NEED_DATA, Sentinel.PAUSED]:
        """The next event, NEED_DATA (feed more), or PAUSED (decide, or start TLS)."""
        if not self._greeted:
            raise LocalProtocolError("send greeting() first")
        while True:
            if self._events:
                return self._events.popleft()
            if self._closed is not None:
                return self._closed
            if self._mode is _Mode.TLS_WAIT:
                if self._eof:
                    self._close(by_peer=True)
                    continue
                return PAUSED
            if self._pending is not None:
                return PAUSED
            if self._step():
                continue
            if self._overflowed:
                self._fatal(replies.PIPELINE_OVERFLOW, "pipelined input over max_pipelined_bytes")
            elif self._eof:
                self._close(by_peer=True)
            else:
                return NEED_DATA

    def data_to_send(self) -> bytes:
        """The replies queued since the last call, in order."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def accept(self, event: Decidable, text: str | None = None) -> None:
        """Accept the pending event: 250 (MAIL, RCPT, message) or 235 (AUTH); `text` replaces
        the default reply text (e.g. "OK: queued as 4F2A"). Accept a message only once it is
        durable."""
        if isinstance(event, MailFrom):
            reply = replies.SENDER_OK
        elif isinstance(event, RcptTo):
            reply = replies.RECIPIENT_OK
        elif isinstance(event, MessageData):
            reply = replies.MESSAGE_OK
        else:
            reply = replies.AUTH_OK
        reply = reply.with_text(text)  # a bad text raises before anything changes
        self._take_pending(event)
        if self._closed is not None:
            return
        if isinstance(event, MailFrom):
            self._mail = event
            self._phase = next_phase(self._phase, Transition.MAIL_ACCEPTED)
        elif isinstance(event, RcptTo):
            self._rcpts += 1
            self._phase = next_phase(self._phase, Transition.RCPT_ACCEPTED)
        elif isinstance(event, MessageData):
            self._junk = 0
            self._end_message()
        else:
            self._user = event.username
        self._send(reply)

    def reject(self, event: Decidable, reply: Reply) -> None:
        """Refuse the pending event with a 4xx/5xx reply; a 421 also closes the session.

        A rejection counts as an error towards `max_errors` (recipient harvesting).
        """
        if reply.code < 400:
            raise LocalProtocolError(f"reject() needs a 4xx or 5xx reply, not {reply.code}")
        self._take_pending(event)
        if self._closed is not None:
            return
        if isinstance(event, MessageData):
            self._end_message()
        if reply.code == 421:
            self._send(reply)
            self._close(by_peer=False)
        else:
            self._fail(reply)

    def tls_started(self) -> None:
        """The transport is now TLS: forget everything learnt before (RFC 3207 §4.2)."""
        if self._mode is not _Mode.TLS_WAIT:
            raise LocalProtocolError("tls_started() without a pending STARTTLS")
        self._tls = True
        self._mode = _Mode.COMMAND
        self._in.clear()
        self._hello = None
        self._esmtp = False
        self._user = None
        self._reset_transaction()
        self._phase = next_phase(self._phase, Transition.TLS_STARTED)

    def timeout(self) -> None:
        """The driver's idle or DATA timer fired: 421 4.4.2 and close."""
        self._end_with(replies.TIMEOUT)

    def too_slow(self) -> None:
        """The driver's bound on the whole message transfer was hit: 421 4.4.2 and close."""
        self._end_with(replies.TOO_SLOW)

    def shut_down(self) -> None:
        """The service is stopping: 421 4.3.2 and close (RFC 5321 §3.8)."""
        self._end_with(replies.SHUTTING_DOWN)

    # -- bookkeeping ---------------------------------------------------------------

    def _take_pending(self, event: Decidable) -> None:
        if self._pending is None or event is not self._pending:
            raise LocalProtocolError(f"{type(event).__name__} is not the event awaiting a decision")
        self._pending = None

    def _pause(self, event: Decidable) -> None:
        self._pending = event
        self._events.append(event)

    def _send(self, reply: Reply) -> None:
        if self._closed is None:
            self._out += reply.to_bytes()

    def _fail(self, reply: Reply) -> None:
        """An error reply; too many of them end the session (Postfix's hard error limit)."""
        self._send(reply)
        self._errors += 1
        if self._errors >= self.settings.max_errors and self._closed is None:
            self._fatal(replies.TOO_MANY_ERRORS, f"{self._errors} errors")

    def _tell_limit(self, limit: str, reply: Reply) -> None:
        """A limit refused the client (already answered): a Violation for the log, once
        per connection and limit (a pipelined flood must not flood the log too)."""
        if limit not in self._limits_told:
            self._limits_told.add(limit)
            self._events.append(
                Violation(reason=f"over {limit}: refused with {reply.code} {reply.status}")
            )

    def _fatal(self, reply: Reply, reason: str) -> None:
        self._send(reply)
        self._events.append(Violation(reason=reason))
        self._close(by_peer=False)

    def _end_with(self, reply: Reply) -> None:
        """A 421 of our own, unasked, and the end of the session (once only)."""
        if self._closed is None:
            self._send(reply)
            self._close(by_peer=False)

    def _close(self, *, by_peer: bool) -> None:
        self._closed = ConnectionClosed(by_peer=by_peer, after=self._last)
        self._events.append(self._closed)
        self._mode = _Mode.CLOSED
        self._in.clear()
        self._message = MessageReader(0)

    def _reset_transaction(self) -> None:
        self._mail = None
        self._rcpts = 0
        self._bdat_failure = None
        self._start_message()

    def _start_message(self) -> None:
        self._message = MessageReader(self.settings.max_message_size)

    def _end_message(self) -> None:
        self._phase = next_phase(self._phase, Transition.MESSAGE_DONE)
        self._reset_transaction()

    def _offered(self) -> Offered:
        s = self.settings
        return Offered(
            esmtp=self._esmtp,
            size=True,
            eight_bit_mime=s.eight_bit_mime,
            binarymime=s.binarymime and s.chunking,
            smtputf8=s.smtputf8,
            dsn=s.dsn,
            auth=self._auth_offered(),
            max_size=s.max_message_size,
        )

    def _auth_offered(self) -> bool:
        return bool(self.settings.auth_mechanisms) and (
            self._tls or self.settings.allow_auth_without_tls
        )

    def _extensions(self) -> list[str]:
        s = self.settings
        offers = [
            (s.pipelining, "PIPELINING"),
            (True, f"SIZE {s.max_message_size}"),
            (s.tls_available and not self._tls, "STARTTLS"),
            (self._auth_offered(), "AUTH " + " ".join(s.auth_mechanisms)),
            (True, "ENHANCEDSTATUSCODES"),
            (s.eight_bit_mime, "8BITMIME"),
            (s.dsn, "DSN"),
            (s.smtputf8, "SMTPUTF8"),
            (s.chunking, "CHUNKING"),
            (s.binarymime and s.chunking, "BINARYMIME"),
        ]
        return [name for offered, name in offers if offered]

    # -- input ---------------------------------------------------------------------

    def _step(self) -> bool:
        """Process one unit of input; False when more bytes are needed first."""
        if self._mode is _Mode.DATA:
            return self._step_data()
        if self._mode is _Mode.CHUNK:
            return self._step_chunk()
        return self._step_line()

    def _step_line(self) -> bool:
        # RFC 5321 §2.3.8: a line ends with CRLF and nothing else. A bare LF (or CR) is no
        # line end: the line is refused whole, up to its CRLF, with one reply, so that what
        # follows a bare LF is never run as a command of its own (SMTP smuggling).
        buf = self._in
        if self._discarding is not None:
            end = buf.find(b"\r\n")
            if end == -1:
                keep = 1 if buf.endswith(b"\r") else 0  # perhaps the first half of a CRLF
                had = len(buf) > keep
                del buf[: len(buf) - keep]
                return had
            del buf[: end + 2]
            if self._discarding == "long":
                self._line_too_long()
            self._discarding = None
            return True
        lf = buf.find(b"\n", 0, self.settings.max_command_line)
        if lf == -1:
            if len(buf) < self.settings.max_command_line:
                return False
            # Never buffer a line beyond the limit: drop it and answer at its end, in order.
            self._discarding = "long"
            return True
        line = bytes(buf[: lf + 1])
        del buf[: lf + 1]
        self.lines_read += 1
        if not line.endswith(b"\r\n"):
            self._sasl = None
            self._discarding = "bare"
            self._events.append(Violation(reason="bare LF in a command line"))
            self._fail(replies.BAD_LINE_ENDING)
        elif b"\r" in line[:-2]:
            self._sasl = None
            self._fail(replies.BAD_LINE_ENDING)
        elif (sasl := self._sasl) is not None:
            if self.trace is not None:
                self.trace.append("(an authentication response, not written)")
            self._sasl_step(lambda: sasl.respond(line[:-2]))
        else:
            if self.trace is not None:
                self.trace.append(traced_command(line[:-2]))
            self._command(line[:-2])
        return True

    def _line_too_long(self) -> None:
        if self._sasl is not None:
            self._sasl = None
            self._fail(replies.AUTH_LINE_TOO_LONG)
        else:
            self._fail(replies.LINE_TOO_LONG)
            self._tell_limit("line length", replies.LINE_TOO_LONG)

    def _step_data(self) -> bool:
        progressed, ended = self._message.read_dot_stuffed(self._in)
        if ended:
            self._mode = _Mode.COMMAND
            self._finish_message(by_bdat=False)
        return progressed

    def _step_chunk(self) -> bool:
        buf = self._in
        if self._chunk_left:
            if not buf:
                return False
            n = min(self._chunk_left, len(buf))
            if self._chunk_error is None:
                self._message.add(buf[:n])
            del buf[:n]
            self._chunk_left -= n
            if self._chunk_left:
                return True
        self._mode = _Mode.COMMAND
        self._finish_chunk()
        return True

    def _finish_chunk(self) -> None:
        error = self._chunk_error
        in_transaction = self._phase in (Phase.RCPT, Phase.CHUNKING)
        if error is not None:
            if in_transaction and self._chunk_last:
                self._end_message()
            elif in_transaction:
                # RFC 3030 §2: the transaction has failed; chunks already pipelined are
                # read and thrown away, each answered with the same failure.
                self._bdat_failure = error
                self._phase = next_phase(self._phase, Transition.CHUNK_TAKEN)
            self._fail(error)
        elif self._chunk_last:
            self._finish_message(by_bdat=True)
        else:
            self._phase = next_phase(self._phase, Transition.CHUNK_TAKEN)
            self._send(Reply(250, "2.0.0", f"{self._chunk_size} octets received"))

    def _finish_message(self, *, by_bdat: bool) -> None:
        self._last = "END-OF-MESSAGE"
        too_big = self._message.too_big
        content = self._message.take()
        binary = self._mail is not None and self._mail.body == "BINARYMIME"
        if too_big:
            self._end_message()
            self._fail(replies.MESSAGE_TOO_BIG)
            self._tell_limit("max_message_size", replies.MESSAGE_TOO_BIG)
        elif not binary and has_bare_cr_or_lf(content):
            # Whatever a client meant by a bare CR or LF, relaying it could split the
            # message in two at a later hop: refuse the whole message.
            self._end_message()
            self._events.append(Violation(reason="bare CR or LF in message data"))
            self._fail(replies.BARE_LINE_ENDING)
        else:
            self._pause(MessageData(content=content, received_by_bdat=by_bdat, crlf=not binary))

    # -- commands ------------------------------------------------------------------

    def _command(self, raw: bytes) -> None:
        if _CONTROL.search(raw):
            self._fail(replies.BAD_SYNTAX)
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(replies.BAD_ENCODING)
            return
        word, _, arg = text.partition(" ")
        name = word.upper() if word.isascii() else "?"
        try:
            verb = Verb(name)
        except ValueError:
            self._last = "UNKNOWN"
            if name in _HTTP_VERBS:
                self._fatal(replies.NOT_SMTP, f"{name} command: not an SMTP client")
            else:
                self._fail(
                    replies.NOT_IMPLEMENTED if name in _NOT_IMPLEMENTED else replies.UNKNOWN_COMMAND
                )
            return
        self._last = name
        if self._refused:
            if verb is Verb.QUIT:
                self._quit()
            else:
                self._fail(replies.NO_SERVICE)
            return
        if verb in _JUNK:
            self._junk += 1
            if self._junk > self.settings.max_commands_before_transaction:
                self._fatal(replies.TOO_MANY_COMMANDS, f"{self._junk} commands without mail")
                return
        if verb is Verb.BDAT:
            self._bdat(arg)  # its chunk must be read even when it is refused
            return
        refused = self._unavailable(verb) or refusal(self._phase, verb)
        if refused is not None:
            self._fail(refused)
            return
        try:
            self._run(verb, arg)
        except CommandError as exc:
            self._fail(exc.reply)

    def _unavailable(self, verb: Verb) -> Reply | None:
        """Extensions this server does not offer at all (before any sequencing check)."""
        if verb is Verb.STARTTLS:
            if not self.settings.tls_available:
                return replies.NOT_IMPLEMENTED
            if self._tls:
                return replies.TLS_ALREADY_ACTIVE
        if verb is Verb.AUTH and not self.settings.auth_mechanisms:
            return replies.NOT_IMPLEMENTED
        return None

    def _run(self, verb: Verb, arg: str) -> None:
        if verb in (Verb.HELO, Verb.EHLO):
            self._hello_command(check_hello_name(arg), esmtp=verb is Verb.EHLO)
        elif verb is Verb.MAIL:
            if self.settings.auth_required and self._user is None:
                raise CommandError(
                    replies.AUTH_REQUIRED if self._auth_offered() else replies.TLS_REQUIRED
                )
            offered = self._offered()
            self._pause(parse_mail(arg, offered, authenticated=self._user is not None))
        elif verb is Verb.RCPT:
            self._rcpt(arg)
        elif verb is Verb.DATA:
            self._data(arg)
        elif verb is Verb.RSET:
            _no_arguments(arg)
            self._reset_transaction()
            self._phase = next_phase(self._phase, Transition.RESET)
            self._send(replies.OK)
            self._events.append(Reset())
        elif verb is Verb.NOOP:
            self._send(replies.OK)
        elif verb is Verb.QUIT:
            self._quit()
        elif verb is Verb.VRFY:
            if not arg.strip(" "):
                raise CommandError(replies.VRFY_SYNTAX)
            self._send(replies.CANNOT_VRFY)
        elif verb is Verb.HELP:
            self._send(replies.HELP)
        elif verb is Verb.STARTTLS:
            self._starttls(arg)
        else:
            self._auth(arg)

    def _hello_command(self, name: str, *, esmtp: bool) -> None:
        self._reset_transaction()  # RFC 5321 §4.1.4: HELO/EHLO implies RSET
        self._hello = name
        self._esmtp = esmtp
        self._phase = next_phase(self._phase, Transition.HELLO)
        lines = [self.settings.hostname, *(self._extensions() if esmtp else [])]
        self._send(Reply(250, None, "\n".join(lines)))
        self._events.append(Hello(esmtp=esmtp, name=name))

    def _rcpt(self, arg: str) -> None:
        if self._rcpts >= self.settings.max_recipients:
            # Not counted as an error: a large pipelined list must not cut the session.
            self._send(replies.TOO_MANY_RECIPIENTS)
            self._tell_limit("max_recipients", replies.TOO_MANY_RECIPIENTS)
            return
        smtputf8 = self._mail is not None and self._mail.smtputf8
        domain = self.settings.postmaster_domain or self.settings.hostname
        self._pause(parse_rcpt(arg, self._offered(), smtputf8=smtputf8, hostname=domain))

    def _data(self, arg: str) -> None:
        _no_arguments(arg)
        if self._mail is not None and self._mail.body == "BINARYMIME":
            raise CommandError(replies.BINARYMIME_NEEDS_BDAT)
        self._start_message()
        self._mode = _Mode.DATA
        self._send(replies.START_DATA)

    def _bdat(self, arg: str) -> None:
        size, last, error = parse_bdat(arg)
        if size is None:
            # Without the size the end of the chunk cannot be found, and its octets must
            # never be read as commands: the session cannot go on.
            self._send(replies.BDAT_SYNTAX)
            self._fatal(replies.LOST_SYNC, "BDAT without a readable chunk size")
            return
        if self._phase is Phase.RCPT:
            self._start_message()
        if error is None:
            if not self.settings.chunking:
                error = replies.NOT_IMPLEMENTED
            else:
                error = refusal(self._phase, Verb.BDAT)
        if error is None:
            if not self._esmtp:
                error = replies.SEND_EHLO_FIRST
            elif self._bdat_failure is not None:
                error = self._bdat_failure
            elif self._message.size + size > self.settings.max_message_size:
                error = replies.MESSAGE_TOO_BIG
        self._chunk_left = self._chunk_size = size
        self._chunk_last = last
        self._chunk_error = error
        self._mode = _Mode.CHUNK

    def _quit(self) -> None:
        self._send(replies.CLOSING)
        self._events.append(Quit())
        self._close(by_peer=False)

    def _starttls(self, arg: str) -> None:
        if not self._esmtp:
            raise CommandError(replies.SEND_EHLO_FIRST)
        _no_arguments(arg)
        self._send(replies.READY_FOR_TLS)
        if self._in:
            # RFC 3207 §4.2 / CVE-2011-0411: commands pipelined after STARTTLS came in
            # plaintext and must not run inside the TLS session.
            reason = f"{len(self._in)} octets pipelined after STARTTLS discarded"
            self._events.append(Violation(reason=reason))
            self._in.clear()
        self._mode = _Mode.TLS_WAIT
        self._events.append(StartTLS())

    def _auth(self, arg: str) -> None:
        if not self._esmtp:
            raise CommandError(replies.SEND_EHLO_FIRST)
        if self._user is not None:
            raise CommandError(replies.ALREADY_AUTHENTICATED)
        words = arg.split(" ")
        mechanism = words[0].upper()
        if not mechanism or len(words) > 2:
            raise CommandError(replies.AUTH_SYNTAX)
        if mechanism not in self.settings.auth_mechanisms:
            raise CommandError(replies.AUTH_UNKNOWN_MECHANISM)
        if not self._auth_offered():
            raise CommandError(replies.AUTH_NEEDS_TLS)
        initial = words[1] if len(words) == 2 else None
        sasl = self._sasl = SaslExchange(mechanism)
        self._sasl_step(lambda: sasl.start(initial))

    def _sasl_step(self, step: Callable[[], Reply | AuthRequest]) -> None:
        """One step of the SASL exchange: a 334 challenge, the credentials, or a failure."""
        try:
            result = step()
        except CommandError as exc:
            self._sasl = None
            self._fail(exc.reply)
            return
        if isinstance(result, Reply):
            self._send(result)
        else:
            self._sasl = None
            self._pause(result)


def _no_arguments(arg: str) -> None:
    if arg.strip(" "):
        raise CommandError(replies.NO_ARGUMENTS)


# Longest command line the trace writes whole (RFC 5321 §4.5.3.1.4 allows 512 octets).
_TRACE_LINE = 512


def traced_command(raw: bytes) -> str:
    """A command line as the protocol trace shows it: printable, and an AUTH command's
    initial response (a password, in PLAIN) left out."""
    text = raw[:_TRACE_LINE].decode("utf-8", "backslashreplace")
    word, _, rest = text.partition(" ")
    if word.upper() == "AUTH":
        mechanism, _, initial = rest.partition(" ")
        return f"{word} {mechanism}" + (" (initial response not written)" if initial else "")
    if len(raw) > _TRACE_LINE:
        text += f"… ({len(raw)} octets)"
    return text
