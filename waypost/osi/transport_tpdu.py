"""Encoding and decoding of RFC 1006 TPKTs and ISO 8073 class 0 TPDUs (CR, CC, DT, DR, ER)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from waypost.osi.transport_events import (
    DR_HEADER_OR_PARAMETER_LENGTH_INVALID,
    ER_INVALID_PARAMETER_VALUE,
    ER_INVALID_TPDU_TYPE,
    ER_NOT_SPECIFIED,
    MAX_TSEL_LENGTH,
    DisconnectRequest,
    Error,
    MalformedTpduError,
)

TPKT_VERSION: Final = 3
TPKT_HEADER_LENGTH: Final = 4
MAX_TPKT_LENGTH: Final = 0xFFFF

CODE_CR: Final = 0xE0
CODE_CC: Final = 0xD0
CODE_DR: Final = 0x80
CODE_DT: Final = 0xF0
CODE_ER: Final = 0x70
EOT: Final = 0x80

PARAM_TPDU_SIZE: Final = 0xC0
PARAM_CALLING_TSAP: Final = 0xC1
PARAM_CALLED_TSAP: Final = 0xC2
PARAM_ALTERNATIVE_CLASSES: Final = 0xC7
PARAM_INVALID_TPDU: Final = 0xC1  # in an ER
PARAM_ADDITIONAL_INFO: Final = 0xE0  # in a DR


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectTpdu:
    """A CR or CC; `tpdu_size` is None when the parameter is absent."""

    code: int
    dst_ref: int
    src_ref: int
    class_option: int
    calling_tsel: bytes | None = None
    called_tsel: bytes | None = None
    tpdu_size: int | None = None
    alternative_classes: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class DataTpdu:
    eot: bool
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectTpdu:
    dst_ref: int
    src_ref: int
    reason: int
    additional_info: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorTpdu:
    dst_ref: int
    cause: int
    invalid_tpdu: bytes = b""


Tpdu = ConnectTpdu | DataTpdu | DisconnectTpdu | ErrorTpdu


def tpkt(tpdu: bytes) -> bytes:
    """Wrap one TPDU in a TPKT header."""
    length = len(tpdu) + TPKT_HEADER_LENGTH
    if length > MAX_TPKT_LENGTH:
        raise ValueError(f"TPDU of {len(tpdu)} octets does not fit in a TPKT")
    return bytes((TPKT_VERSION, 0)) + length.to_bytes(2, "big") + tpdu


def _param(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


def encode(tpdu: Tpdu) -> bytes:
    """The TPDU's bytes, without the TPKT header."""
    if isinstance(tpdu, DataTpdu):
        return bytes((2, CODE_DT, EOT if tpdu.eot else 0)) + tpdu.data
    if isinstance(tpdu, ConnectTpdu):
        var = b""
        if tpdu.calling_tsel is not None:
            var += _param(PARAM_CALLING_TSAP, tpdu.calling_tsel)
        if tpdu.called_tsel is not None:
            var += _param(PARAM_CALLED_TSAP, tpdu.called_tsel)
        if tpdu.tpdu_size is not None:
            var += _param(PARAM_TPDU_SIZE, bytes((tpdu.tpdu_size.bit_length() - 1,)))
        fixed = (
            bytes((tpdu.code,))
            + tpdu.dst_ref.to_bytes(2, "big")
            + tpdu.src_ref.to_bytes(2, "big")
            + bytes((tpdu.class_option,))
        )
    elif isinstance(tpdu, DisconnectTpdu):
        fixed = (
            bytes((CODE_DR,))
            + tpdu.dst_ref.to_bytes(2, "big")
            + tpdu.src_ref.to_bytes(2, "big")
            + bytes((tpdu.reason,))
        )
        var = _param(PARAM_ADDITIONAL_INFO, tpdu.additional_info) if tpdu.additional_info else b""
    else:
        fixed = bytes((CODE_ER,)) + tpdu.dst_ref.to_bytes(2, "big") + bytes((tpdu.cause,))
        var = _param(PARAM_INVALID_TPDU, tpdu.invalid_tpdu) if tpdu.invalid_tpdu else b""
    header = fixed + var
    return bytes((len(header),)) + header


def _malformed(message: str, tpdu: bytes, cause: int = ER_NOT_SPECIFIED) -> MalformedTpduError:
    # The ER's "invalid TPDU" parameter carries the rejected header (bounded).
    header = tpdu[: min(len(tpdu), tpdu[0] + 1 if tpdu else 0, 200)]
    return MalformedTpduError(message, hint=Error(cause=cause, invalid_tpdu=header))


