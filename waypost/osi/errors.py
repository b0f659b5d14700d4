"""The errors every OSI layer raises, the layer names they carry, and the NEED_DATA sentinel.

One hierarchy for the whole stack (as h11 and h2 have): a `LocalProtocolError` is
our misuse of a layer and sends nothing; a `RemoteProtocolError` is the peer's
fault and carries what the layer that found it answers. Anything else raised
inside a layer is a bug of ours and propagates.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

if TYPE_CHECKING:
    from waypost.osi.rtse import RTAB
    from waypost.osi.transport_events import DisconnectRequest, Error

__all__ = [
    "NEED_DATA",
    "Layer",
    "LocalProtocolError",
    "NeedData",
    "PeerAbort",
    "ProtocolError",
    "RemoteProtocolError",
]


class NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final[Literal[NeedData.NEED_DATA]] = NeedData.NEED_DATA
"""Returned by every layer's `next_event()` when more bytes from the peer are needed."""


class Layer(enum.Enum):
    """The layer an abort came from (peer abort) or was detected in (protocol error)."""

    TRANSPORT = "transport"
    SESSION = "session"
    PRESENTATION = "presentation"
    ACSE = "acse"
    RTSE = "rtse"
    USER = "user"  # this side's user asked for the abort


#: What a layer answers a peer's protocol error with, in that layer's own terms:
#: transport, the DR or ER to send (ISO 8073 6.6, 6.22); session, the AB SPDU's
#: TSDU (X.225 7.9); presentation, the ARP PPDU for the AB user data (X.226 6.4.4);
#: ACSE, the ABRT APDU (X.227 7.3); RTSE, the RTAB (X.228 8.1.5). None: the
#: association builds that layer's usual protocol-error abort.
PeerAbort: TypeAlias = "DisconnectRequest | Error | bytes | RTAB | None"


class ProtocolError(Exception):
    """Base of the OSI errors: `layer` is where the fault was found."""

    def __init__(self, layer: Layer, message: str) -> None:
        super().__init__(message)
        self.layer = layer


class LocalProtocolError(ProtocolError):
    """We misused a layer (an event its state or role forbids, a value out of range)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol at `layer`: send it `abort` and close.

    `path` and `offset` locate the fault in the PDU when a decoder found it.
    """

    def __init__(
        self,
        layer: Layer,
        message: str,
        *,
        abort: PeerAbort = None,
        path: str = "$",
        offset: int = 0,
    ) -> None:
        super().__init__(layer, message)
        self.abort = abort
        self.path = path
        self.offset = offset
