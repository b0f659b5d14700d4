"""ISO 8327-1 / X.225 session SPDU codec: TSDU bytes <-> typed SPDUs, no state.

A TSDU holds one category-1 SPDU, or a category-0 SPDU (GT/PT) optionally
followed by one category-2 SPDU (basic concatenation, X.225 §6.3.7).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from waypost.osi.errors import Layer, RemoteProtocolError

__all__ = [
    "MAX_ADDITIONAL_REF_LENGTH",
    "MAX_EXTENDED_USER_DATA",
    "MAX_REF_LENGTH",
    "MAX_SERIAL_NUMBER",
    "MAX_SPDU_PARAMS_LENGTH",
    "MAX_SSEL_LENGTH",
    "MAX_USER_DATA_V1",
    "PI",
    "Param",
    "SessionProtocolError",
    "Spdu",
    "SpduType",
    "decode_tsdu",
    "encode_param",
    "encode_params_spdu",
    "encode_tsdu",
]

#: Version 1 limit of the User Data parameter (X.225 §8.3; CN always).
MAX_USER_DATA_V1 = 512
#: Limit of the Extended User Data parameter of CN (X.225 §8.3.1.17).
MAX_EXTENDED_USER_DATA = 10240
#: The LI field can express at most 65535 octets of parameters.
MAX_SPDU_PARAMS_LENGTH = 0xFFFF
#: Session selectors are at most 16 octets (X.225 §8.3.1.12/13).
MAX_SSEL_LENGTH = 16
#: Serial numbers are 1 to 6 decimal digits (X.225 §8.3.31.1).
MAX_SERIAL_NUMBER = 999_999
#: Called/Calling SS-user Reference and Common Reference: at most 64 octets (X.225).
MAX_REF_LENGTH = 64
#: Additional Reference Information: at most 4 octets (X.225).
MAX_ADDITIONAL_REF_LENGTH = 4


class SessionProtocolError(RemoteProtocolError):
    """A malformed SPDU; raised by the decoder, answered with an AB by the session layer."""

    def __init__(self, message: str) -> None:
        super().__init__(Layer.SESSION, message)


class SpduType(enum.Enum):
    """SPDU kinds: value is (SI code, category). GT/DT and AB/AI share a code."""

    GT = (0x01, 0)
    PT = (0x02, 0)
    CN = (0x0D, 1)
    AC = (0x0E, 1)
    RF = (0x0C, 1)
    FN = (0x09, 1)
    DN = (0x0A, 1)
    NF = (0x08, 1)
    AB = (0x19, 1)
    AA = (0x1A, 1)
    PR = (0x07, 1)
    GTC = (0x15, 1)
    GTA = (0x16, 1)
    CDO = (0x0F, 1)
    OA = (0x10, 1)
    DT = (0x01, 2)
    AI = (0x19, 2)
    AIA = (0x1A, 2)
    AR = (0x1D, 2)
    AS = (0x2D, 2)
    #: MAJOR SYNC POINT; with no Sync Type Item and activities in use, ACTIVITY END.
    AE = (0x29, 2)
    #: MAJOR SYNC ACK / ACTIVITY END ACK.
    AEA = (0x2A, 2)
    MIP = (0x31, 2)
    MIA = (0x32, 2)
    AD = (0x39, 2)
    ADA = (0x3A, 2)
    ER = (0x00, 2)
    ED = (0x30, 2)

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def category(self) -> int:
        return self.value[1]


_BY_CODE: dict[tuple[int, int], SpduType] = {t.value: t for t in SpduType}


class PI(enum.IntEnum):
    """Parameter (group) identifiers used here (X.225 §8.3)."""

    CONNECTION_ID = 0x01  # PGI
    CONNECT_ACCEPT = 0x05  # PGI
    CALLED_SS_USER_REF = 0x09
    CALLING_SS_USER_REF = 0x0A
    COMMON_REF = 0x0B
    ADDITIONAL_REF = 0x0C
    SYNC_TYPE = 0x0F
    TOKEN_ITEM = 0x10
    TRANSPORT_DISCONNECT = 0x11
    PROTOCOL_OPTIONS = 0x13
    REQUIREMENTS = 0x14
    TSDU_MAX_SIZE = 0x15
    VERSION = 0x16
    INITIAL_SERIAL = 0x17
    ENCLOSURE = 0x19
    TOKEN_SETTING = 0x1A
    LINKING_INFO = 0x21  # PGI, AR only
    ACTIVITY_ID = 0x29
    SERIAL = 0x2A
    REFLECT = 0x31
    REASON = 0x32
    CALLING_SSEL = 0x33
    CALLED_SSEL = 0x34
    DATA_OVERFLOW = 0x3C
    USER_DATA = 0xC1
    EXTENDED_USER_DATA = 0xC2


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """A parameter kept as it came: unknown ones are ignored, not refused (X.225 §7.1)."""

    pi: int
    value: bytes
    #: The PGI it sat in (1, 5 or 33), or None at the top level.
    group: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Spdu:
    """One SPDU with every parameter this codec understands typed; None = absent."""

    type: SpduType
    # PGI 1, Connection Identifier (in AR: PGI 33, Linking Information, the old connection)
    called_ss_user_ref: bytes | None = None
    calling_ss_user_ref: bytes | None = None
    common_ref: bytes | None = None
    additional_ref: bytes | None = None
    #: PGI 33 (AR only): the interrupted activity's identifier.
    old_activity_id: bytes | None = None
    # PGI 5, Connect/Accept Item (version is top level in RF)
    protocol_options: int | None = None
    tsdu_max_size: tuple[int, int] | None = None
    version: int | None = None
    initial_serial: int | None = None
    token_setting: int | None = None
    # top level
    transport_disconnect: int | None = None
    sync_type: int | None = None
    token_item: int | None = None
    requirements: int | None = None
    enclosure: int | None = None
    activity_id: bytes | None = None
    serial: int | None = None
    reflect: bytes | None = None
    #: Reason Code: first octet the reason, the rest SS-user data (RF).
    reason: bytes | None = None
    calling_ssel: bytes | None = None
    called_ssel: bytes | None = None
    data_overflow: int | None = None
    user_data: bytes | None = None
    extended_user_data: bytes | None = None
    unknown: tuple[Param, ...] = ()
    #: User information after the parameters (DT only): the rest of the TSDU.
    user_information: bytes = b""

    def __post_init__(self) -> None:
        # Direct attribute tests rather than loops over names: every SPDU sent or
        # received passes here.
        kind = self.type
        if self.user_information and kind is not SpduType.DT:
            raise ValueError(f"{kind.name} carries no user information")
        if self.calling_ssel is not None and len(self.calling_ssel) > MAX_SSEL_LENGTH:
            raise ValueError(f"calling_ssel longer than {MAX_SSEL_LENGTH}")
        if self.called_ssel is not None and len(self.called_ssel) > MAX_SSEL_LENGTH:
            raise ValueError(f"called_ssel longer than {MAX_SSEL_LENGTH}")
        if self.serial is not None and not 0 <= self.serial <= MAX_SERIAL_NUMBER:
            raise ValueError("serial out of range")
        if self.initial_serial is not None and not 0 <= self.initial_serial <= MAX_SERIAL_NUMBER:
            raise ValueError("initial_serial out of range")
        if self.called_ss_user_ref is not None and len(self.called_ss_user_ref) > MAX_REF_LENGTH:
            raise ValueError(f"called_ss_user_ref longer than {MAX_REF_LENGTH}")
        if self.calling_ss_user_ref is not None and len(self.calling_ss_user_ref) > MAX_REF_LENGTH:
            raise ValueError(f"calling_ss_user_ref longer than {MAX_REF_LENGTH}")
        if self.common_ref is not None and len(self.common_ref) > MAX_REF_LENGTH:
            raise ValueError(f"common_ref longer than {MAX_REF_LENGTH}")
        if self.additional_ref is not None and len(self.additional_ref) > MAX_ADDITIONAL_REF_LENGTH:
            raise ValueError(f"additional_ref longer than {MAX_ADDITIONAL_REF_LENGTH}")
        if self.old_activity_id is not None and kind is not SpduType.AR:
            raise ValueError(f"{kind.name} has no Linking Information")
        if kind is SpduType.AR and (self.serial is None or self.activity_id is None):
            raise ValueError("AR needs a Serial Number and a New Activity Identifier")
        if self.extended_user_data is not None and (
            len(self.extended_user_data) > MAX_EXTENDED_USER_DATA
        ):
            raise ValueError("extended user data too long")


# ----------------------------------------------------------------------------- fields

_Kind = str  # "bytes", "u8", "u16", "serial", "tsdu"

#: PI -> (field name, kind); the order of each table is the order we encode in.
_GROUP1: dict[int, tuple[str, _Kind]] = {
    PI.CALLED_SS_USER_REF: ("called_ss_user_ref", "bytes"),
    PI.CALLING_SS_USER_REF: ("calling_ss_user_ref", "bytes"),
    PI.COMMON_REF: ("common_ref", "bytes"),
    PI.ADDITIONAL_REF: ("additional_ref", "bytes"),
}
_GROUP5: dict[int, tuple[str, _Kind]] = {
    PI.PROTOCOL_OPTIONS: ("protocol_options", "u8"),
    PI.TSDU_MAX_SIZE: ("tsdu_max_size", "tsdu"),
    PI.VERSION: ("version", "u8"),
    PI.INITIAL_SERIAL: ("initial_serial", "serial"),
    PI.TOKEN_SETTING: ("token_setting", "u8"),
}
_TOP: dict[int, tuple[str, _Kind]] = {
    PI.TRANSPORT_DISCONNECT: ("transport_disconnect", "u8"),
    PI.ENCLOSURE: ("enclosure", "u8"),
    PI.SYNC_TYPE: ("sync_type", "u8"),
    PI.TOKEN_ITEM: ("token_item", "u8"),
    PI.REQUIREMENTS: ("requirements", "u16"),
    PI.VERSION: ("version", "u8"),
    PI.ACTIVITY_ID: ("activity_id", "bytes"),
    PI.SERIAL: ("serial", "serial"),
    PI.REFLECT: ("reflect", "bytes"),
    PI.REASON: ("reason", "bytes"),
    PI.CALLING_SSEL: ("calling_ssel", "bytes"),
    PI.CALLED_SSEL: ("called_ssel", "bytes"),
    PI.DATA_OVERFLOW: ("data_overflow", "u8"),
}
#: AR (X.225 §8.3.29): PGI 33, then Enclosure, Serial Number, New Activity Identifier.
_LINK: dict[int, tuple[str, _Kind]] = {
    **_GROUP1,
    PI.ACTIVITY_ID: ("old_activity_id", "bytes"),
}
_AR_TOP: dict[int, tuple[str, _Kind]] = {
    **{pi: f for pi, f in _TOP.items() if pi not in (PI.ACTIVITY_ID, PI.SERIAL)},
    PI.SERIAL: _TOP[PI.SERIAL],
    PI.ACTIVITY_ID: _TOP[PI.ACTIVITY_ID],
}
_TAIL: dict[int, tuple[str, _Kind]] = {
    PI.USER_DATA: ("user_data", "bytes"),
    PI.EXTENDED_USER_DATA: ("extended_user_data", "bytes"),
}
#: Only CN and AC group their parameters in PGI 1 and PGI 5.
_GROUPED = frozenset({SpduType.CN, SpduType.AC})


def _encode_value(kind: _Kind, value: object) -> bytes:
    if kind == "bytes":
        assert isinstance(value, bytes)
        return value
    if kind == "u8":
        assert isinstance(value, int)
        return value.to_bytes(1, "big")
    if kind == "u16":
        assert isinstance(value, int)
        return value.to_bytes(2, "big")
    if kind == "serial":
        return str(value).encode("ascii")
    assert isinstance(value, tuple)
    first, second = value
    assert isinstance(first, int) and isinstance(second, int)
    return first.to_bytes(2, "big") + second.to_bytes(2, "big")


def _decode_value(kind: _Kind, pi: int, raw: bytes) -> object:
    if kind == "bytes":
        return raw
    if kind == "u8":
        if len(raw) != 1:
            raise SessionProtocolError(f"PI {pi:#04x}: length {len(raw)}, expected 1")
        return raw[0]
    if kind == "u16":
        if len(raw) != 2:
            raise SessionProtocolError(f"PI {pi:#04x}: length {len(raw)}, expected 2")
        return int.from_bytes(raw, "big")
    if kind == "serial":
        if not 1 <= len(raw) <= 6 or not all(0x30 <= b <= 0x39 for b in raw):
            raise SessionProtocolError(f"PI {pi:#04x}: serial number {raw!r} is not 1-6 digits")
        return int(raw)
    if len(raw) != 4:
        raise SessionProtocolError(f"PI {pi:#04x}: TSDU maximum size needs 4 octets")
    return (int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big"))


def _encode_length(n: int) -> bytes:
    if n < 0xFF:
        return bytes([n])
    if n > 0xFFFF:
        raise ValueError(f"length {n} exceeds 65535")
    return b"\xff" + n.to_bytes(2, "big")


def _param(pi: int, value: bytes) -> bytes:
    return bytes([pi]) + _encode_length(len(value)) + value


def _encode_fields(spdu: Spdu, table: dict[int, tuple[str, _Kind]]) -> bytes:
    out = bytearray()
    for pi, (name, kind) in table.items():
        value = getattr(spdu, name)
        if value is not None:
            out += _param(pi, _encode_value(kind, value))
    return bytes(out)


def encode_spdu(spdu: Spdu) -> bytes:
    """Encode one SPDU (with its user information, for DT)."""
    body = bytearray()
    grouped = spdu.type in _GROUPED
    unknown_in = {
        g: b"".join(_param(p.pi, p.value) for p in spdu.unknown if p.group == g) for g in (1, 5, 33)
    }
    top = dict(_TOP)
    if grouped:
        g1 = _encode_fields(spdu, _GROUP1) + unknown_in[1]
        if g1:
            body += _param(PI.CONNECTION_ID, g1)
        del top[PI.VERSION]
        g5 = _encode_fields(spdu, _GROUP5) + unknown_in[5]
        if g5:
            body += _param(PI.CONNECT_ACCEPT, g5)
    else:
        if spdu.type is SpduType.AR:
            # AR's PGI 33 holds the old connection's references and old activity id.
            link = _encode_fields(spdu, _LINK) + unknown_in[33]
            if link:
                body += _param(PI.LINKING_INFO, link)
            top = dict(_AR_TOP)
        else:
            # Outside CN/AC and AR the PGI 1 items stand alone (X.225 §8.3.20).
            body += _encode_fields(spdu, _GROUP1)
        if spdu.protocol_options is not None or spdu.tsdu_max_size is not None:
            raise ValueError(f"{spdu.type.name} has no Connect/Accept item")
        if spdu.initial_serial is not None or spdu.token_setting is not None:
            raise ValueError(f"{spdu.type.name} has no Connect/Accept item")
    body += _encode_fields(spdu, top)
    body += b"".join(_param(p.pi, p.value) for p in spdu.unknown if p.group is None)
    body += _encode_fields(spdu, _TAIL)
    if len(body) > MAX_SPDU_PARAMS_LENGTH:
        raise ValueError("SPDU parameters exceed 65535 octets")
    return bytes([spdu.type.code]) + _encode_length(len(body)) + body + spdu.user_information


def encode_param(pi: int, value: bytes) -> bytes:
    """One parameter (PI, LI, value), for the data-phase encoders of `session`."""
    return _param(pi, value)


def encode_params_spdu(code: int, params: bytes) -> bytes:
    """One SPDU from its SI code and its already encoded parameters, in the order
    `encode_spdu` writes them: what the session layer uses for the SPDUs of every
    transfer (AS, MIP, MIA, AE, AEA), where building an `Spdu` costs more than the
    encoding itself."""
    if len(params) > MAX_SPDU_PARAMS_LENGTH:
        raise ValueError("SPDU parameters exceed 65535 octets")
    return bytes((code,)) + _encode_length(len(params)) + params


def encode_tsdu(*spdus: Spdu) -> bytes:
    """Encode a TSDU: one category-1 SPDU, or a category-0 SPDU plus at most one category 2."""
    cats = [s.type.category for s in spdus]
    if cats not in ([1], [0], [0, 2]):
        raise ValueError(f"cannot concatenate {[s.type.name for s in spdus]}")
    return b"".join(encode_spdu(s) for s in spdus)


# ----------------------------------------------------------------------------- decoding


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise SessionProtocolError(f"truncated length at offset {pos}")
    n = data[pos]
    if n != 0xFF:
        return n, pos + 1
    if pos + 3 > len(data):
        raise SessionProtocolError(f"truncated two-octet length at offset {pos}")
    return int.from_bytes(data[pos + 1 : pos + 3], "big"), pos + 3


def _iter_params(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(data):
        pi = data[pos]
        n, pos = _read_length(data, pos + 1)
        if pos + n > len(data):
            raise SessionProtocolError(f"PI {pi:#04x} of length {n} overruns its SPDU")
        yield pi, data[pos : pos + n]
        pos += n


def _decode_params(kind: SpduType, data: bytes) -> dict[str, object]:
    fields: dict[str, object] = {}
    unknown: list[Param] = []
    grouped = kind in _GROUPED

    def put(table: dict[int, tuple[str, _Kind]], pi: int, raw: bytes, group: int | None) -> None:
        if pi not in table:
            unknown.append(Param(pi=pi, value=raw, group=group))
            return
        name, k = table[pi]
        if name in fields:
            raise SessionProtocolError(f"PI {pi:#04x} repeated")
        fields[name] = _decode_value(k, pi, raw)

    seen_user_data = False
    seen_groups: set[int] = set()
    for pi, raw in _iter_params(data):
        if seen_user_data:
            raise SessionProtocolError(f"PI {pi:#04x} after the user data")
        if pi == PI.LINKING_INFO:
            if kind is not SpduType.AR:
                raise SessionProtocolError(f"Linking Information PGI in {kind.name}")
            if pi in seen_groups:
                raise SessionProtocolError(f"PGI {pi:#04x} repeated")
            seen_groups.add(pi)
            for sub, sub_raw in _iter_params(raw):
                put(_LINK, sub, sub_raw, int(pi))
        elif grouped and pi in (PI.CONNECTION_ID, PI.CONNECT_ACCEPT):
            if pi in seen_groups:
                raise SessionProtocolError(f"PGI {pi:#04x} repeated")
            seen_groups.add(pi)
            table = _GROUP1 if pi == PI.CONNECTION_ID else _GROUP5
            for sub, sub_raw in _iter_params(raw):
                put(table, sub, sub_raw, int(pi))
        elif pi in _TAIL:
            put(_TAIL, pi, raw, None)
            seen_user_data = True
        elif kind is SpduType.AR and pi in _GROUP1:
            unknown.append(Param(pi=pi, value=raw))  # AR's references live in PGI 33 only
        elif not grouped and pi in _GROUP1:
            put(_GROUP1, pi, raw, None)
        elif grouped and pi == PI.VERSION:
            unknown.append(Param(pi=pi, value=raw))
        else:
            put(_TOP, pi, raw, None)
    if "user_data" in fields and "extended_user_data" in fields:
        raise SessionProtocolError("both User Data and Extended User Data present")
    fields["unknown"] = tuple(unknown)
    return fields


def _decode_one(data: bytes, pos: int, category: int) -> tuple[Spdu, int]:
    code = data[pos]
    kind = _BY_CODE.get((code, category))
    if kind is None:
        raise SessionProtocolError(f"SI {code:#04x} not valid as a category-{category} SPDU")
    n, p = _read_length(data, pos + 1)
    if p + n > len(data):
        raise SessionProtocolError(f"{kind.name}: LI {n} overruns the TSDU")
    fields = _decode_params(kind, data[p : p + n])
    end = p + n
    if kind is SpduType.DT:
        fields["user_information"] = data[end:]
        end = len(data)
    try:
        return Spdu(type=kind, **fields), end  # type: ignore[arg-type]
    except ValueError as exc:
        raise SessionProtocolError(f"{kind.name}: {exc}") from exc


#: The data phase's TSDUs: an empty GT (or PT) and one of these category-2 SPDUs.
_EMPTY_CATEGORY_0: Final = {
    0x01: Spdu(type=SpduType.GT),
    0x02: Spdu(type=SpduType.PT),
}
_DATA_PHASE: Final = {
    kind.code: kind
    for kind in (SpduType.DT, SpduType.AS, SpduType.AE, SpduType.AEA, SpduType.MIP, SpduType.MIA)
}
#: Their parameters read by `_decode_data_phase`: PI -> (field, kind).
_DATA_PHASE_PARAMS: Final[dict[int, tuple[str, _Kind]]] = {
    int(PI.SYNC_TYPE): _TOP[PI.SYNC_TYPE],
    int(PI.ACTIVITY_ID): _TOP[PI.ACTIVITY_ID],
    int(PI.SERIAL): _TOP[PI.SERIAL],
    int(PI.USER_DATA): _TAIL[PI.USER_DATA],
}


def _decode_data_phase(data: bytes) -> list[Spdu] | None:
    """The TSDUs of every transfer (GT + DT, AS, MIP, AE; PT + MIA, AEA) with only the
    parameters senders put there, each once and in one-octet lengths, decoded without
    the general machinery. None for anything else, which `decode_tsdu` then decodes
    (or refuses) in full: what this accepts, it accepts the same way."""
    first = _EMPTY_CATEGORY_0.get(data[0])
    if first is None or len(data) < 4 or data[1] != 0:
        return None
    kind = _DATA_PHASE.get(data[2])
    n = data[3]
    if kind is None or n == 0xFF:
        return None
    if kind is SpduType.DT:
        return [first, Spdu(type=kind, user_information=data[4:])] if n == 0 else None
    if 4 + n != len(data):
        return None
    fields: dict[str, object] = {}
    pos = 4
    while pos < len(data):
        spec = _DATA_PHASE_PARAMS.get(data[pos])
        if spec is None or pos + 1 >= len(data) or "user_data" in fields:
            return None
        size = data[pos + 1]
        value = data[pos + 2 : pos + 2 + size]
        name, value_kind = spec
        if size == 0xFF or len(value) != size or name in fields:
            return None
        try:
            fields[name] = _decode_value(value_kind, data[pos], value)
        except SessionProtocolError:
            return None
        pos += 2 + size
    try:
        return [first, Spdu(type=kind, **fields)]  # type: ignore[arg-type]
    except ValueError:
        return None


def decode_tsdu(data: bytes) -> list[Spdu]:
    """Split and decode one TSDU; raise SessionProtocolError when malformed."""
    if not data:
        raise SessionProtocolError("empty TSDU")
    fast = _decode_data_phase(data)
    if fast is not None:
        return fast
    category = 0 if data[0] in (0x01, 0x02) else 1
    first, end = _decode_one(data, 0, category)
    if end == len(data):
        return [first]
    if category == 1:
        raise SessionProtocolError(f"octets after the category-1 {first.type.name} SPDU")
    second, end = _decode_one(data, end, 2)
    if end != len(data):
        raise SessionProtocolError("extended concatenation is not supported")
    return [first, second]
