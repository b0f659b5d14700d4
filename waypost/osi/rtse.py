"""X.228 RTSE APDUs and the X.410-1984 PConnect/PAccept/PRefuse, encoded and decoded with BER.

The open/result payloads (MTA-bind) stay raw BER bytes for the P1 layer. The
transfer procedure (activities, checkpoints, window) is in `waypost.osi.rtse_transfer`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeVar

from waypost import asn1 as ber
from waypost.asn1 import Element, Tag, fast
from waypost.osi.errors import Layer, LocalProtocolError, RemoteProtocolError

__all__ = [
    "APPLICATION_PROTOCOL_P1_1984",
    "APPLICATION_PROTOCOL_P1_1988",
    "DEFAULT_WINDOW_SIZE",
    "MAX_APDU_SIZE",
    "MAX_CHECKPOINT_SIZE",
    "MAX_WINDOW_SIZE",
    "RTAB",
    "RTOAC",
    "RTORJ",
    "RTORQ",
    "RTTP",
    "RTTR",
    "AbortReason",
    "Apdu",
    "ConnectionData",
    "DialogueMode",
    "LocalProtocolError",
    "Open",
    "Recover",
    "RefuseReason",
    "RemoteProtocolError",
    "RtseProtocolError",
    "SessionConnectionIdentifier",
    "decode_rtse_apdu",
    "decode_rttr",
    "decode_x410_accept",
    "decode_x410_connect",
    "decode_x410_refuse",
    "encode_rtse_apdu",
    "encode_rttr",
    "encode_x410_accept",
    "encode_x410_connect",
    "encode_x410_refuse",
]

#: applicationProtocol values of an X.410-mode RTORQ (X.410 / X.411).
APPLICATION_PROTOCOL_P1_1984: Final = 1
APPLICATION_PROTOCOL_P1_1988: Final = 12
DEFAULT_WINDOW_SIZE: Final = 3
#: Largest RTSE APDU (or PConnect/PAccept) accepted by the decoder.
MAX_APDU_SIZE: Final = 64 * 1024 * 1024
_LIMITS: Final = ber.Limits(max_length=MAX_APDU_SIZE, max_total=MAX_APDU_SIZE, max_depth=64)
#: Largest checkpoint size (KiB) and window size we accept: keeps segments bounded.
MAX_CHECKPOINT_SIZE: Final = 65535
MAX_WINDOW_SIZE: Final = 65535

_C = ber.context
T_RTORQ: Final = _C(16, True)
T_RTOAC: Final = _C(17, True)
T_RTORJ: Final = _C(18, True)
T_RTAB: Final = _C(22, True)
_E = TypeVar("_E", bound=enum.IntEnum)
_X410_MODE: Final = b"\xa0\x03\x80\x01\x00"  # mode-selector { mode-value x410-1984-mode(0) }


class DialogueMode(enum.IntEnum):
    MONOLOGUE = 0
    TWO_WAY_ALTERNATE = 1


class RefuseReason(enum.IntEnum):
    RTS_BUSY = 0
    CANNOT_RECOVER = 1
    VALIDATION_FAILURE = 2
    UNACCEPTABLE_DIALOGUE_MODE = 3


class AbortReason(enum.IntEnum):
    LOCAL_SYSTEM_PROBLEM = 0
    INVALID_PARAMETER = 1
    UNRECOGNIZED_ACTIVITY = 2
    TEMPORARY_PROBLEM = 3
    PROTOCOL_ERROR = 4
    PERMANENT_PROBLEM = 5
    USER_ERROR = 6
    TRANSFER_COMPLETED = 7


class RtseProtocolError(RemoteProtocolError):
    """The peer sent something malformed or out of place: answer with an RTAB of `reason`.

    `path` and `offset` locate the fault in the APDU (from the BER decoder).
    """

    abort: RTAB

    def __init__(
        self,
        message: str,
        *,
        reason: AbortReason = AbortReason.PROTOCOL_ERROR,
        path: str = "$",
        offset: int = 0,
    ) -> None:
        abort = RTAB(abort_reason=reason)
        super().__init__(Layer.RTSE, message, abort=abort, path=path, offset=offset)
        self.reason = reason


# ----------------------------------------------------------------------------- APDUs


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConnectionIdentifier:
    """X.228 SessionConnectionIdentifier: what `recover` names."""

    calling_ss_user_reference: bytes
    #: The CHOICE arm of the calling reference: T61String (True) or OCTET STRING.
    reference_is_t61: bool = False
    #: CommonReference, a UTCTime kept as its text.
    common_reference: str
    additional_reference: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Open:
    """connectionData `open`: the application's bind value, raw BER (one element)."""

    value: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Recover:
    identifier: SessionConnectionIdentifier


