"""Events and settings of the P1 association stack (`waypost.osi.stack`).

The bind argument/result/error and the MTS-APDUs are opaque BER bytes here:
the P1 codecs live above this layer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from waypost.osi.errors import NEED_DATA, Layer, LocalProtocolError, NeedData
from waypost.osi.rtse import (
    APPLICATION_PROTOCOL_P1_1988,
    MAX_APDU_SIZE,
    MAX_CHECKPOINT_SIZE,
    MAX_WINDOW_SIZE,
    AbortReason,
    DialogueMode,
    RefuseReason,
    SessionConnectionIdentifier,
)
from waypost.osi.rtse_transfer import Checkpoint
from waypost.osi.transport import TransportSettings

__all__ = [
    "NEED_DATA",
    "Abort",
    "Aborted",
    "Accept",
    "AcceptRecovery",
    "Accepted",
    "AssociationSettings",
    "Checkpoint",
    "ConfirmTransfer",
    "ConnectionClosed",
    "Event",
    "GiveTurn",
    "Layer",
    "LocalProtocolError",
    "Mode",
    "NeedData",
    "Open",
    "OpenRequest",
    "ReceiveEvent",
    "RecoverRequest",
    "Recovery",
    "Refuse",
    "Refused",
    "Release",
    "Released",
    "RequestTurn",
    "Resume",
    "Role",
    "Selectors",
    "SendEvent",
    "SessionConnectionIdentifier",
    "State",
    "Transfer",
    "TransferConfirmed",
    "TransferReceived",
    "TurnGiven",
    "TurnRequested",
]


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class Mode(enum.Enum):
    NORMAL_1988 = "1988"  # RTSE over ACSE + presentation
    X410 = "x410"  # X.410-1984: RTSE directly on session, PConnect/PAccept


class State(enum.Enum):
    IDLE = "IDLE"  # initiator: nothing sent; responder: waiting for the CR
    CONNECTING = "CONNECTING"  # initiator: CR or CN sent, waiting for CC / AC
    AWAIT_ACCEPT = "AWAIT_ACCEPT"  # responder: OpenRequest given, the user accepts or refuses
    OPEN = "OPEN"  # data phase
    RELEASING = "RELEASING"  # initiator: FN sent
    CLOSED = "CLOSED"  # released, refused or aborted: close TCP after data_to_send()
    ERROR = "ERROR"  # a protocol error: close TCP after data_to_send()


@dataclass(frozen=True, slots=True, kw_only=True)
class Selectors:
    """Addressing seen at each layer (None/empty when absent)."""

    calling_tsel: bytes = b""
    called_tsel: bytes = b""
    calling_ssel: bytes | None = None
    called_ssel: bytes | None = None
    calling_psel: bytes | None = None
    called_psel: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AssociationSettings:
    """Local choices and named limits; the defaults are the Exchange 5.5 connector's."""

    checkpoint_size: int = 30  # KiB; 0 = no checkpointing
    window_size: int = 5
    two_way_alternate: bool = False  # the initiator proposes TWA instead of monologue
    selectors: Selectors = field(default_factory=Selectors)
    application_protocol: int = APPLICATION_PROTOCOL_P1_1988  # X.410 mode RTORQ field
    max_tpdu_size: int = 2048
    transport: TransportSettings = field(default_factory=TransportSettings)
    max_tsdu_size: int = 1 << 20  # largest session TSDU (one RTTR segment + headers)
    max_session_buffered: int = 4 << 20
    max_apdu_size: int = MAX_APDU_SIZE  # largest reassembled APDU

    def __post_init__(self) -> None:
        if not 0 <= self.checkpoint_size <= MAX_CHECKPOINT_SIZE:
            raise ValueError(f"checkpoint_size must be 0..{MAX_CHECKPOINT_SIZE}")
        if not 1 <= self.window_size <= MAX_WINDOW_SIZE:
            raise ValueError(f"window_size must be 1..{MAX_WINDOW_SIZE}")
        if self.checkpoint_size * 1024 + 1024 > self.max_tsdu_size:
            raise ValueError("max_tsdu_size must hold one checkpoint of data")


