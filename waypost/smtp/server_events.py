"""The events the sans-I/O SMTP server hands to its driver, and the errors it raises."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from waypost.address import Mailbox
from waypost.message import Notify, Ret

BODY_TYPES = ("7BIT", "8BITMIME", "BINARYMIME")
AUTH_MECHANISMS = ("PLAIN", "LOGIN")


class LocalProtocolError(Exception):
    """The application or driver misused the state machine (never the peer's fault)."""


class Sentinel(enum.Enum):
    """What `next_event` returns when it has no event."""

    NEED_DATA = "NEED_DATA"
    PAUSED = "PAUSED"


NEED_DATA: Literal[Sentinel.NEED_DATA] = Sentinel.NEED_DATA
"""Feed more bytes with `receive_data` (first write out `data_to_send()`)."""

PAUSED: Literal[Sentinel.PAUSED] = Sentinel.PAUSED
"""Waiting for `accept`/`reject` of the pending event, or for `tls_started()`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """HELO (`esmtp=False`) or EHLO; already answered. Any transaction was reset."""

    esmtp: bool
    name: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("empty HELO/EHLO name")


@dataclass(frozen=True, slots=True, kw_only=True)
class MailFrom:
    """MAIL FROM, validated; needs accept/reject. `reverse_path` None is `<>`.

    `auth` is the RFC 4954 AUTH= value (xtext decoded); it is `"<>"` when the
    session is not authenticated, as RFC 4954 §5 asks of an untrusted client.
    """

    reverse_path: Mailbox | None
    size: int | None = None
    body: str | None = None
    smtputf8: bool = False
    ret: Ret | None = None
    envid: str | None = None
    auth: str | None = None

    def __post_init__(self) -> None:
        if self.body is not None and self.body not in BODY_TYPES:
            raise ValueError(f"unknown BODY type {self.body!r}")
        if self.size is not None and self.size < 0:
            raise ValueError("negative SIZE")


@dataclass(frozen=True, slots=True, kw_only=True)
class RcptTo:
    """RCPT TO, validated; needs accept/reject.

    `orcpt` is `addr-type;address` with the address xtext-decoded (a `utf-8`
    address type is kept as sent: it has its own encoding, RFC 6533 §3).
    """

    path: Mailbox
    notify: tuple[Notify, ...] = ()
    orcpt: str | None = None

    def __post_init__(self) -> None:
        if Notify.NEVER in self.notify and len(self.notify) > 1:
            raise ValueError("NOTIFY=NEVER cannot be combined with other values")


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageData:
    """The whole message, dot-unstuffed, CRLF line endings; needs accept/reject.

    Accept only once the message is durable: a 250 hands over responsibility
    (RFC 5321 §6.1). A failure here should be answered with 451 4.3.0.
    """

    content: bytes = field(repr=False)
    received_by_bdat: bool = False
    # Checked for bare CR and LF and found clean (all but BINARYMIME content).
    crlf: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLS:
    """220 is queued: write it out, upgrade the transport, then call `tls_started()`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRequest:
    """Credentials to check; needs accept (235) or reject (usually 535 5.7.8)."""

    mechanism: str
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if self.mechanism not in AUTH_MECHANISMS:
            raise ValueError(f"unknown mechanism {self.mechanism!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset:
    """RSET: the transaction was discarded (already answered)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Quit:
    """QUIT: 221 is queued; ConnectionClosed follows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """Something the peer did that an operator should see in the log; already answered.

    The connection goes on unless a ConnectionClosed follows.
    """

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The end: write out `data_to_send()` and close the transport.

    `by_peer` is True for an EOF from the client; `after` names the last command
    (or `CONNECT`), like Postfix's "lost connection after DATA".
    """

    by_peer: bool
    after: str


Event = (
    Hello
    | MailFrom
    | RcptTo
    | MessageData
    | StartTLS
    | AuthRequest
    | Reset
    | Quit
    | Violation
    | ConnectionClosed
)
Decidable = MailFrom | RcptTo | MessageData | AuthRequest