ConnectionData = Open | Recover


def _check_sizes(checkpoint: int | None, window: int | None) -> None:
    if checkpoint is not None and not 0 <= checkpoint <= MAX_CHECKPOINT_SIZE:
        raise LocalProtocolError(Layer.RTSE, f"checkpoint size {checkpoint} out of range")
    if window is not None and not 1 <= window <= MAX_WINDOW_SIZE:
        raise LocalProtocolError(Layer.RTSE, f"window size {window} out of range")


@dataclass(frozen=True, slots=True, kw_only=True)
class RTORQ:
    """RT-OPEN request. None means the field is absent (its default applies)."""

    checkpoint_size: int | None = None
    window_size: int | None = None
    dialogue_mode: DialogueMode | None = None
    connection_data: ConnectionData
    #: X.410 mode only: APPLICATION_PROTOCOL_P1_1984 or _1988.
    application_protocol: int | None = None

    def __post_init__(self) -> None:
        _check_sizes(self.checkpoint_size, self.window_size)

    @property
    def checkpoint(self) -> int:
        """Checkpoint size in KiB (0: no checkpointing)."""
        return self.checkpoint_size or 0

    @property
    def window(self) -> int:
        return self.window_size or DEFAULT_WINDOW_SIZE

    @property
    def mode(self) -> DialogueMode:
        return self.dialogue_mode or DialogueMode.MONOLOGUE


