"""A sans-I/O SMTP client (RFC 5321, with PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN,
STARTTLS and CHUNKING), and LMTP client (RFC 2033, `lmtp=True`): bytes in, events out, one
outcome per recipient.

No socket, clock, TLS or logging inside: the delivery agent owns them and drives
the machine like this::

    client = ClientConnection(local_hostname="mx.example.org")
    while True:
        event = client.next_event()
        if event is NEED_DATA:
            write(client.data_to_send())
            client.receive_data(await read())  # b"" at EOF; client.timeout() when none came
        elif isinstance(event, Ready):          # greeting + EHLO (or HELO) done
            client.send_message(envelope, content)  # or client.start_tls(), client.quit()
        elif isinstance(event, TLSReady):       # 220 to STARTTLS
            upgrade_the_transport(); client.tls_started()  # then a new EHLO and Ready
        elif isinstance(event, TLSRefused):     # go on in clear text, or quit()
            ...
        elif isinstance(event, TransactionDone):  # event.outcomes: one per recipient
            record(event.outcomes); client.send_message(...) or client.quit()
        elif isinstance(event, Closed):         # nothing more will happen
            write(client.data_to_send()); close(); break

The API: `ClientConnection(*, local_hostname, prefer_chunking=False, lmtp=False,
max_reply_line=2048, max_reply_lines=100)`; `receive_data(bytes)`,
`next_event() -> Event | NEED_DATA`, `data_to_send() -> bytes`;
`send_message(envelope, content, recipients=None)` (recipients default to the
envelope's; outcomes carry each one's index in that list), `start_tls()`,
`tls_started()`, `quit()`, `connection_lost()`, `timeout()`; `state`,
`capabilities`, `tls`, and `waiting_for` (which reply is awaited: the driver
picks its timeout from it, RFC 5321 §4.5.3.2). Events and outcomes are in
`waypost.smtp.client_events`, replies, capabilities and commands in
`waypost.smtp.client_wire`; all are re-exported here.

A transaction's outcomes are final as reported: each recipient is delivered
(2xx after the data), deferred (4xx, or the connection lost, timed out or
garbled before its outcome was known) or failed (5xx, or refused here before
sending: SIZE over the server's limit, SMTPUTF8 or BINARYMIME needed and not
offered, control characters in an address). When the connection is lost after
the end of data but before the reply, the message may have been accepted: the
recipients are deferred (at least once, never lost) and the detail says so.
With PIPELINING, MAIL, every RCPT and DATA go in one write; if no RCPT was
accepted and the server still answers DATA with 354, a lone "." ends the data
(RFC 2920 §3.1). A transaction that ended before its data is followed by RSET
before the next command; QUIT needs none.

Peer input never raises: a malformed reply closes the session with
`Closed(reason=CloseReason.PROTOCOL_ERROR)`, after a TransactionDone for the
transaction in flight. Calling a method in the wrong state raises
LocalProtocolError — the driver's bug.

Content is sent as stored, with one change on the DATA path: bare CR and bare
LF become CRLF (and a final CRLF is added), so that nothing in the content can
end the data early or be read differently by the next hop (SMTP smuggling).
BINARYMIME content goes only by BDAT, byte for byte. No 8-bit to 7-bit
downgrade is done: 8-bit content goes to a server without 8BITMIME as it is.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from waypost.handoff import Result
from waypost.message import Envelope, Recipient
from waypost.smtp.client_events import (
    NEED_DATA,
    Closed,
    CloseReason,
    Event,
    LocalProtocolError,
    NeedData,
    Ready,
    RecipientOutcome,
    TLSReady,
    TLSRefused,
    TransactionDone,
)
from waypost.smtp.client_wire import (
    Capabilities,
    Plan,
    ReceivedReply,
    ReplyError,
    ReplyReader,
    parse_ehlo,
    plan_transaction,
)

__all__ = [
    "NEED_DATA",
    "Capabilities",
    "ClientConnection",
    "ClientState",
    "CloseReason",
    "Closed",
    "Event",
    "LocalProtocolError",
    "NeedData",
    "Ready",
    "ReceivedReply",
    "RecipientOutcome",
    "TLSReady",
    "TLSRefused",
    "TransactionDone",
]


class ClientState(enum.Enum):
    GREETING = "greeting"  # waiting for the server's 220
    HELLO = "hello"  # EHLO (or HELO) sent
    READY = "ready"  # idle: send_message(), start_tls() or quit()
    STARTTLS = "starttls"  # STARTTLS sent
    TLS_HANDSHAKE = "tls-handshake"  # 220 came: the driver upgrades, then tls_started()
    TRANSACTION = "transaction"  # MAIL … end of data in flight
    QUIT = "quit"  # QUIT sent
    CLOSED = "closed"


class _Cmd(enum.Enum):
    GREETING = "the greeting"
    EHLO = "EHLO"
    LHLO = "LHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    RSET = "RSET"
    MAIL = "MAIL FROM"
    RCPT = "RCPT TO"
    DATA = "DATA"
    END = "the end of data"
    # RFC 2033 §4.2: after the end of data an LMTP server replies once for each recipient
    # it accepted, in the order of their RCPT commands.
    RCPT_END = "the end of data (a recipient's reply)"
    DISCARD = "the empty end of data"
    QUIT = "QUIT"


@dataclass(slots=True, kw_only=True)
class _Transaction:
    plan: Plan
    outcomes: dict[int, RecipientOutcome] = field(default_factory=dict)
    accepted: list[int] = field(default_factory=list)
    mail_refused: ReceivedReply | None = None
    next_rcpt: int = 0
    # LMTP: how many replies to the end of data are still to come.
    replies_owed: int = 0

    def refuse(self, indexes: Sequence[int], reply: ReceivedReply) -> None:
        result = Result.DEFERRED if reply.code < 500 else Result.FAILED
        for index in indexes:
            self.outcomes[index] = RecipientOutcome(
                index=index, result=result, status=reply.status, detail=str(reply), remote=True
            )


def _delivered(index: int, reply: ReceivedReply) -> RecipientOutcome:
    return RecipientOutcome(
        index=index, result=Result.DELIVERED, status=reply.status, detail=str(reply), remote=True
    )


def _local(index: int, result: Result, detail: str) -> RecipientOutcome:
    return RecipientOutcome(
        index=index, result=result, status=detail.split(maxsplit=1)[0], detail=detail
    )


class ClientConnection:
    """One SMTP client session; see the module docstring for how a driver uses it."""

    def __init__(
        self,
        *,
        local_hostname: str,
        prefer_chunking: bool = False,
        max_reply_line: int = 2048,
        max_reply_lines: int = 100,
        lmtp: bool = False,
    ) -> None:
        if not local_hostname or not local_hostname.isprintable() or " " in local_hostname:
            raise ValueError(f"bad local host name {local_hostname!r}")
        self.local_hostname = local_hostname
        self.lmtp = lmtp
        # LMTP sends the data after DATA's 354, when the recipients accepted are known and
        # so is the number of replies that will follow it (never BDAT … LAST, pipelined).
        self.prefer_chunking = prefer_chunking and not lmtp
        self.state = ClientState.GREETING
        self.capabilities = Capabilities()
        self.tls = False
        self._reader = ReplyReader(max_line=max_reply_line, max_lines=max_reply_lines)
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._pending: deque[tuple[_Cmd, int]] = deque([(_Cmd.GREETING, -1)])
        self._greeting: ReceivedReply | None = None
        self._transaction: _Transaction | None = None
        self._needs_rset = False
        self._after_rset: tuple[_Cmd, bytes] | None = None
        self._current: _Cmd | None = None
        # What was sent and read, for the protocol trace, when the driver asks for it (a
        # list it empties): (`>` or `<`, a line); the content as its size.
        self.trace: list[tuple[str, str]] | None = None

    # --- what the driver calls -------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server; b"" means the server closed the connection."""
        if self.state is ClientState.CLOSED:
            return
        if not data:
            self.connection_lost()
            return
        if self.state is ClientState.TLS_HANDSHAKE:
            self._close(CloseReason.PROTOCOL_ERROR, "clear-text data after 220 to STARTTLS")
            return
        self._reader.feed(data)
        while self.state not in (ClientState.CLOSED, ClientState.TLS_HANDSHAKE):
            try:
                reply = self._reader.next_reply()
            except ReplyError as exc:
                self._close(CloseReason.PROTOCOL_ERROR, f"protocol error: {exc}")
                return
            if reply is None:
                return
            if self.trace is not None:
                last = len(reply.lines) - 1
                self.trace += [
                    ("<", f"{reply.code}{' ' if i == last else '-'}{line}")
                    for i, line in enumerate(reply.lines)
                ]
            self._on_reply(reply)

    def next_event(self) -> Event | Literal[NeedData.NEED_DATA]:
        """The next event, or NEED_DATA. After Closed there are no more events."""
        return self._events.popleft() if self._events else NEED_DATA

    def data_to_send(self) -> bytes:
        """Bytes to write to the server now (possibly none)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def waiting_for(self) -> str | None:
        """What the reply being awaited answers (for the driver's timeouts), if any."""
        return self._pending[0][0].value if self._pending else None

    def send_message(
        self, envelope: Envelope, content: bytes, recipients: Sequence[Recipient] | None = None
    ) -> None:
        """Start a transaction for `recipients` (default: all the envelope's recipients)."""
        self._require(ClientState.READY)
        rcpts = list(envelope.recipients if recipients is None else recipients)
        if not rcpts:
            raise LocalProtocolError("a transaction needs at least one recipient")
        plan = plan_transaction(
            self.capabilities, envelope, content, rcpts, chunking=self.prefer_chunking
        )
        transaction = _Transaction(plan=plan)
        for index, detail in plan.refused:
            transaction.outcomes[index] = _local(index, Result.FAILED, detail)
        if not plan.rcpts:
            self._finish(transaction)
            return
        self.state = ClientState.TRANSACTION
        self._transaction = transaction
        self._begin(_Cmd.MAIL, plan.mail)
        if self.capabilities.pipelining:
            for index, command in plan.rcpts:
                self._send(_Cmd.RCPT, command, index)
            self._send_data_command(transaction)

    def start_tls(self) -> None:
        """Send STARTTLS (RFC 3207); a TLSReady or TLSRefused event follows."""
        self._require(ClientState.READY)
        if self.tls or not self.capabilities.starttls:
            raise LocalProtocolError("STARTTLS is not offered, or TLS is already on")
        self.state = ClientState.STARTTLS
        self._begin(_Cmd.STARTTLS, b"STARTTLS\r\n")

    def tls_started(self) -> None:
        """The transport is now TLS: forget what the server said and say EHLO again."""
        self._require(ClientState.TLS_HANDSHAKE)
        self.tls = True
        self.capabilities = Capabilities()
        self._reader.clear()
        self._hello()

    def quit(self) -> None:
        """Say QUIT; Closed(reason=QUIT) follows the server's reply (or its EOF)."""
        self._require(ClientState.READY)
        self.state = ClientState.QUIT
        self._send(_Cmd.QUIT, b"QUIT\r\n")

    def connection_lost(self) -> None:
        """The transport failed or the server closed it."""
        if self.state is ClientState.QUIT:
            self._close(CloseReason.QUIT, "connection closed after QUIT")
        elif self.state is not ClientState.CLOSED:
            self._close(CloseReason.LOST, "connection lost")

    def timeout(self) -> None:
        """No reply came in time: the session is over."""
        if self.state is not ClientState.CLOSED:
            self._close(CloseReason.TIMEOUT, "timeout")

    # --- inside ----------------------------------------------------------------

    def _require(self, state: ClientState) -> None:
        if self.state is not state:
            raise LocalProtocolError(f"not allowed in state {self.state.value}")

    def _send(self, cmd: _Cmd, data: bytes, index: int = -1) -> None:
        self._out += data
        self._pending.append((cmd, index))
        if self.trace is not None:
            self.trace += [(">", line) for line in _traced(cmd, data)]

    def _begin(self, cmd: _Cmd, data: bytes) -> None:
        # A transaction that ended before its data needs RSET before the next command;
        # without PIPELINING the command waits for RSET's reply.
        if self._needs_rset:
            self._send(_Cmd.RSET, b"RSET\r\n")
            if not self.capabilities.pipelining:
                self._after_rset = (cmd, data)
                return
        self._send(cmd, data)

    def _hello(self) -> None:
        self.state = ClientState.HELLO
        if self.lmtp:
            self._send(_Cmd.LHLO, f"LHLO {self.local_hostname}\r\n".encode())  # RFC 2033 §4.1
        else:
            self._send(_Cmd.EHLO, f"EHLO {self.local_hostname}\r\n".encode())

    def _send_data_command(self, transaction: _Transaction) -> None:
        if not transaction.plan.chunked:
            self._send(_Cmd.DATA, transaction.plan.data)
        else:
            self._send(_Cmd.END, transaction.plan.data)  # BDAT … LAST: its reply ends the data

    def _finish(self, transaction: _Transaction) -> None:
        self._transaction = None
        if self.state is ClientState.TRANSACTION:
            self.state = ClientState.READY
        outcomes = tuple(transaction.outcomes[i] for i in sorted(transaction.outcomes))
        self._events.append(
            TransactionDone(outcomes=outcomes, dsn_unsupported=transaction.plan.dsn_unsupported)
        )

    def _close(self, reason: CloseReason, detail: str, reply: ReceivedReply | None = None) -> None:
        transaction = self._transaction
        if transaction is not None:
            waiting = self._current or (self._pending[0][0] if self._pending else _Cmd.END)
            if reply is not None:
                remaining = [i for i, _ in transaction.plan.rcpts if i not in transaction.outcomes]
                transaction.refuse(remaining, reply)
            else:
                what = f"4.4.2 {detail} after {waiting.value}"
                if reason is CloseReason.PROTOCOL_ERROR:
                    what = f"4.5.0 {detail} (after {waiting.value})"
                if waiting is _Cmd.END or waiting is _Cmd.RCPT_END:
                    what += (
                        ", before the server's reply: the message may have been"
                        " accepted, and may be delivered twice"
                    )
                for index, _ in transaction.plan.rcpts:
                    if index not in transaction.outcomes:
                        transaction.outcomes[index] = _local(index, Result.DEFERRED, what)
            self._finish(transaction)
        self.state = ClientState.CLOSED
        self._pending.clear()
        self._reader.clear()
        self._events.append(Closed(reason=reason, detail=detail, reply=reply))

    def _refused(self, reply: ReceivedReply, what: str) -> None:
        if reply.code != 421:
            self._out += b"QUIT\r\n"  # RFC 5321 §3.1: a polite end even when refused
        self._close(CloseReason.REFUSED, f"{what}: {reply}", reply)

    def _on_reply(self, reply: ReceivedReply) -> None:
        if not self._pending:
            if reply.code == 421:
                self._close(CloseReason.REFUSED, f"service closing: {reply}", reply)
            else:
                self._close(CloseReason.PROTOCOL_ERROR, f"protocol error: unexpected {reply}")
            return
        cmd, index = self._pending.popleft()
        self._current = cmd
        if reply.code == 421 and cmd is not _Cmd.QUIT:
            self._close(CloseReason.REFUSED, f"service closing: {reply}", reply)
        elif reply.code // 100 == 3 and cmd is not _Cmd.DATA:
            self._close(CloseReason.PROTOCOL_ERROR, f"protocol error: {reply} to {cmd.value}")
        else:
            _HANDLERS[cmd](self, reply, index)
        self._current = None

    def _on_greeting(self, reply: ReceivedReply, _: int) -> None:
        if reply.code == 220:
            self._greeting = reply
            self._hello()
        elif reply.code // 100 == 2:
            self._close(CloseReason.PROTOCOL_ERROR, f"protocol error: greeting {reply}")
        else:
            self._refused(reply, "greeting refused")

    def _on_ehlo(self, reply: ReceivedReply, _: int) -> None:
        if self.lmtp:
            # No HELO to fall back on in LMTP; and its data never goes by BDAT (see above).
            self._opened(reply, dataclasses.replace(parse_ehlo(reply), chunking=False))
        elif reply.code // 100 == 5:
            self._send(_Cmd.HELO, f"HELO {self.local_hostname}\r\n".encode())
        else:
            self._opened(reply, parse_ehlo(reply))

    def _on_helo(self, reply: ReceivedReply, _: int) -> None:
        self._opened(reply, Capabilities())

    def _opened(self, reply: ReceivedReply, capabilities: Capabilities) -> None:
        if reply.code // 100 != 2 or self._greeting is None:
            self._refused(reply, "LHLO refused" if self.lmtp else "EHLO/HELO refused")
            return
        self.capabilities = capabilities
        self.state = ClientState.READY
        self._events.append(Ready(capabilities=capabilities, greeting=self._greeting, tls=self.tls))

    def _on_starttls(self, reply: ReceivedReply, _: int) -> None:
        if reply.code != 220:
            self.state = ClientState.READY
            self._events.append(TLSRefused(reply=reply))
        elif self._reader.has_pending:
            # Anything pipelined after the 220 was sent in clear text: an injection.
            self._close(CloseReason.PROTOCOL_ERROR, "protocol error: data after 220 to STARTTLS")
        else:
            self.state = ClientState.TLS_HANDSHAKE
            self._events.append(TLSReady(reply=reply))

    def _on_rset(self, reply: ReceivedReply, _: int) -> None:
        if reply.code // 100 != 2:
            self._close(CloseReason.PROTOCOL_ERROR, f"protocol error: {reply} to RSET")
            return
        self._needs_rset = False
        if self._after_rset is not None:
            self._send(*self._after_rset)
            self._after_rset = None

    def _on_mail(self, reply: ReceivedReply, _: int) -> None:
        transaction = self._transaction
        assert transaction is not None
        self._needs_rset = True
        if reply.code // 100 == 2:
            self._next_rcpt(transaction)
            return
        transaction.mail_refused = reply
        if not self.capabilities.pipelining:
            transaction.refuse([i for i, _ in transaction.plan.rcpts], reply)
            self._finish(transaction)

    def _on_rcpt(self, reply: ReceivedReply, index: int) -> None:
        transaction = self._transaction
        assert transaction is not None
        if transaction.mail_refused is not None:
            transaction.refuse([index], transaction.mail_refused)
        elif reply.code // 100 == 2:
            transaction.accepted.append(index)
        else:
            transaction.refuse([index], reply)
        self._next_rcpt(transaction)

    def _next_rcpt(self, transaction: _Transaction) -> None:
        if self.capabilities.pipelining:
            return
        if transaction.next_rcpt < len(transaction.plan.rcpts):
            index, command = transaction.plan.rcpts[transaction.next_rcpt]
            transaction.next_rcpt += 1
            self._send(_Cmd.RCPT, command, index)
        elif transaction.accepted:
            self._send_data_command(transaction)
        else:
            self._finish(transaction)

    def _on_data(self, reply: ReceivedReply, _: int) -> None:
        transaction = self._transaction
        assert transaction is not None
        if reply.code == 354:
            if transaction.accepted and self.lmtp:
                self._send_lmtp_content(transaction)
            elif transaction.accepted:
                self._send(_Cmd.END, transaction.plan.content)
            else:
                # RFC 2920 §3.1: every RCPT was refused, yet DATA was accepted:
                # end the data at once, with nothing in it.
                self._send(_Cmd.DISCARD, b".\r\n")
        elif reply.code // 100 in (2, 3):
            self._close(CloseReason.PROTOCOL_ERROR, f"protocol error: {reply} to DATA")
        else:
            transaction.refuse(transaction.accepted, reply)
            self._finish(transaction)

    def _on_end(self, reply: ReceivedReply, _: int) -> None:
        transaction = self._transaction
        assert transaction is not None
        if transaction.accepted and transaction.mail_refused is None:
            if reply.code // 100 == 2:
                self._needs_rset = False
                for index in transaction.accepted:
                    transaction.outcomes[index] = _delivered(index, reply)
            else:
                transaction.refuse(transaction.accepted, reply)
        self._finish(transaction)

    def _send_lmtp_content(self, transaction: _Transaction) -> None:
        self._out += transaction.plan.content
        if self.trace is not None:
            self.trace += [(">", line) for line in _traced(_Cmd.END, transaction.plan.content)]
        transaction.replies_owed = len(transaction.accepted)
        self._pending.extend((_Cmd.RCPT_END, index) for index in transaction.accepted)

    def _on_rcpt_end(self, reply: ReceivedReply, index: int) -> None:
        transaction = self._transaction
        assert transaction is not None
        if reply.code // 100 == 2:
            transaction.outcomes[index] = _delivered(index, reply)
        else:
            transaction.refuse([index], reply)
        transaction.replies_owed -= 1
        if transaction.replies_owed == 0:
            self._needs_rset = False
            self._finish(transaction)

    def _on_quit(self, reply: ReceivedReply, _: int) -> None:
        if self._reader.has_pending:
            self._close(CloseReason.PROTOCOL_ERROR, f"protocol error: data after {reply}")
        else:
            self._close(CloseReason.QUIT, str(reply), reply)


_HANDLERS = {
    _Cmd.GREETING: ClientConnection._on_greeting,
    _Cmd.EHLO: ClientConnection._on_ehlo,
    _Cmd.LHLO: ClientConnection._on_ehlo,
    _Cmd.HELO: ClientConnection._on_helo,
    _Cmd.STARTTLS: ClientConnection._on_starttls,
    _Cmd.RSET: ClientConnection._on_rset,
    _Cmd.MAIL: ClientConnection._on_mail,
    _Cmd.RCPT: ClientConnection._on_rcpt,
    _Cmd.DATA: ClientConnection._on_data,
    _Cmd.END: ClientConnection._on_end,
    _Cmd.RCPT_END: ClientConnection._on_rcpt_end,
    _Cmd.DISCARD: ClientConnection._on_end,
    _Cmd.QUIT: ClientConnection._on_quit,
}


def _traced(cmd: _Cmd, data: bytes) -> list[str]:
    """What the protocol trace shows of what one command sent: its lines, or for the
    content its size."""
    if cmd is _Cmd.END or cmd is _Cmd.DISCARD:
        first, _, rest = data.partition(b"\r\n")
        if first[:4].upper() == b"BDAT":
            return [f"{first.decode('ascii', 'backslashreplace')} (content, {len(rest)} octets)"]
        return [f"(content, {len(data)} octets)"]
    return [line.decode("utf-8", "backslashreplace") for line in data.splitlines()]
