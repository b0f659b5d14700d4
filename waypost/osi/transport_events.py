"""Events, errors and constants of the RFC 1006 / ISO 8073 class 0 transport layer.

The same event classes are sent and received (h11/wsproto style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from waypost.osi.errors import Layer, RemoteProtocolError

# TPDU sizes (ISO 8073 13.3.4 b): parameter code 0x07 = 128 octets ... 0x0D = 8192.
TPDU_SIZES: Final = tuple(1 << code for code in range(7, 14))
DEFAULT_TPDU_SIZE: Final = 128  # class 0 when the CR/CC carries no TPDU-size parameter
MAX_TSEL_LENGTH: Final = 32  # a TSAP-ID parameter; the CR's LI (<= 254) bounds them all anyway

# DR reasons (ISO 8073 13.5.3 e).
DR_NOT_SPECIFIED: Final = 0x00
DR_CONGESTION: Final = 0x01
DR_SESSION_NOT_ATTACHED: Final = 0x02
DR_ADDRESS_UNKNOWN: Final = 0x03
DR_NORMAL: Final = 0x80
DR_NEGOTIATION_FAILED: Final = 0x82
DR_MISMATCHED_REFERENCES: Final = 0x84
DR_PROTOCOL_ERROR: Final = 0x85
DR_HEADER_OR_PARAMETER_LENGTH_INVALID: Final = 0x8A

# ER reject causes (ISO 8073 13.12.3 c).
ER_NOT_SPECIFIED: Final = 0x00
ER_INVALID_PARAMETER_CODE: Final = 0x01
ER_INVALID_TPDU_TYPE: Final = 0x02
ER_INVALID_PARAMETER_VALUE: Final = 0x03


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be 0..255, not {value}")


def _check_tsel(name: str, value: bytes) -> None:
    if len(value) > MAX_TSEL_LENGTH:
        raise ValueError(f"{name} longer than {MAX_TSEL_LENGTH} octets")


def _check_tpdu_size(value: int) -> None:
    if value not in TPDU_SIZES:
        raise ValueError(f"max_tpdu_size must be one of {TPDU_SIZES}, not {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectRequest:
    """CR: T-CONNECT request / indication."""

    calling_tsel: bytes = b""
    called_tsel: bytes = b""
    max_tpdu_size: int = 2048

    def __post_init__(self) -> None:
        _check_tsel("calling_tsel", self.calling_tsel)
        _check_tsel("called_tsel", self.called_tsel)
        _check_tpdu_size(self.max_tpdu_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectConfirm:
    """CC: T-CONNECT response / confirm.

    When sent, `max_tpdu_size` is an upper bound: the CC carries the smallest of it,
    the size the CR offered and `TransportSettings.max_tpdu_size`. When received,
    it is the negotiated size.
    """

    calling_tsel: bytes = b""
    called_tsel: bytes = b""
    max_tpdu_size: int = 8192

    def __post_init__(self) -> None:
        _check_tsel("calling_tsel", self.calling_tsel)
        _check_tsel("called_tsel", self.called_tsel)
        _check_tpdu_size(self.max_tpdu_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Data:
    """One complete TSDU (segmented into DT TPDUs on the wire)."""

    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectRequest:
    """DR: refuses a CR, or (as ISODE/PP do) announces a normal release."""

    reason: int = DR_NORMAL
    additional_info: bytes = b""

    def __post_init__(self) -> None:
        _check_byte("reason", self.reason)
        if len(self.additional_info) > 200:
            raise ValueError("additional_info longer than 200 octets")


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """ER: the peer's TPDU was rejected; class 0 then releases the connection."""

    cause: int = ER_NOT_SPECIFIED
    invalid_tpdu: bytes = b""

    def __post_init__(self) -> None:
        _check_byte("cause", self.cause)
        if len(self.invalid_tpdu) > 200:
            raise ValueError("invalid_tpdu longer than 200 octets")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The peer closed TCP (the class 0 way to release a connection)."""


Event = ConnectRequest | ConnectConfirm | Data | DisconnectRequest | Error | ConnectionClosed
Reply = DisconnectRequest | Error


class TransportProtocolError(RemoteProtocolError):
    """The peer broke the transport protocol; `hint` (the error's `abort`) is the DR or
    ER to send it before closing TCP."""

    def __init__(self, message: str, *, hint: Reply) -> None:
        super().__init__(Layer.TRANSPORT, message, abort=hint)
        self.hint = hint


class MalformedTpduError(TransportProtocolError):
    """A TPKT or TPDU could not be decoded."""


class UnexpectedTpduError(TransportProtocolError):
    """A well-formed TPDU arrived in a state where it is not allowed."""


class NegotiationError(TransportProtocolError):
    """The peer asked for something class 0 cannot give (another class, a bad size)."""


class LimitExceededError(TransportProtocolError):
    """The peer exceeded one of the named limits of `TransportSettings`."""