@dataclass(frozen=True, slots=True, kw_only=True)
class RTOAC:
    """RT-OPEN accept."""

    checkpoint_size: int | None = None
    window_size: int | None = None
    connection_data: ConnectionData

    def __post_init__(self) -> None:
        _check_sizes(self.checkpoint_size, self.window_size)

    @property
    def checkpoint(self) -> int:
        return self.checkpoint_size or 0

    @property
    def window(self) -> int:
        return self.window_size or DEFAULT_WINDOW_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class RTORJ:
    """RT-OPEN refuse; `user_data` is raw BER (one element)."""

    refuse_reason: RefuseReason | None = None
    user_data: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RTTP:
    """RT-TURN-PLEASE."""

    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RTTR:
    """RT-TRANSFER: one segment of an APDU (1988 normal mode)."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RTAB:
    """RT-ABORT."""

    abort_reason: AbortReason | None = None
    #: BIT STRING as (octets, unused bits in the last octet).
    reflected_parameter: tuple[bytes, int] | None = None
    user_data: bytes | None = None


Apdu = RTORQ | RTOAC | RTORJ | RTTP | RTTR | RTAB


# ----------------------------------------------------------------------------- encoding


def _opt_int(tag: Tag, value: int | None) -> bytes:
    return b"" if value is None else ber.encode_int(value, tag)


def _explicit(tag: Tag, value: bytes | None) -> bytes:
    return b"" if value is None else ber.constructed(tag, value)


def _encode_scid(scid: SessionConnectionIdentifier) -> bytes:
    ref_tag = ber.TELETEX_STRING if scid.reference_is_t61 else ber.OCTET_STRING
    return b"".join(
        (
            ber.encode_octets(scid.calling_ss_user_reference, ref_tag),
            ber.encode_octets(scid.common_reference.encode("ascii"), ber.UTC_TIME),
            b""
            if scid.additional_reference is None
            else ber.encode_octets(scid.additional_reference, _C(0)),
        )
    )


def _encode_connection_data(tag: Tag, data: ConnectionData) -> bytes:
    if isinstance(data, Open):
        inner = ber.constructed(_C(0, True), data.value)
    else:
        inner = ber.constructed(_C(1, True), _encode_scid(data.identifier))
    return ber.constructed(tag, inner)


def _rtorq_fields(a: RTORQ) -> bytes:
    return b"".join(
        (
            _opt_int(_C(0), a.checkpoint_size),
            _opt_int(_C(1), a.window_size),
            _opt_int(_C(2), a.dialogue_mode),
            _encode_connection_data(_C(3, True), a.connection_data),
            _opt_int(_C(4), a.application_protocol),
        )
    )


def _rtoac_fields(a: RTOAC) -> bytes:
    return b"".join(
        (
            _opt_int(_C(0), a.checkpoint_size),
            _opt_int(_C(1), a.window_size),
            _encode_connection_data(_C(2, True), a.connection_data),
        )
    )


def _rtorj_fields(a: RTORJ) -> bytes:
    return _opt_int(_C(0), a.refuse_reason) + _explicit(_C(1, True), a.user_data)


def encode_rtse_apdu(apdu: Apdu) -> bytes:
    """The BER encoding of one RTSE APDU (definite lengths)."""
    if isinstance(apdu, RTORQ):
        return ber.encode_tlv(T_RTORQ, _rtorq_fields(apdu))
    if isinstance(apdu, RTOAC):
        return ber.encode_tlv(T_RTOAC, _rtoac_fields(apdu))
    if isinstance(apdu, RTORJ):
        return ber.encode_tlv(T_RTORJ, _rtorj_fields(apdu))
    if isinstance(apdu, RTTP):
        return ber.encode_int(apdu.priority)
    if isinstance(apdu, RTTR):
        return ber.encode_octets(apdu.data)
    reflected = b""
    if apdu.reflected_parameter is not None:
        data, unused = apdu.reflected_parameter
        reflected = ber.encode_bits(data, unused, _C(1))
    return ber.encode_tlv(
        T_RTAB,
        _opt_int(_C(0), apdu.abort_reason) + reflected + _explicit(_C(2, True), apdu.user_data),
    )


def encode_rttr(data: bytes) -> bytes:
    """`encode_rtse_apdu(RTTR(data=data))`: one segment of every transfer."""
    return ber.encode_octets(data)


def encode_x410_connect(rtorq: RTORQ) -> bytes:
    """X.410-1984 PConnect: CN user data (`31 { A0 mode 0, A1 RTORQ fields }`)."""
    return ber.constructed(ber.SET, _X410_MODE, ber.encode_tlv(_C(1, True), _rtorq_fields(rtorq)))


def encode_x410_accept(rtoac: RTOAC) -> bytes:
    """X.410-1984 PAccept: AC user data (`31 { A0 mode 0, A1 RTOAC fields }`)."""
    return ber.constructed(ber.SET, _X410_MODE, ber.encode_tlv(_C(1, True), _rtoac_fields(rtoac)))


def encode_x410_refuse(rtorj: RTORJ) -> bytes:
    """X.410-1984 PRefuse: RF user data, the RTORJ fields as an untagged SET."""
    return ber.encode_tlv(ber.SET, _rtorj_fields(rtorj))


# ----------------------------------------------------------------------------- decoding


def _fields(element: Element, allowed: dict[Tag, str]) -> dict[str, Element]:
    """The members of a SET by name; unknown or repeated members are errors."""
    found: dict[str, Element] = {}
    for child in element:
        name = allowed.get(child.tag)
        if name is None:
            raise child.error(f"unexpected {child.tag} in {element.tag}")
        if name in found:
            raise child.error(f"{name} repeated")
        found[name] = child.named(name)
    return found


def _ranged(element: Element | None, low: int, high: int) -> int | None:
    if element is None:
        return None
    value = element.as_int()
    if not low <= value <= high:
        raise element.error(f"{value} is out of range {low}..{high}")
    return value


def _enum(element: Element | None, kind: type[_E]) -> _E | None:
    if element is None:
        return None
    value = element.as_int()
    try:
        return kind(value)
    except ValueError:
        raise element.error(f"unknown {kind.__name__} {value}") from None


def _single(element: Element | None) -> bytes | None:
    """The one element inside an explicit tag, as raw bytes."""
    if element is None:
        return None
    if len(element) != 1:
        raise element.error(f"explicit tag must hold one element, found {len(element)}")
    return bytes(element.child(0).raw)


def _decode_scid(element: Element) -> SessionConnectionIdentifier:
    items = element.children()
    if not 2 <= len(items) <= 3:
        raise element.error("SessionConnectionIdentifier holds 2 or 3 elements")
    ref = items[0].expect(ber.OCTET_STRING, ber.TELETEX_STRING, name="callingSSUserReference")
    common = items[1].expect(ber.UTC_TIME, name="commonReference")
    extra = (
        items[2].expect(_C(0), name="additionalReferenceInformation") if len(items) > 2 else None
    )
    try:
        text = common.as_octets().decode("ascii")
    except UnicodeDecodeError:
        raise common.error("commonReference is not ASCII") from None
    return SessionConnectionIdentifier(
        calling_ss_user_reference=ref.as_octets(),
        reference_is_t61=ref.tag == ber.TELETEX_STRING,
        common_reference=text,
        additional_reference=None if extra is None else extra.as_octets(),
    )


def _decode_connection_data(element: Element) -> ConnectionData:
    if len(element) != 1:
        raise element.error("ConnectionData must hold one alternative")
    choice = element.child(0).expect(_C(0, True), _C(1, True))
    if choice.tag.number == 0:
        value = _single(choice.named("open"))
        assert value is not None
        return Open(value=value)
    return Recover(identifier=_decode_scid(choice.named("recover")))


_RTORQ_FIELDS: Final = {
    _C(0): "checkpointSize",
    _C(1): "windowSize",
    _C(2): "dialogueMode",
    _C(3, True): "connectionDataRQ",
    _C(4): "applicationProtocol",
}
_RTOAC_FIELDS: Final = {
    _C(0): "checkpointSize",
    _C(1): "windowSize",
    _C(2, True): "connectionDataAC",
}
_RTORJ_FIELDS: Final = {_C(0): "refuseReason", _C(1, True): "userDataRJ"}
_RTAB_FIELDS: Final = {
    _C(0): "abortReason",
    _C(1): "reflectedParameter",
    _C(1, True): "reflectedParameter",
    _C(2, True): "userdataAB",
}


def _required(f: dict[str, Element], name: str, where: Element) -> Element:
    if name not in f:
        raise where.error(f"missing {name}")
    return f[name]


def _rtorq(element: Element) -> RTORQ:
    f = _fields(element, _RTORQ_FIELDS)
    return RTORQ(
        checkpoint_size=_ranged(f.get("checkpointSize"), 0, MAX_CHECKPOINT_SIZE),
        window_size=_ranged(f.get("windowSize"), 1, MAX_WINDOW_SIZE),
        dialogue_mode=_enum(f.get("dialogueMode"), DialogueMode),
        connection_data=_decode_connection_data(_required(f, "connectionDataRQ", element)),
        application_protocol=_ranged(f.get("applicationProtocol"), 0, 1 << 31),
    )


def _rtoac(element: Element) -> RTOAC:
    f = _fields(element, _RTOAC_FIELDS)
    return RTOAC(
        checkpoint_size=_ranged(f.get("checkpointSize"), 0, MAX_CHECKPOINT_SIZE),
        window_size=_ranged(f.get("windowSize"), 1, MAX_WINDOW_SIZE),
        connection_data=_decode_connection_data(_required(f, "connectionDataAC", element)),
    )


def _rtorj(element: Element) -> RTORJ:
    f = _fields(element, _RTORJ_FIELDS)
    return RTORJ(
        refuse_reason=_enum(f.get("refuseReason"), RefuseReason),
        user_data=_single(f.get("userDataRJ")),
    )


def _rtab(element: Element) -> RTAB:
    f = _fields(element, _RTAB_FIELDS)
    bits = f.get("reflectedParameter")
    return RTAB(
        abort_reason=_enum(f.get("abortReason"), AbortReason),
        reflected_parameter=None if bits is None else bits.as_bits(),
        user_data=_single(f.get("userdataAB")),
    )


def _decode(data: bytes, name: str) -> Element:
    return ber.decode(data, limits=_LIMITS, name=name)


def _remote(exc: ber.BERError) -> RtseProtocolError:
    return RtseProtocolError(str(exc), path=exc.path, offset=exc.offset)


def decode_rtse_apdu(data: bytes) -> Apdu:
    """Decode one RTSE APDU; any fault raises RemoteProtocolError (from the BERError)."""
    try:
        top = _decode(data, "rtse")
        if top.tag == T_RTORQ:
            return _rtorq(top.named("rtorq"))
        if top.tag == T_RTOAC:
            return _rtoac(top.named("rtoac"))
        if top.tag == T_RTORJ:
            return _rtorj(top.named("rtorj"))
        if top.tag == ber.INTEGER:
            return RTTP(priority=top.as_int())
        if top.tag in (ber.OCTET_STRING, ber.OCTET_STRING.as_constructed()):
            return RTTR(data=top.as_octets())
        if top.tag == T_RTAB:
            return _rtab(top.named("rtab"))
        raise ber.UnexpectedTagError(f"{top.tag} is not an RTSE APDU", 0, "rtse")
    except ber.BERError as exc:
        raise _remote(exc) from exc


def decode_rttr(data: bytes) -> bytes | None:
    """The segment of an RTTR as senders write it (a primitive OCTET STRING with a
    shortest definite length), read directly; None for anything else, which
    `decode_rtse_apdu` then decodes or refuses (it accepts what this accepts, the
    same way)."""
    if len(data) > MAX_APDU_SIZE:
        return None
    start = fast.read_octet_string(data)
    if start is None:
        return None
    return data[start:]


def _x410(data: bytes, name: str) -> Element:
    """The [1] parameters of an X.410 PConnect/PAccept, after checking the mode selector."""
    top = _decode(data, name).expect(ber.SET)
    f = _fields(top, {_C(0, True): "modeSelector", _C(1, True): "x410ModeParameters"})
    mode = _required(f, "modeSelector", top)
    value = mode.child(_C(0), "modeValue")
    if len(mode) != 1 or value.as_int() != 0:
        raise mode.error("mode selector is not x410-1984-mode")
    return _required(f, "x410ModeParameters", top)


def decode_x410_connect(data: bytes) -> RTORQ:
    """The RTORQ inside an X.410-1984 PConnect (CN user data)."""
    try:
        return _rtorq(_x410(data, "pconnect"))
    except ber.BERError as exc:
        raise _remote(exc) from exc


def decode_x410_accept(data: bytes) -> RTOAC:
    """The RTOAC inside an X.410-1984 PAccept (AC user data)."""
    try:
        return _rtoac(_x410(data, "paccept"))
    except ber.BERError as exc:
        raise _remote(exc) from exc


def decode_x410_refuse(data: bytes) -> RTORJ:
    """The RTORJ of an X.410-1984 PRefuse (RF user data)."""
    try:
        return _rtorj(_decode(data, "prefuse").expect(ber.SET))
    except ber.BERError as exc:
        raise _remote(exc) from exc
