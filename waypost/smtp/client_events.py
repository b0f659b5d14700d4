"""The SMTP client's events and outcomes: small frozen records that
`waypost.smtp.client_protocol` hands to the delivery agent."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from waypost.handoff import Result
from waypost.smtp.client_wire import Capabilities, ReceivedReply


class LocalProtocolError(Exception):
    """The driver called a method that the session's state does not allow."""


class NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA
"""next_event() has nothing more until data_to_send() is written and a reply received."""


class CloseReason(enum.Enum):
    QUIT = "quit"  # we said QUIT
    REFUSED = "refused"  # greeting, EHLO/HELO refused, or 421 (service closing)
    LOST = "lost"  # connection_lost() or EOF
    TIMEOUT = "timeout"  # timeout()
    PROTOCOL_ERROR = "protocol-error"  # the server sent something that is not SMTP


_STATUS_CLASS = {Result.DELIVERED: "2", Result.DEFERRED: "4", Result.FAILED: "5"}


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientOutcome:
    """What became of one recipient of a transaction.

    `index` is the recipient's position in the list given to send_message();
    `detail` is the server's reply (`550 5.1.1 <x@y>: user unknown`) when
    `remote`, else our own explanation starting with its status code.
    """

    index: int
    result: Result
    status: str
    detail: str
    remote: bool = False

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError("negative recipient index")
        if self.status[:2] != _STATUS_CLASS[self.result] + ".":
            raise ValueError(f"status {self.status} does not fit a {self.result} outcome")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    """The session is open (after the greeting and EHLO/HELO, again after STARTTLS)."""

    capabilities: Capabilities
    greeting: ReceivedReply
    tls: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSReady:
    """The server said 220 to STARTTLS: upgrade the transport, then call tls_started()."""

    reply: ReceivedReply


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSRefused:
    """The server refused STARTTLS; the session goes on in clear text unless the driver quits."""

    reply: ReceivedReply


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionDone:
    """One outcome per recipient of the transaction, in recipient order.

    `dsn_unsupported`: DSN parameters (NOTIFY, RET, ENVID, ORCPT) were asked for
    but the server does not offer DSN, so they were not passed on; the caller
    owes the "relayed" DSNs itself (RFC 3461 §4.1, §6.2.1).
    """

    outcomes: tuple[RecipientOutcome, ...]
    dsn_unsupported: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed:
    """The session is over. Write what data_to_send() still returns, then close."""

    reason: CloseReason
    detail: str
    reply: ReceivedReply | None = None


Event = Ready | TLSReady | TLSRefused | TransactionDone | Closed
