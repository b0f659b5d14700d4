"""ISO 8327-1 / X.225 session layer, sans-I/O: the subset X.400 P1 (RTSE) needs.

Feed whole TSDUs with receive_tsdu() (b"" = transport closed), read events with
next_event(), turn events into TSDUs with send(). Kernel, half-duplex, minor
sync, activity management (with activity resume, for RTSE recovery) and exceptions
(ER is refused, never sent).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, replace
from typing import Final

from waypost.osi.errors import NEED_DATA, Layer, LocalProtocolError, NeedData, RemoteProtocolError
from waypost.osi.session_spdu import (
    MAX_ADDITIONAL_REF_LENGTH,
    MAX_EXTENDED_USER_DATA,
    MAX_REF_LENGTH,
    MAX_SERIAL_NUMBER,
    MAX_USER_DATA_V1,
    PI,
    SessionProtocolError,
    Spdu,
    SpduType,
    decode_tsdu,
    encode_param,
    encode_params_spdu,
    encode_spdu,
    encode_tsdu,
)

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_MAX_TSDU_SIZE",
    "NEED_DATA",
    "RTSE_REQUIREMENTS",
    "Abort",
    "AbortAccept",
    "ActivityEnd",
    "ActivityEndAck",
    "ActivityResume",
    "ActivityStart",
    "ConnectAccept",
    "ConnectRequest",
    "ConnectionClosed",
    "ConnectionId",
    "Data",
    "Disconnect",
    "Event",
    "Finish",
    "GiveTokens",
    "LocalProtocolError",
    "MinorSync",
    "MinorSyncAck",
    "NeedData",
    "PleaseTokens",
    "Refuse",
    "RemoteProtocolError",
    "Role",
    "SessionConnection",
    "State",
]

#: Half-duplex, minor synchronize, activity management, exceptions (X.228).
RTSE_REQUIREMENTS: Final = 0x0249
HALF_DUPLEX: Final = 0x0001
DUPLEX: Final = 0x0002
MINOR_SYNC: Final = 0x0008
ACTIVITY_MANAGEMENT: Final = 0x0040

#: Token Item bits (X.225 §8.3.3.2).
TOKEN_DATA: Final = 0x01
TOKEN_MINOR: Final = 0x04
TOKEN_MAJOR: Final = 0x10
TOKEN_RELEASE: Final = 0x40

#: Transport Disconnect bits: 1 release transport, 2 user abort, 3 protocol error.
TD_RELEASE: Final = 0x01
TD_USER_ABORT: Final = 0x02
TD_PROTOCOL_ERROR: Final = 0x04

#: Largest TSDU accepted from the transport (the TSDU max size we offer is 0 = any).
DEFAULT_MAX_TSDU_SIZE: Final = 1 << 20
#: Largest total of received-but-unread TSDU octets.
DEFAULT_MAX_BUFFERED: Final = 4 << 20
#: Largest user data in any SPDU when version 2 is in use (LI limit).
MAX_USER_DATA_V2: Final = 65528


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class State(enum.Enum):
    IDLE = "IDLE"
    AWAIT_AC = "AWAIT_AC"  # sent CN
    AWAIT_ACCEPT = "AWAIT_ACCEPT"  # got CN, the user answers AC or RF
    CONNECTED = "CONNECTED"
    ACTIVITY = "ACTIVITY"
    AWAIT_AEA = "AWAIT_AEA"  # sent AE
    AWAIT_SEND_AEA = "AWAIT_SEND_AEA"  # got AE
    AWAIT_DN = "AWAIT_DN"  # sent FN
    AWAIT_SEND_DN = "AWAIT_SEND_DN"  # got FN
    AWAIT_AA = "AWAIT_AA"  # sent AB keeping the transport
    AWAIT_SEND_AA = "AWAIT_SEND_AA"  # got AB keeping the transport
    CLOSED = "CLOSED"
    ERROR = "ERROR"

    # Members are singletons, equal only to themselves: hashed by identity, in C, not by
    # Enum.__hash__ in Python (the transition tables are looked up for every SPDU).
    __hash__ = object.__hash__


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionId:
    """X.225 session connection identifier: CN/AC PGI 1 (Connection Identifier) and the
    linking information of AR. Each reference at most 64 octets.

    A received CN/AC without PGI 1 (or an AR without references) gives None, not an
    all-None ConnectionId; sending an all-None one puts nothing on the wire.
    """

    called_ss_user_ref: bytes | None = None
    calling_ss_user_ref: bytes | None = None
    common_ref: bytes | None = None
    additional_ref: bytes | None = None  # at most 4 octets (X.225)

    def __post_init__(self) -> None:
        for name in ("called_ss_user_ref", "calling_ss_user_ref", "common_ref"):
            ref = getattr(self, name)
            if ref is not None and len(ref) > MAX_REF_LENGTH:
                raise LocalProtocolError(
                    Layer.SESSION, f"{name} longer than {MAX_REF_LENGTH} octets"
                )
        if self.additional_ref is not None and len(self.additional_ref) > MAX_ADDITIONAL_REF_LENGTH:
            raise LocalProtocolError(
                Layer.SESSION, f"additional_ref longer than {MAX_ADDITIONAL_REF_LENGTH} octets"
            )

    @classmethod
    def _from_spdu(cls, spdu: Spdu) -> ConnectionId | None:
        cid = cls(
            called_ss_user_ref=spdu.called_ss_user_ref,
            calling_ss_user_ref=spdu.calling_ss_user_ref,
            common_ref=spdu.common_ref,
            additional_ref=spdu.additional_ref,
        )
        return None if cid == _NO_CONNECTION_ID else cid

    def _on(self, spdu: Spdu) -> Spdu:
        """`spdu` carrying these references (PGI 1 of CN/AC, PGI 33 of AR)."""
        return replace(
            spdu,
            called_ss_user_ref=self.called_ss_user_ref,
            calling_ss_user_ref=self.calling_ss_user_ref,
            common_ref=self.common_ref,
            additional_ref=self.additional_ref,
        )


_NO_CONNECTION_ID: Final = ConnectionId()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectRequest:
    calling_ssel: bytes | None = None
    called_ssel: bytes | None = None
    requirements: int = RTSE_REQUIREMENTS
    user_data: bytes = b""
    #: Sent in CN's PGI 1; set from a received CN.
    connection_id: ConnectionId | None = None

    def __post_init__(self) -> None:
        if len(self.user_data) > MAX_EXTENDED_USER_DATA:
            raise LocalProtocolError(
                Layer.SESSION, "CN user data exceeds 10240 octets (overflow not supported)"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectAccept:
    responding_ssel: bytes | None = None
    requirements: int = RTSE_REQUIREMENTS
    user_data: bytes = b""
    #: Sent in AC's PGI 1; set from a received AC.
    connection_id: ConnectionId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse:
    #: 0 unspecified, 1 congestion, 2 with user data, 0x81.. SPM reasons.
    reason: int = 2
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Data:
    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveTokens:
    tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PleaseTokens:
    tokens: int
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityStart:
    activity_id: bytes
    user_data: bytes = b""

    def __post_init__(self) -> None:
        if not 1 <= len(self.activity_id) <= 6:
            raise LocalProtocolError(Layer.SESSION, "activity identifier must be 1 to 6 octets")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityResume:
    """ACTIVITY RESUME (X.225 §7.x/§8.3.29): restart an interrupted activity after `serial`."""

    #: The new activity identifier, 1..6 octets.
    activity_id: bytes
    #: The interrupted activity's identifier, 1..6 octets.
    old_activity_id: bytes
    #: The minor synchronization point to resume after; the next one is serial + 1.
    serial: int
    #: The interrupted session connection (None: this one).
    old_connection: ConnectionId | None = None
    user_data: bytes = b""

    def __post_init__(self) -> None:
        for name in ("activity_id", "old_activity_id"):
            if not 1 <= len(getattr(self, name)) <= 6:
                raise LocalProtocolError(Layer.SESSION, f"{name} must be 1 to 6 octets")
        if not 0 <= self.serial <= MAX_SERIAL_NUMBER:
            raise LocalProtocolError(Layer.SESSION, f"serial number {self.serial} out of range")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityEnd:
    #: Filled in by the machine when sending (None); set on received events.
    serial: int | None = None
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityEndAck:
    serial: int | None = None
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class MinorSync:
    serial: int | None = None
    #: Sync Type Item: True asks for no confirmation (X.225 "explicit confirmation not required").
    no_confirm: bool = False
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class MinorSyncAck:
    serial: int
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Finish:
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect:
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Abort:
    #: Transport Disconnect bits (default: release transport, user abort).
    reason: int = TD_RELEASE | TD_USER_ABORT
    user_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class AbortAccept:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    pass


Event = (
    ConnectRequest
    | ConnectAccept
    | Refuse
    | Data
    | GiveTokens
    | PleaseTokens
    | ActivityStart
    | ActivityResume
    | ActivityEnd
    | ActivityEndAck
    | MinorSync
    | MinorSyncAck
    | Finish
    | Disconnect
    | Abort
    | AbortAccept
    | ConnectionClosed
)

# ----------------------------------------------------------------------------- state table

S = State
_DATA_PHASE = (S.CONNECTED, S.ACTIVITY)

#: (state, event type) -> next state; the same table for sending and receiving.
#: A missing key is a protocol error (local or remote).
_transitions: dict[tuple[State, type[object]], State] = {
    (S.IDLE, ConnectRequest): S.AWAIT_AC,
    (S.AWAIT_AC, ConnectAccept): S.CONNECTED,
    (S.AWAIT_AC, Refuse): S.CLOSED,
    (S.CONNECTED, ActivityStart): S.ACTIVITY,
    (S.CONNECTED, ActivityResume): S.ACTIVITY,
    (S.ACTIVITY, Data): S.ACTIVITY,
    (S.CONNECTED, Data): S.CONNECTED,
    (S.ACTIVITY, MinorSync): S.ACTIVITY,
    (S.ACTIVITY, MinorSyncAck): S.ACTIVITY,
    (S.AWAIT_AEA, MinorSyncAck): S.AWAIT_AEA,
    (S.ACTIVITY, ActivityEnd): S.AWAIT_AEA,
    (S.AWAIT_AEA, ActivityEndAck): S.CONNECTED,
    (S.CONNECTED, Finish): S.AWAIT_DN,
    (S.AWAIT_DN, Disconnect): S.CLOSED,
    (S.AWAIT_AA, AbortAccept): S.CLOSED,
}
for _st in _DATA_PHASE:
    _transitions[(_st, GiveTokens)] = _st
    _transitions[(_st, PleaseTokens)] = _st
#: Transitions seen from the other side of the exchange (we received a request).
_peer_transitions: dict[tuple[State, type[object]], State] = {
    **_transitions,
    (S.IDLE, ConnectRequest): S.AWAIT_ACCEPT,
    (S.ACTIVITY, ActivityEnd): S.AWAIT_SEND_AEA,
    (S.CONNECTED, Finish): S.AWAIT_SEND_DN,
    # A PT may cross our AE: the peer asked for the turn before it saw the activity end.
    (S.AWAIT_AEA, PleaseTokens): S.AWAIT_AEA,
    # … or our FN: the release answers it.
    (S.AWAIT_DN, PleaseTokens): S.AWAIT_DN,
}
_our_replies: dict[tuple[State, type[object]], State] = {
    (S.AWAIT_ACCEPT, ConnectAccept): S.CONNECTED,
    (S.AWAIT_ACCEPT, Refuse): S.CLOSED,
    (S.AWAIT_SEND_AEA, ActivityEndAck): S.CONNECTED,
    (S.AWAIT_SEND_AEA, MinorSyncAck): S.AWAIT_SEND_AEA,
    (S.AWAIT_SEND_DN, Disconnect): S.CLOSED,
    (S.AWAIT_SEND_AA, AbortAccept): S.CLOSED,
}


#: Constant parts of the data-phase TSDUs: an empty Give Tokens (or Please Tokens)
#: before each category-2 SPDU, and GT + DT, the whole header of a P-DATA TSDU.
_GT: Final = encode_spdu(Spdu(type=SpduType.GT))
_PT: Final = encode_spdu(Spdu(type=SpduType.PT))
_GT_DT: Final = encode_tsdu(Spdu(type=SpduType.GT), Spdu(type=SpduType.DT))
_SYNC_NO_CONFIRM: Final = encode_param(PI.SYNC_TYPE, b"\x01")
_SI_AS: Final = SpduType.AS.code
_SI_AE: Final = SpduType.AE.code
_SI_AEA: Final = SpduType.AEA.code
_SI_MIP: Final = SpduType.MIP.code
_SI_MIA: Final = SpduType.MIA.code


def _serial_param(serial: int) -> bytes:
    """The Serial Number parameter: 1 to 6 decimal digits (the callers bound it)."""
    return encode_param(PI.SERIAL, str(serial).encode("ascii"))


def _abort_tsdu(reason: int = TD_RELEASE | TD_PROTOCOL_ERROR) -> bytes:
    return encode_tsdu(Spdu(type=SpduType.AB, transport_disconnect=reason))


class SessionConnection:
    """One session connection over one transport connection."""

    def __init__(
        self,
        role: Role,
        *,
        max_tsdu_size: int = DEFAULT_MAX_TSDU_SIZE,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        self.role = role
        self.state = State.IDLE
        self.requirements = 0
        self.version = 2
        self.max_tsdu_size = max_tsdu_size
        self.max_buffered = max_buffered
        #: Tokens we hold (TOKEN_* bits), among those the requirements make available.
        self.tokens = 0
        self._available = 0
        self._next_serial = 1  # V(M)
        self._inbox: deque[bytes] = deque()
        self._buffered = 0
        self._events: deque[Event] = deque()

    # ------------------------------------------------------------------ receiving

    def receive_tsdu(self, data: bytes) -> None:
        """Queue one whole TSDU from the transport; b"" means the transport closed."""
        if len(data) > self.max_tsdu_size:
            self._fail(f"TSDU of {len(data)} octets exceeds {self.max_tsdu_size}")
        if self._buffered + len(data) > self.max_buffered:
            self._fail("too much unread session data buffered")
        self._inbox.append(data)
        self._buffered += len(data)

    def next_event(self) -> Event | NeedData:
        """Return the next event, or NEED_DATA."""
        if self.state is State.ERROR:
            raise RemoteProtocolError(Layer.SESSION, "connection is in ERROR", abort=_abort_tsdu())
        while not self._events:
            if not self._inbox:
                return NEED_DATA
            data = self._inbox.popleft()
            self._buffered -= len(data)
            if not data:
                self.state = State.CLOSED
                self._events.append(ConnectionClosed())
                break
            try:
                spdus = decode_tsdu(data)
            except SessionProtocolError as exc:
                self._fail(str(exc))
            self._handle(spdus)
        return self._events.popleft()

    def _fail(self, message: str) -> None:
        self.state = State.ERROR
        raise RemoteProtocolError(Layer.SESSION, message, abort=_abort_tsdu())

    def _peer_step(self, event: Event) -> None:
        key = (self.state, type(event))
        nxt = _peer_transitions.get(key)
        if nxt is None:
            self._fail(f"unexpected {type(event).__name__} in state {self.state.name}")
            return
        self.state = nxt
        self._events.append(event)

    def _peer_needs(self, token: int, what: str) -> None:
        if self._available & token and self.tokens & token:
            self._fail(f"peer sent {what} without the token")

    def _handle(self, spdus: list[Spdu]) -> None:
        last = spdus[-1]
        t = last.type
        if spdus[0].type is SpduType.GT and spdus[0].token_item:
            given = spdus[0].token_item
            if given & ~self._available or given & self.tokens:
                self._fail("peer gave tokens it does not hold")
            self.tokens |= given
            if len(spdus) == 1:
                self._peer_step(GiveTokens(tokens=given))
        if t is SpduType.PT and last.token_item:
            self._peer_step(PleaseTokens(tokens=last.token_item, user_data=last.user_data or b""))
        ud = last.user_data or last.extended_user_data or b""
        if t in (SpduType.CN, SpduType.AC) and (last.token_setting or 0) & 0xAA:
            self._fail("'called SS-user chooses' token setting is not supported")
        if t is SpduType.CN:
            self._on_cn(last)
        elif t is SpduType.AC:
            self._on_ac(last)
        elif t is SpduType.RF:
            reason = last.reason or b"\x00"
            self._peer_step(Refuse(reason=reason[0], user_data=reason[1:]))
        elif t is SpduType.DT:
            self._peer_needs(TOKEN_DATA, "DT")
            self._peer_step(Data(payload=last.user_information))
        elif t is SpduType.AS:
            self._peer_needs(TOKEN_MAJOR, "AS")
            if last.activity_id is None or not 1 <= len(last.activity_id) <= 6:
                self._fail("AS without a 1-6 octet activity identifier")
            self._peer_step(ActivityStart(activity_id=last.activity_id or b"", user_data=ud))
            self._next_serial = 1
        elif t is SpduType.AR:
            self._on_ar(last, ud)
        elif t is SpduType.AE:
            self._peer_needs(TOKEN_MAJOR, "AE")
            if last.sync_type is not None:
                self._fail("major synchronization outside activity end is not supported")
            self._check_serial(last.serial, self._next_serial)
            self._peer_step(ActivityEnd(serial=last.serial, user_data=ud))
        elif t is SpduType.AEA:
            self._check_serial(last.serial, self._next_serial)
            self._peer_step(ActivityEndAck(serial=last.serial, user_data=ud))
        elif t is SpduType.MIP:
            self._peer_needs(TOKEN_MINOR, "MIP")
            self._check_serial(last.serial, self._next_serial)
            self._peer_step(
                MinorSync(serial=last.serial, no_confirm=bool(last.sync_type), user_data=ud)
            )
            self._next_serial += 1
        elif t is SpduType.MIA:
            if last.serial is None or not 1 <= last.serial < self._next_serial:
                self._fail(f"MIA serial {last.serial} acknowledges no minor sync point")
            self._peer_step(MinorSyncAck(serial=last.serial or 0, user_data=ud))
        elif t is SpduType.FN:
            self._peer_step(Finish(user_data=ud))
        elif t is SpduType.DN:
            self._peer_step(Disconnect(user_data=ud))
        elif t is SpduType.AB:
            if self.state in (State.IDLE, State.CLOSED):
                self._fail(f"AB in state {self.state.name}")
            keep = not (last.transport_disconnect or TD_RELEASE) & TD_RELEASE
            self.state = State.AWAIT_SEND_AA if keep else State.CLOSED
            self._events.append(Abort(reason=last.transport_disconnect or 0, user_data=ud))
        elif t is SpduType.AA:
            self._peer_step(AbortAccept())
        elif t not in (SpduType.GT, SpduType.PT):
            self._fail(f"{t.name} SPDU is not supported")

    def _on_ar(self, ar: Spdu, ud: bytes) -> None:
        self._peer_needs(TOKEN_MAJOR, "AR")
        for what, aid in (("new", ar.activity_id), ("old", ar.old_activity_id)):
            if aid is None or not 1 <= len(aid) <= 6:
                self._fail(f"AR without a 1-6 octet {what} activity identifier")
        serial = ar.serial or 0  # the codec refuses an AR without one
        self._peer_step(
            ActivityResume(
                activity_id=ar.activity_id or b"",
                old_activity_id=ar.old_activity_id or b"",
                serial=serial,
                old_connection=ConnectionId._from_spdu(ar),
                user_data=ud,
            )
        )
        self._next_serial = serial + 1

    def _check_serial(self, got: int | None, want: int) -> None:
        if got != want:
            self._fail(f"serial number {got}, expected {want}")

    def _on_cn(self, cn: Spdu) -> None:
        if self.role is not Role.RESPONDER:
            self._fail("CN received by the initiator")
        if cn.data_overflow is not None:
            self._fail("CN with Data Overflow: connect data overflow is not supported")
        if cn.version is not None and not cn.version & 0x02:
            self._fail("peer does not offer session version 2")
        self.requirements = cn.requirements if cn.requirements is not None else 0x0349
        self._set_tokens(cn.token_setting or 0)
        self._peer_step(
            ConnectRequest(
                calling_ssel=cn.calling_ssel,
                called_ssel=cn.called_ssel,
                requirements=self.requirements,
                user_data=cn.user_data or cn.extended_user_data or b"",
                connection_id=ConnectionId._from_spdu(cn),
            )
        )

    def _on_ac(self, ac: Spdu) -> None:
        if ac.version is not None and ac.version != 0x02:
            self._fail(f"AC selects unsupported version {ac.version}")
        req = ac.requirements if ac.requirements is not None else 0x0349
        if req & ~self.requirements:
            self._fail("AC requirements exceed those proposed")
        self.requirements = req
        self._set_tokens(ac.token_setting or 0)
        self._peer_step(
            ConnectAccept(
                responding_ssel=ac.called_ssel,
                requirements=req,
                user_data=ac.user_data or b"",
                connection_id=ConnectionId._from_spdu(ac),
            )
        )

    def _set_tokens(self, setting: int) -> None:
        """Token Setting Item: 2 bits per token, 00 initiator, 01 responder side."""
        avail = 0
        if self.requirements & HALF_DUPLEX:
            avail |= TOKEN_DATA
        if self.requirements & MINOR_SYNC:
            avail |= TOKEN_MINOR
        if self.requirements & ACTIVITY_MANAGEMENT:
            avail |= TOKEN_MAJOR
        self._available = avail
        mine = 0
        for shift, token in ((0, TOKEN_DATA), (2, TOKEN_MINOR), (4, TOKEN_MAJOR)):
            side = (setting >> shift) & 0x3
            if side > 1:
                raise LocalProtocolError(
                    Layer.SESSION, "'called SS-user chooses' token setting is unsupported"
                )
            is_init = side == 0
            if token & avail and is_init == (self.role is Role.INITIATOR):
                mine |= token
        self.tokens = mine

    # ------------------------------------------------------------------ sending

    def send(self, event: Event) -> list[bytes]:
        """Return the TSDUs that carry `event`; LocalProtocolError on misuse."""
        if self.state is State.ERROR:
            raise LocalProtocolError(Layer.SESSION, "connection is in ERROR")
        if isinstance(event, Abort):
            return self._send_abort(event)
        key = (self.state, type(event))
        nxt = _our_replies.get(key) or _transitions.get(key)
        if nxt is None or isinstance(event, ConnectionClosed):
            raise LocalProtocolError(
                Layer.SESSION, f"cannot send {type(event).__name__} in {self.state.name}"
            )
        tsdus = self._encode(event)
        self.state = nxt
        return tsdus

    def _needs(self, token: int, what: str) -> None:
        if self._available & token and not self.tokens & token:
            raise LocalProtocolError(Layer.SESSION, f"{what} needs a token we do not hold")

    def _user_data(self, data: bytes) -> bytes | None:
        limit = MAX_USER_DATA_V1 if self.version == 1 else MAX_USER_DATA_V2
        if len(data) > limit:
            raise LocalProtocolError(
                Layer.SESSION, f"user data of {len(data)} octets exceeds {limit}"
            )
        return data or None

    def _user_data_param(self, data: bytes) -> bytes:
        """The User Data parameter of a data-phase SPDU (b"" when there is none)."""
        ud = self._user_data(data)
        return b"" if ud is None else encode_param(PI.USER_DATA, ud)

    def _encode(self, event: Event) -> list[bytes]:
        # The SPDUs of every transfer first, encoded straight from their few parameters
        # (byte for byte what `encode_tsdu` gives for the same `Spdu`s).
        if isinstance(event, Data):
            self._needs(TOKEN_DATA, "DT")
            return [_GT_DT + event.payload]
        if isinstance(event, MinorSync):
            self._needs(TOKEN_MINOR, "MIP")
            serial = self._serial(event.serial)
            self._next_serial += 1
            params = _SYNC_NO_CONFIRM if event.no_confirm else b""
            params += _serial_param(serial) + self._user_data_param(event.user_data)
            return [_GT + encode_params_spdu(_SI_MIP, params)]
        if isinstance(event, MinorSyncAck):
            if not 1 <= event.serial < self._next_serial:
                raise LocalProtocolError(
                    Layer.SESSION, f"no minor sync point {event.serial} to acknowledge"
                )
            params = _serial_param(event.serial) + self._user_data_param(event.user_data)
            return [_PT + encode_params_spdu(_SI_MIA, params)]
        if isinstance(event, ActivityStart):
            self._needs(TOKEN_MAJOR, "AS")
            self._next_serial = 1
            params = encode_param(PI.ACTIVITY_ID, event.activity_id)
            params += self._user_data_param(event.user_data)
            return [_GT + encode_params_spdu(_SI_AS, params)]
        if isinstance(event, ActivityEnd):
            self._needs(TOKEN_MAJOR, "AE")
            ud_param = self._user_data_param(event.user_data)
            params = _serial_param(self._serial(event.serial)) + ud_param
            return [_GT + encode_params_spdu(_SI_AE, params)]
        if isinstance(event, ActivityEndAck):
            ud_param = self._user_data_param(event.user_data)
            params = _serial_param(self._serial(event.serial)) + ud_param
            return [_PT + encode_params_spdu(_SI_AEA, params)]
        if isinstance(event, ConnectRequest):
            if self.role is not Role.INITIATOR:
                raise LocalProtocolError(Layer.SESSION, "only the initiator sends CN")
            self.requirements = event.requirements
            self._set_tokens(0)
            big = len(event.user_data) > MAX_USER_DATA_V1
            cn = Spdu(
                type=SpduType.CN,
                protocol_options=0,
                version=0x02,
                token_setting=0,
                requirements=event.requirements,
                calling_ssel=event.calling_ssel,
                called_ssel=event.called_ssel,
                user_data=None if big else event.user_data or None,
                extended_user_data=event.user_data if big else None,
            )
            return [encode_tsdu(event.connection_id._on(cn) if event.connection_id else cn)]
        if isinstance(event, ConnectAccept):
            if event.requirements & ~self.requirements:
                raise LocalProtocolError(
                    Layer.SESSION, "accepted requirements exceed those proposed"
                )
            self.requirements = event.requirements
            self._set_tokens(0)
            ac = Spdu(
                type=SpduType.AC,
                protocol_options=0,
                version=0x02,
                token_setting=0,
                requirements=event.requirements,
                called_ssel=event.responding_ssel,
                user_data=self._user_data(event.user_data),
            )
            return [encode_tsdu(event.connection_id._on(ac) if event.connection_id else ac)]
        if isinstance(event, Refuse):
            rf = Spdu(
                type=SpduType.RF,
                transport_disconnect=TD_RELEASE,
                reason=bytes([event.reason]) + event.user_data,
            )
            return [encode_tsdu(rf)]
        if isinstance(event, GiveTokens):
            if event.tokens & ~self.tokens or not event.tokens:
                raise LocalProtocolError(Layer.SESSION, "can only give tokens we hold")
            self.tokens &= ~event.tokens
            return [encode_tsdu(Spdu(type=SpduType.GT, token_item=event.tokens))]
        if isinstance(event, PleaseTokens):
            pls = Spdu(
                type=SpduType.PT,
                token_item=event.tokens,
                user_data=self._user_data(event.user_data),
            )
            return [encode_tsdu(pls)]
        if isinstance(event, ActivityResume):
            self._needs(TOKEN_MAJOR, "AR")
            ar = Spdu(
                type=SpduType.AR,
                old_activity_id=event.old_activity_id,
                serial=event.serial,
                activity_id=event.activity_id,
                user_data=self._user_data(event.user_data),
            )
            gt = Spdu(type=SpduType.GT)
            tsdu = encode_tsdu(gt, event.old_connection._on(ar) if event.old_connection else ar)
            self._next_serial = event.serial + 1
            return [tsdu]
        if isinstance(event, Finish):
            self._needs(TOKEN_DATA, "FN")
            ud = self._user_data(event.user_data)
            fn = Spdu(type=SpduType.FN, transport_disconnect=TD_RELEASE, user_data=ud)
            return [encode_tsdu(fn)]
        if isinstance(event, Disconnect):
            ud = self._user_data(event.user_data)
            return [encode_tsdu(Spdu(type=SpduType.DN, user_data=ud))]
        if isinstance(event, AbortAccept):
            return [encode_tsdu(Spdu(type=SpduType.AA))]
        raise LocalProtocolError(Layer.SESSION, f"cannot send {type(event).__name__}")

    def _serial(self, given: int | None) -> int:
        if given is not None and given != self._next_serial:
            raise LocalProtocolError(
                Layer.SESSION, f"serial number {given}, expected {self._next_serial}"
            )
        if self._next_serial > MAX_SERIAL_NUMBER:
            raise LocalProtocolError(Layer.SESSION, "serial numbers exhausted")
        return self._next_serial

    def _send_abort(self, event: Abort) -> list[bytes]:
        if self.state in (State.IDLE, State.CLOSED):
            raise LocalProtocolError(Layer.SESSION, f"cannot abort in {self.state.name}")
        ab = Spdu(
            type=SpduType.AB,
            transport_disconnect=event.reason,
            user_data=event.user_data or None,
        )
        self.state = State.CLOSED if event.reason & TD_RELEASE else State.AWAIT_AA
        return [encode_tsdu(ab)]