def _params(tpdu: bytes, start: int, end: int) -> list[tuple[int, bytes]]:
    out = []
    off = start
    while off < end:
        if off + 2 > end or off + 2 + tpdu[off + 1] > end:
            raise MalformedTpduError(
                "parameter overruns the TPDU header",
                hint=DisconnectRequest(reason=DR_HEADER_OR_PARAMETER_LENGTH_INVALID),
            )
        out.append((tpdu[off], tpdu[off + 2 : off + 2 + tpdu[off + 1]]))
        off += 2 + tpdu[off + 1]
    return out


def decode(tpdu: bytes) -> Tpdu:
    """Decode one TPDU (the payload of one TPKT)."""
    if len(tpdu) < 2 or tpdu[0] == 0xFF or tpdu[0] + 1 > len(tpdu):
        raise _malformed("length indicator invalid", tpdu)
    li = tpdu[0]
    code = tpdu[1]
    if code == CODE_DT:
        if li != 2:
            raise _malformed(f"DT with LI {li}, class 0 needs 2", tpdu, ER_INVALID_PARAMETER_VALUE)
        if tpdu[2] & 0x7F:
            raise _malformed("DT with a TPDU-NR other than 0", tpdu, ER_INVALID_PARAMETER_VALUE)
        return DataTpdu(eot=bool(tpdu[2] & EOT), data=tpdu[3:])
    if code & 0xF0 in (CODE_CR, CODE_CC):  # the low nibble is CDT, always 0 in class 0
        if li < 6:
            raise _malformed("CR/CC header too short", tpdu, ER_INVALID_PARAMETER_VALUE)
        size: int | None = None
        tsels: dict[int, bytes] = {}
        alternatives = b""
        for pcode, value in _params(tpdu, 7, li + 1):
            if pcode == PARAM_TPDU_SIZE:
                if len(value) != 1 or not 7 <= value[0] <= 13:
                    raise _malformed(f"TPDU size {value.hex()}", tpdu, ER_INVALID_PARAMETER_VALUE)
                size = 1 << value[0]
            elif pcode in (PARAM_CALLING_TSAP, PARAM_CALLED_TSAP):
                if len(value) > MAX_TSEL_LENGTH:
                    raise _malformed("TSAP-ID too long", tpdu, ER_INVALID_PARAMETER_VALUE)
                tsels[pcode] = value
            elif pcode == PARAM_ALTERNATIVE_CLASSES:
                alternatives = value
            # Other parameters (checksum, version, options, F0 preferred size ...) are
            # ignored: ISO 8073 lets a class 0 entity ignore what it does not use.
        return ConnectTpdu(
            code=code & 0xF0,
            dst_ref=int.from_bytes(tpdu[2:4], "big"),
            src_ref=int.from_bytes(tpdu[4:6], "big"),
            class_option=tpdu[6],
            calling_tsel=tsels.get(PARAM_CALLING_TSAP),
            called_tsel=tsels.get(PARAM_CALLED_TSAP),
            tpdu_size=size,
            alternative_classes=alternatives,
        )
    if code == CODE_DR:
        if li < 6:
            raise _malformed("DR header too short", tpdu, ER_INVALID_PARAMETER_VALUE)
        info = b""
        for pcode, value in _params(tpdu, 7, li + 1):
            if pcode == PARAM_ADDITIONAL_INFO:
                info = value
        return DisconnectTpdu(
            dst_ref=int.from_bytes(tpdu[2:4], "big"),
            src_ref=int.from_bytes(tpdu[4:6], "big"),
            reason=tpdu[6],
            additional_info=info,
        )
    if code == CODE_ER:
        if li < 4:
            raise _malformed("ER header too short", tpdu, ER_INVALID_PARAMETER_VALUE)
        invalid = b""
        for pcode, value in _params(tpdu, 5, li + 1):
            if pcode == PARAM_INVALID_TPDU:
                invalid = value
        return ErrorTpdu(
            dst_ref=int.from_bytes(tpdu[2:4], "big"), cause=tpdu[4], invalid_tpdu=invalid
        )
    raise _malformed(f"TPDU type {code:#04x} is not used in class 0", tpdu, ER_INVALID_TPDU_TYPE)