# ----------------------------------------------------------------------------- sent


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery:
    """An interrupted transfer that a new association may resume: the session
    connection it was on, and the checkpoint the receiver had secured."""

    identifier: SessionConnectionIdentifier
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class Open:
    """Initiator: open the association carrying an MTABindArgument (BER).

    `connection_id` names this session connection (sent in the CN), so that a
    transfer interrupted on it can be recovered later. With `recover`, the
    association asks instead to recover that interrupted transfer (RTORQ
    connectionData recover): no bind; `Resume` then continues the transfer.
    """

    bind_argument: bytes
    connection_id: SessionConnectionIdentifier | None = None
    recover: Recovery | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    """Responder: accept the OpenRequest with an MTABindResult (BER)."""

    bind_result: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptRecovery:
    """Responder: accept a RecoverRequest; the peer resumes after `checkpoint` (what this
    side had received, from `Association.interrupted()` of the lost association)."""

    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse:
    """Responder: refuse the OpenRequest (RTORJ), optionally with an MTABindError (BER)."""

    bind_error: bytes | None = None
    reason: RefuseReason = RefuseReason.VALIDATION_FAILURE


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """Send one MTS-APDU (one activity)."""

    apdu: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """Initiator, on a recovered association: continue sending `apdu` (the same bytes as
    the interrupted Transfer) after the recovery's checkpoint."""

    apdu: bytes
    recovery: Recovery


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmTransfer:
    """Receiver: the last TransferReceived is durable; confirm it to the peer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestTurn:
    """Two-way-alternate: ask the peer for the turn (RT-TURN-PLEASE, an RTTP)."""

    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveTurn:
    """Two-way-alternate: give the turn to the peer (RT-TURN-GIVE, session Give Tokens)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """Initiator: orderly release (no transfer may be in progress)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Abort:
    """Abort the association (RTAB, through ACSE/presentation in 1988 mode)."""

    reason: AbortReason = AbortReason.USER_ERROR


# ----------------------------------------------------------------------------- received


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRequest:
    bind_argument: bytes
    checkpoint_size: int
    window_size: int
    dialogue_mode: DialogueMode
    application_protocol: int | None
    selectors: Selectors


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoverRequest:
    """Responder: the peer asks to recover the transfer interrupted on `identifier`."""

    identifier: SessionConnectionIdentifier
    checkpoint_size: int
    window_size: int
    dialogue_mode: DialogueMode
    selectors: Selectors


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    bind_result: bytes
    checkpoint_size: int
    window_size: int
    #: The responder accepted to recover (no bind result): send `Resume`.
    recovered: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    bind_error: bytes | None
    reason: RefuseReason | None
    #: Which layer refused: RTSE (an RTORJ), or a lower one (transport DR, session RF).
    layer: Layer = Layer.RTSE


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferReceived:
    apdu: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferConfirmed:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnRequested:
    priority: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnGiven:
    """We hold the turn now: we may Transfer (and the initiator may Release)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Aborted:
    layer: Layer
    reason: str
    #: True when the peer aborted; False when we detected its protocol error.
    by_peer: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """TCP (or the transport connection) is gone; nothing more will happen."""


#: What the user of an `Association` gives to `send()`.
SendEvent = (
    Open
    | Accept
    | AcceptRecovery
    | Refuse
    | Transfer
    | Resume
    | ConfirmTransfer
    | RequestTurn
    | GiveTurn
    | Release
    | Abort
)

#: What `Association.next_event()` gives back (besides NEED_DATA).
ReceiveEvent = (
    OpenRequest
    | RecoverRequest
    | Accepted
    | Refused
    | TransferReceived
    | TransferConfirmed
    | TurnRequested
    | TurnGiven
    | Released
    | Aborted
    | ConnectionClosed
)

Event = SendEvent | ReceiveEvent
