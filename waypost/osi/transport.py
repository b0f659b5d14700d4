"""RFC 1006 TPKT + ISO 8073 class 0 transport as a sans-I/O connection (h11 style).

    conn = TransportConnection(role=Role.RESPONDER)
    conn.receive_data(tcp_bytes)          # b"" is TCP EOF
    event = conn.next_event()             # an event or NEED_DATA
    tcp_out = conn.send(ConnectConfirm())

Every state change goes through `_TRANSITIONS`; a missing (state, input) is a
protocol error and leaves the connection in ERROR for good. A `RemoteProtocolError`
carries the DR or ER to send the peer (`send(err.hint)` is allowed in ERROR).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from waypost.osi.errors import (
    NEED_DATA,
    Layer,
    LocalProtocolError,
    NeedData,
    ProtocolError,
    RemoteProtocolError,
)
from waypost.osi.transport_events import (
    DEFAULT_TPDU_SIZE,
    DR_MISMATCHED_REFERENCES,
    DR_NEGOTIATION_FAILED,
    DR_NOT_SPECIFIED,
    DR_PROTOCOL_ERROR,
    ER_INVALID_PARAMETER_VALUE,
    ER_INVALID_TPDU_TYPE,
    TPDU_SIZES,
    ConnectConfirm,
    ConnectionClosed,
    ConnectRequest,
    Data,
    DisconnectRequest,
    Error,
    Event,
    LimitExceededError,
    MalformedTpduError,
    NegotiationError,
    TransportProtocolError,
    UnexpectedTpduError,
)
from waypost.osi.transport_tpdu import (
    CODE_CC,
    CODE_CR,
    CODE_DT,
    EOT,
    MAX_TPKT_LENGTH,
    TPKT_HEADER_LENGTH,
    TPKT_VERSION,
    ConnectTpdu,
    DataTpdu,
    DisconnectTpdu,
    ErrorTpdu,
    Tpdu,
    decode,
    encode,
    tpkt,
)

__all__ = [
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_TSDU_SIZE",
    "NEED_DATA",
    "ConnectConfirm",
    "ConnectRequest",
    "ConnectionClosed",
    "Data",
    "DisconnectRequest",
    "Error",
    "Event",
    "LimitExceededError",
    "LocalProtocolError",
    "MalformedTpduError",
    "NegotiationError",
    "RemoteProtocolError",
    "Role",
    "State",
    "TransportConnection",
    "TransportProtocolError",
    "TransportSettings",
    "UnexpectedTpduError",
]

DEFAULT_MAX_TSDU_SIZE: Final = 16 * 1024 * 1024
DEFAULT_MAX_BUFFERED_BYTES: Final = 1024 * 1024 + MAX_TPKT_LENGTH
#: TPKT header (version, reserved, length) and class 0 DT header (LI 2, code, EOT/NR);
#: a DT TPKT is at most 8192 + 4 octets, so the length always fits.
_DT_HEADER: Final = struct.Struct(">BBHBBB")


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class State(enum.Enum):
    IDLE = "idle"  # initiator, nothing sent yet
    LISTENING = "listening"  # responder, waiting for the CR
    CR_SENT = "cr-sent"
    CR_RECEIVED = "cr-received"
    OPEN = "open"
    CLOSED = "closed"  # DR/ER exchanged or TCP EOF seen
    ERROR = "error"


class Input(enum.Enum):
    SEND_CR = "send CR"
    SEND_CC = "send CC"
    SEND_DT = "send DT"
    SEND_DR = "send DR"
    SEND_ER = "send ER"
    RECV_CR = "receive CR"
    RECV_CC = "receive CC"
    RECV_DT = "receive DT"
    RECV_DR = "receive DR"
    RECV_ER = "receive ER"
    RECV_EOF = "receive EOF"


_TRANSITIONS: Final[dict[tuple[State, Input], State]] = {
    (State.IDLE, Input.SEND_CR): State.CR_SENT,
    (State.IDLE, Input.RECV_EOF): State.CLOSED,
    (State.LISTENING, Input.RECV_CR): State.CR_RECEIVED,
    (State.LISTENING, Input.RECV_EOF): State.CLOSED,
    (State.CR_SENT, Input.RECV_CC): State.OPEN,
    (State.CR_SENT, Input.RECV_DR): State.CLOSED,  # refused
    (State.CR_SENT, Input.RECV_ER): State.CLOSED,
    (State.CR_SENT, Input.RECV_EOF): State.CLOSED,
    (State.CR_RECEIVED, Input.SEND_CC): State.OPEN,
    (State.CR_RECEIVED, Input.SEND_DR): State.CLOSED,  # refuse
    (State.CR_RECEIVED, Input.SEND_ER): State.CLOSED,
    (State.CR_RECEIVED, Input.RECV_EOF): State.CLOSED,
    (State.OPEN, Input.SEND_DT): State.OPEN,
    (State.OPEN, Input.RECV_DT): State.OPEN,
    # Class 0 releases by closing TCP, but ISODE (and so PP) sends a DR first.
    (State.OPEN, Input.SEND_DR): State.CLOSED,
    (State.OPEN, Input.RECV_DR): State.CLOSED,
    (State.OPEN, Input.SEND_ER): State.CLOSED,
    (State.OPEN, Input.RECV_ER): State.CLOSED,
    (State.OPEN, Input.RECV_EOF): State.CLOSED,
    (State.CLOSED, Input.RECV_EOF): State.CLOSED,
    # The hint of a RemoteProtocolError may still be sent.
    (State.ERROR, Input.SEND_DR): State.ERROR,
    (State.ERROR, Input.SEND_ER): State.ERROR,
}

_SEND_INPUT: Final[dict[type, Input]] = {
    ConnectRequest: Input.SEND_CR,
    ConnectConfirm: Input.SEND_CC,
    Data: Input.SEND_DT,
    DisconnectRequest: Input.SEND_DR,
    Error: Input.SEND_ER,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSettings:
    """Named limits and local choices; the defaults suit X.400 P1."""

    max_tpdu_size: int = 2048  # the largest a responder accepts (class 0's maximum)
    max_tsdu_size: int = DEFAULT_MAX_TSDU_SIZE  # one reassembled TSDU
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES  # unparsed bytes from the peer
    max_tpkt_length: int = MAX_TPKT_LENGTH
    local_reference: int = 0x0001  # our SRC-REF; class 0 gives it no meaning

    def __post_init__(self) -> None:
        if self.max_tpdu_size not in TPDU_SIZES:
            raise ValueError(f"max_tpdu_size must be one of {TPDU_SIZES}")
        if not 0 < self.local_reference <= 0xFFFF:
            raise ValueError("local_reference must be 1..65535")
        if not 7 <= self.max_tpkt_length <= MAX_TPKT_LENGTH:
            raise ValueError(f"max_tpkt_length must be 7..{MAX_TPKT_LENGTH}")
        if self.max_tsdu_size < 0 or self.max_buffered_bytes < self.max_tpkt_length:
            raise ValueError("max_buffered_bytes must hold at least one TPKT")


class TransportConnection:
    """One side of one RFC 1006 connection."""

    def __init__(self, *, role: Role, settings: TransportSettings | None = None) -> None:
        self.role = role
        self.settings = settings or TransportSettings()
        self.state = State.IDLE if role is Role.INITIATOR else State.LISTENING
        self.tpdu_size = DEFAULT_TPDU_SIZE
        self.peer_reference = 0
        self._offered_size = DEFAULT_TPDU_SIZE
        self._buffer = bytearray()
        self._tsdu = bytearray()
        self._eof = False
        self._error: ProtocolError | None = None
        self._we_disconnected = False  # we sent the DR or ER that closed the connection

    # -- state ------------------------------------------------------------------------

    def _transition(self, inp: Input, *, local: bool) -> None:
        new = _TRANSITIONS.get((self.state, inp))
        if new is None:
            message = f"cannot {inp.value} in state {self.state.name} ({self.role.value})"
            old = self.state
            self.state = State.ERROR
            if local:
                raise LocalProtocolError(Layer.TRANSPORT, message)
            if old in (State.LISTENING, State.CR_SENT):
                hint: DisconnectRequest | Error = DisconnectRequest(reason=DR_PROTOCOL_ERROR)
            else:
                hint = Error(cause=ER_INVALID_TPDU_TYPE)
            raise UnexpectedTpduError(message, hint=hint)
        self.state = new

    def _fail(self, error: RemoteProtocolError) -> RemoteProtocolError:
        self.state = State.ERROR
        self._error = error
        return error

    # -- sending ----------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes to write to TCP for `event`."""
        inp = _SEND_INPUT.get(type(event))
        if inp is None:
            raise LocalProtocolError(Layer.TRANSPORT, f"cannot send {type(event).__name__}")
        self._transition(inp, local=True)
        if self.state is State.CLOSED and inp in (Input.SEND_DR, Input.SEND_ER):
            self._we_disconnected = True
        ref = self.settings.local_reference
        if isinstance(event, ConnectRequest):
            self._offered_size = event.max_tpdu_size
            return tpkt(
                encode(
                    ConnectTpdu(
                        code=CODE_CR,
                        dst_ref=0,
                        src_ref=ref,
                        class_option=0,
                        calling_tsel=event.calling_tsel or None,
                        called_tsel=event.called_tsel or None,
                        tpdu_size=event.max_tpdu_size,
                    )
                )
            )
        if isinstance(event, ConnectConfirm):
            self.tpdu_size = min(
                self._offered_size, self.settings.max_tpdu_size, event.max_tpdu_size
            )
            return tpkt(
                encode(
                    ConnectTpdu(
                        code=CODE_CC,
                        dst_ref=self.peer_reference,
                        src_ref=ref,
                        class_option=0,
                        calling_tsel=event.calling_tsel or None,
                        called_tsel=event.called_tsel or None,
                        tpdu_size=self.tpdu_size,
                    )
                )
            )
        if isinstance(event, Data):
            return self._segment(event.payload)
        if isinstance(event, DisconnectRequest):
            return tpkt(
                encode(
                    DisconnectTpdu(
                        dst_ref=self.peer_reference,
                        src_ref=ref,
                        reason=event.reason,
                        additional_info=event.additional_info,
                    )
                )
            )
        assert isinstance(event, Error)
        return tpkt(
            encode(
                ErrorTpdu(
                    dst_ref=self.peer_reference, cause=event.cause, invalid_tpdu=event.invalid_tpdu
                )
            )
        )

    def send_data(self, payload: bytes) -> bytes:
        """`send(Data(payload=payload))`, without the event: the data phase's path."""
        if self.state is not State.OPEN:
            return self.send(Data(payload=payload))  # the state machine's error
        return self._segment(payload)

    def _segment(self, payload: bytes) -> bytes:
        """DT TPDUs of at most the negotiated size carrying `payload`, in TPKTs: the
        same bytes as `tpkt(encode(DataTpdu(...)))` for each, with one join."""
        room = self.tpdu_size - 3
        size = len(payload)
        if size <= room:
            return _DT_HEADER.pack(TPKT_VERSION, 0, size + 7, 2, CODE_DT, EOT) + payload
        parts: list[bytes | memoryview] = []
        view = memoryview(payload)
        for start in range(0, size, room):
            chunk = view[start : start + room]
            eot = EOT if start + room >= size else 0
            parts += (_DT_HEADER.pack(TPKT_VERSION, 0, len(chunk) + 7, 2, CODE_DT, eot), chunk)
        return b"".join(parts)

    # -- receiving --------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes read from TCP; b"" means the peer closed its side."""
        if self._eof:
            if data:
                raise LocalProtocolError(Layer.TRANSPORT, "receive_data after EOF")
            return
        if not data:
            self._eof = True
            return
        self._buffer += data
        if len(self._buffer) > self.settings.max_buffered_bytes and self.state is not State.ERROR:
            raise self._fail(
                LimitExceededError(
                    f"more than {self.settings.max_buffered_bytes} unparsed octets buffered",
                    hint=DisconnectRequest(reason=DR_NOT_SPECIFIED),
                )
            )

    def next_event(self) -> Event | NeedData:
        """The next event from the peer, or NEED_DATA."""
        if self._error is not None:
            raise self._error
        if self.state is State.CR_RECEIVED and not self._eof:
            # Paused until we answer with CC or DR: the peer may not send before it
            # sees our CC, and its next TPDUs must be read at the negotiated size.
            return NEED_DATA
        try:
            while True:
                data = self._next_data()
                if data is not None:
                    return data
                tpdu = self._next_tpdu()
                if tpdu is None:
                    return self._at_end_of_data()
                event = self._handle(tpdu)
                if event is not None:
                    return event
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None

    def _at_end_of_data(self) -> Event | NeedData:
        if not self._eof:
            return NEED_DATA
        if self._buffer:
            raise MalformedTpduError(
                "TCP closed inside a TPKT", hint=DisconnectRequest(reason=DR_PROTOCOL_ERROR)
            )
        if self._tsdu:
            raise UnexpectedTpduError(
                "TCP closed inside a TSDU", hint=DisconnectRequest(reason=DR_PROTOCOL_ERROR)
            )
        self._transition(Input.RECV_EOF, local=False)
        return ConnectionClosed()

    def _next_data(self) -> Data | None:
        """The data phase's path: read well-formed DTs at the head of the buffer in
        place, and return the TSDU once one ends it; None when something else is
        there (or too little). What this leaves, `_next_tpdu` and `_handle` decode
        and judge: it takes only DTs they would take, and the same way."""
        buf = self._buffer
        while len(buf) >= 7 and self.state is State.OPEN:
            length = (buf[2] << 8) | buf[3]
            if not (
                buf[0] == TPKT_VERSION
                and buf[4] == 2  # LI
                and buf[5] == CODE_DT
                and not buf[6] & 0x7F  # TPDU-NR 0
                and 7 <= length <= len(buf)
                and length <= self.settings.max_tpkt_length
                and length - 4 <= self.tpdu_size
                and len(self._tsdu) + length - 7 <= self.settings.max_tsdu_size
            ):
                return None
            if not buf[6] & EOT:
                self._tsdu += buf[7:length]
                del buf[:length]
                continue
            if self._tsdu:
                self._tsdu += buf[7:length]
                payload = bytes(self._tsdu)
                self._tsdu.clear()
            else:
                payload = bytes(buf[7:length])  # a TSDU in one DT: no assembly
            del buf[:length]
            return Data(payload=payload)
        return None

    def _next_tpdu(self) -> Tpdu | None:
        buf = self._buffer
        if len(buf) < TPKT_HEADER_LENGTH:
            if buf and buf[0] != TPKT_VERSION:
                raise MalformedTpduError(
                    f"TPKT version {buf[0]}", hint=DisconnectRequest(reason=DR_PROTOCOL_ERROR)
                )
            return None
        if buf[0] != TPKT_VERSION:
            raise MalformedTpduError(
                f"TPKT version {buf[0]}", hint=DisconnectRequest(reason=DR_PROTOCOL_ERROR)
            )
        length = int.from_bytes(buf[2:4], "big")
        if length < TPKT_HEADER_LENGTH + 2:
            raise MalformedTpduError(
                f"TPKT length {length}", hint=DisconnectRequest(reason=DR_PROTOCOL_ERROR)
            )
        if length > self.settings.max_tpkt_length:
            raise LimitExceededError(
                f"TPKT of {length} octets exceeds {self.settings.max_tpkt_length}",
                hint=DisconnectRequest(reason=DR_PROTOCOL_ERROR),
            )
        if len(buf) < length:
            return None
        body = bytes(buf[TPKT_HEADER_LENGTH:length])
        del buf[:length]
        return decode(body)

    def _handle(self, tpdu: Tpdu) -> Event | None:
        if self.state is State.CLOSED and self._we_disconnected:
            return None  # sent before the peer saw our DR or ER: ignored until TCP closes
        if isinstance(tpdu, DataTpdu):
            self._transition(Input.RECV_DT, local=False)
            if len(tpdu.data) + 3 > self.tpdu_size:
                raise LimitExceededError(
                    f"DT of {len(tpdu.data) + 3} octets exceeds the TPDU size {self.tpdu_size}",
                    hint=Error(cause=ER_INVALID_PARAMETER_VALUE),
                )
            if len(self._tsdu) + len(tpdu.data) > self.settings.max_tsdu_size:
                raise LimitExceededError(
                    f"TSDU exceeds {self.settings.max_tsdu_size} octets",
                    hint=DisconnectRequest(reason=DR_NOT_SPECIFIED),
                )
            self._tsdu += tpdu.data
            if not tpdu.eot:
                return None
            payload = bytes(self._tsdu)
            self._tsdu.clear()
            return Data(payload=payload)
        if isinstance(tpdu, ConnectTpdu):
            return self._handle_connect(tpdu)
        if isinstance(tpdu, DisconnectTpdu):
            self._transition(Input.RECV_DR, local=False)
            self._tsdu.clear()
            return DisconnectRequest(reason=tpdu.reason, additional_info=tpdu.additional_info)
        self._transition(Input.RECV_ER, local=False)
        self._tsdu.clear()
        return Error(cause=tpdu.cause, invalid_tpdu=tpdu.invalid_tpdu)

    def _handle_connect(self, tpdu: ConnectTpdu) -> Event:
        is_cr = tpdu.code == CODE_CR
        self._transition(Input.RECV_CR if is_cr else Input.RECV_CC, local=False)
        size = tpdu.tpdu_size or DEFAULT_TPDU_SIZE
        calling = tpdu.calling_tsel or b""
        called = tpdu.called_tsel or b""
        if is_cr:
            self.peer_reference = tpdu.src_ref
            # Class 0 is acceptable if preferred or listed as an alternative (ISO 8073 6.5).
            if tpdu.class_option >> 4 != 0 and 0x00 not in {
                c >> 4 for c in tpdu.alternative_classes
            }:
                raise NegotiationError(
                    f"CR proposes class {tpdu.class_option >> 4}; only class 0 is supported",
                    hint=DisconnectRequest(reason=DR_NEGOTIATION_FAILED),
                )
            self._offered_size = size
            return ConnectRequest(calling_tsel=calling, called_tsel=called, max_tpdu_size=size)
        if tpdu.dst_ref != self.settings.local_reference:
            raise NegotiationError(
                f"CC for reference {tpdu.dst_ref:#06x}, not ours",
                hint=DisconnectRequest(reason=DR_MISMATCHED_REFERENCES),
            )
        if tpdu.class_option >> 4 != 0 or size > self._offered_size:
            raise NegotiationError(
                f"CC selects class {tpdu.class_option >> 4} and TPDU size {size}",
                hint=DisconnectRequest(reason=DR_NEGOTIATION_FAILED),
            )
        self.peer_reference = tpdu.src_ref
        self.tpdu_size = size
        return ConnectConfirm(calling_tsel=calling, called_tsel=called, max_tpdu_size=size)
