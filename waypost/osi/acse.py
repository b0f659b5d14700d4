"""ISO 8650 / X.227 ACSE APDUs: AARQ/AARE/RLRQ/RLRE/ABRT as typed dataclasses, BER codec.

An ACSE APDU travels as the single-ASN1-type value of a presentation PDV in the
ACSE context (CP/CPA user data, FN/DN user data, AB user data). Decoders raise
only `AcseProtocolError`, naming the BER path and offset and carrying the
ABRT (source acse-service-provider) to send.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from waypost.asn1 import (
    EXTERNAL,
    INTEGER,
    OID,
    BERError,
    Element,
    Limits,
    TagClass,
    application,
    constructed,
    context,
    decode,
    encode_bit_set,
    encode_int,
    encode_octets,
    encode_oid,
)
from waypost.osi.errors import Layer, RemoteProtocolError

__all__ = [
    "AARE",
    "AARQ",
    "ABRT",
    "ACSE_ABSTRACT_SYNTAX",
    "RLRE",
    "RLRQ",
    "AcseProtocolError",
    "Apdu",
    "AssociateResult",
    "DiagnosticSource",
    "External",
    "decode_apdu",
    "encode_apdu",
]

#: The ACSE abstract syntax (the presentation context ACSE APDUs travel in).
ACSE_ABSTRACT_SYNTAX: Final = "2.2.1.0.1"
MAX_APDU_SIZE: Final = 4 << 20
LIMITS: Final = Limits(max_length=MAX_APDU_SIZE, max_total=MAX_APDU_SIZE)

_USER_INFORMATION = 30


class AssociateResult(enum.IntEnum):
    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class DiagnosticSource(enum.IntEnum):
    """Which choice of result-source-diagnostic: [1] service user, [2] service provider."""

    SERVICE_USER = 1
    SERVICE_PROVIDER = 2


class AcseProtocolError(RemoteProtocolError):
    """A malformed ACSE APDU from the peer; send `abort` (an ABRT, provider source)."""

    abort: bytes

    def __init__(self, message: str, *, path: str = "$", offset: int = 0) -> None:
        abort = encode_apdu(ABRT(source=1))
        super().__init__(Layer.ACSE, message, abort=abort, path=path, offset=offset)


@dataclass(frozen=True, slots=True, kw_only=True)
class External:
    """One EXTERNAL of user-information: context id (or direct reference) and value bytes.

    `value` is the whole encoded element of a single-ASN1-type (e.g. an RTORQ
    starting B0), or the octets of an octet-aligned [1] encoding.
    """

    context_id: int | None = None
    direct_reference: str | None = None
    value: bytes
    octet_aligned: bool = False

    def __post_init__(self) -> None:
        if self.context_id is None and self.direct_reference is None:
            raise ValueError("an EXTERNAL needs a context id or a direct reference")


@dataclass(frozen=True, slots=True, kw_only=True)
class AARQ:
    application_context: str
    called_ap_title: bytes | str | None = None
    called_ae_qualifier: bytes | int | None = None
    calling_ap_title: bytes | str | None = None
    calling_ae_qualifier: bytes | int | None = None
    protocol_version: frozenset[int] | None = None
    user_information: tuple[External, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AARE:
    application_context: str
    result: AssociateResult = AssociateResult.ACCEPTED
    diagnostic_source: DiagnosticSource = DiagnosticSource.SERVICE_USER
    diagnostic: int = 0
    responding_ap_title: bytes | str | None = None
    responding_ae_qualifier: bytes | int | None = None
    protocol_version: frozenset[int] | None = None
    user_information: tuple[External, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RLRQ:
    reason: int | None = None  # 0 normal, 1 urgent, 30 user-defined
    user_information: tuple[External, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RLRE:
    reason: int | None = None  # 0 normal, 1 not-finished, 30 user-defined
    user_information: tuple[External, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ABRT:
    source: int  # 0 acse-service-user, 1 acse-service-provider
    user_information: tuple[External, ...] = ()


Apdu = AARQ | AARE | RLRQ | RLRE | ABRT

# ----------------------------------------------------------------------------- encoding


def _explicit(tag: int, inner: bytes) -> bytes:
    return constructed(context(tag), inner)


def _ap_title(tag: int, value: bytes | str | None) -> list[bytes]:
    """AP-title: form2 an OID (given as dotted text), form1 kept as raw element bytes."""
    if value is None:
        return []
    return [_explicit(tag, encode_oid(value) if isinstance(value, str) else value)]


def _ae_qualifier(tag: int, value: bytes | int | None) -> list[bytes]:
    """AE-qualifier: form2 an INTEGER, form1 kept as raw element bytes."""
    if value is None:
        return []
    return [_explicit(tag, encode_int(value) if isinstance(value, int) else value)]


def _user_information(items: tuple[External, ...]) -> list[bytes]:
    if not items:
        return []
    encoded = []
    for ext in items:
        fields = [] if ext.direct_reference is None else [encode_oid(ext.direct_reference)]
        if ext.context_id is not None:
            fields.append(encode_int(ext.context_id))
        if ext.octet_aligned:
            fields.append(encode_octets(ext.value, context(1)))
        else:
            fields.append(_explicit(0, ext.value))
        encoded.append(constructed(EXTERNAL, *fields))
    return [constructed(context(_USER_INFORMATION), *encoded)]


def _version(bits: frozenset[int] | None) -> list[bytes]:
    return [] if bits is None else [encode_bit_set(bits, context(0))]


def encode_apdu(apdu: Apdu) -> bytes:
    """The APDU's BER encoding, fields in X.227 order."""
    if isinstance(apdu, AARQ):
        return constructed(
            application(0),
            *_version(apdu.protocol_version),
            _explicit(1, encode_oid(apdu.application_context)),
            *_ap_title(2, apdu.called_ap_title),
            *_ae_qualifier(3, apdu.called_ae_qualifier),
            *_ap_title(6, apdu.calling_ap_title),
            *_ae_qualifier(7, apdu.calling_ae_qualifier),
            *_user_information(apdu.user_information),
        )
    if isinstance(apdu, AARE):
        diagnostic = _explicit(apdu.diagnostic_source, encode_int(apdu.diagnostic))
        return constructed(
            application(1),
            *_version(apdu.protocol_version),
            _explicit(1, encode_oid(apdu.application_context)),
            _explicit(2, encode_int(apdu.result)),
            _explicit(3, diagnostic),
            *_ap_title(4, apdu.responding_ap_title),
            *_ae_qualifier(5, apdu.responding_ae_qualifier),
            *_user_information(apdu.user_information),
        )
    if isinstance(apdu, ABRT):
        return constructed(
            application(4),
            encode_int(apdu.source, context(0)),
            *_user_information(apdu.user_information),
        )
    number = 2 if isinstance(apdu, RLRQ) else 3
    reason = [] if apdu.reason is None else [encode_int(apdu.reason, context(0))]
    return constructed(application(number), *reason, *_user_information(apdu.user_information))


# ----------------------------------------------------------------------------- decoding

_NAMES: Final = {
    0: (
        "AARQ",
        {
            0: "protocol-version",
            1: "application-context-name",
            2: "called-AP-title",
            3: "called-AE-qualifier",
            4: "called-AP-invocation-identifier",
            5: "called-AE-invocation-identifier",
            6: "calling-AP-title",
            7: "calling-AE-qualifier",
            8: "calling-AP-invocation-identifier",
            9: "calling-AE-invocation-identifier",
            10: "sender-acse-requirements",
            11: "mechanism-name",
            12: "calling-authentication-value",
            13: "application-context-name-list",
            29: "implementation-information",
            30: "user-information",
        },
    ),
    1: (
        "AARE",
        {
            0: "protocol-version",
            1: "application-context-name",
            2: "result",
            3: "result-source-diagnostic",
            4: "responding-AP-title",
            5: "responding-AE-qualifier",
            6: "responding-AP-invocation-identifier",
            7: "responding-AE-invocation-identifier",
            8: "responder-acse-requirements",
            9: "mechanism-name",
            10: "responding-authentication-value",
            11: "application-context-name-list",
            29: "implementation-information",
            30: "user-information",
        },
    ),
    2: ("RLRQ", {0: "reason", 30: "user-information"}),
    3: ("RLRE", {0: "reason", 30: "user-information"}),
    4: ("ABRT", {0: "abort-source", 1: "abort-diagnostic", 30: "user-information"}),
}


def _inner(element: Element) -> Element:
    """The one element inside an explicit tag."""
    if len(element) != 1:
        raise element.error(f"{element.path} must hold exactly one element")
    return element.children()[0]


def _title(element: Element | None) -> bytes | str | None:
    if element is None:
        return None
    inner = _inner(element)
    return inner.as_oid() if inner.tag == OID else bytes(inner.raw)


def _qualifier(element: Element | None) -> bytes | int | None:
    if element is None:
        return None
    inner = _inner(element)
    return inner.as_int() if inner.tag == INTEGER else bytes(inner.raw)


def _externals(element: Element | None) -> tuple[External, ...]:
    if element is None:
        return ()
    out = []
    for i, raw_item in enumerate(element.expect(context(_USER_INFORMATION, True))):
        item = raw_item.expect(EXTERNAL, name=f"external[{i}]")
        fields = list(item)
        direct = ident = None
        if fields and fields[0].tag == OID:
            direct = fields.pop(0).named("direct-reference").as_oid()
        if fields and fields[0].tag == INTEGER:
            ident = fields.pop(0).named("indirect-reference").as_int()
        if fields and fields[0].tag.number == 7 and fields[0].tag.cls == TagClass.UNIVERSAL:
            fields.pop(0)  # data-value-descriptor: informative only
        if len(fields) != 1 or (direct is None and ident is None):
            raise item.error("EXTERNAL needs a reference and exactly one encoding")
        encoding = fields[0]
        if encoding.tag == context(0, True):
            value, octets = bytes(_inner(encoding.named("single-ASN1-type")).raw), False
        elif encoding.tag.cls == TagClass.CONTEXT and encoding.tag.number == 1:
            value, octets = encoding.named("octet-aligned").as_octets(), True
        else:
            raise encoding.error(f"unsupported EXTERNAL encoding {encoding.tag}")
        out.append(
            External(context_id=ident, direct_reference=direct, value=value, octet_aligned=octets)
        )
    return tuple(out)


def _parse(apdu: Element) -> Apdu:
    if apdu.tag.cls != TagClass.APPLICATION or apdu.tag.number not in _NAMES:
        raise apdu.error(f"unknown ACSE APDU {apdu.tag}")
    name, known = _NAMES[apdu.tag.number]
    apdu = apdu.expect(application(apdu.tag.number, True), name=name)
    f: dict[int, Element] = {}
    for child in apdu:
        if child.tag.cls != TagClass.CONTEXT or child.tag.number not in known:
            raise child.error(f"unexpected {child.tag} in {name}")
        if child.tag.number in f:
            raise child.error(f"repeated {child.tag} in {name}")
        f[child.tag.number] = child.named(known[child.tag.number])
    users = _externals(f.get(_USER_INFORMATION))
    version = f[0].as_bit_set() if 0 in f and apdu.tag.number < 2 else None
    if apdu.tag.number in (0, 1):
        if 1 not in f:
            raise apdu.error("missing application-context-name")
        context_name = _inner(f[1]).expect(OID).as_oid()
    if apdu.tag.number == 0:
        return AARQ(
            application_context=context_name,
            called_ap_title=_title(f.get(2)),
            called_ae_qualifier=_qualifier(f.get(3)),
            calling_ap_title=_title(f.get(6)),
            calling_ae_qualifier=_qualifier(f.get(7)),
            protocol_version=version,
            user_information=users,
        )
    if apdu.tag.number == 1:
        if 2 not in f or 3 not in f:
            raise apdu.error("missing result or result-source-diagnostic")
        result = _inner(f[2]).expect(INTEGER).as_int()
        if result not in AssociateResult.__members__.values():
            raise f[2].error(f"unknown result {result}")
        choice = _inner(f[3])
        if choice.tag not in (context(1, True), context(2, True)):
            raise choice.error(f"unknown result-source-diagnostic {choice.tag}")
        return AARE(
            application_context=context_name,
            result=AssociateResult(result),
            diagnostic_source=DiagnosticSource(choice.tag.number),
            diagnostic=_inner(choice).expect(INTEGER).as_int(),
            responding_ap_title=_title(f.get(4)),
            responding_ae_qualifier=_qualifier(f.get(5)),
            protocol_version=version,
            user_information=users,
        )
    if apdu.tag.number == 4:
        if 0 not in f:
            raise apdu.error("missing abort-source")
        return ABRT(source=f[0].as_int(), user_information=users)
    reason = f[0].as_int() if 0 in f else None
    kind = RLRQ if apdu.tag.number == 2 else RLRE
    return kind(reason=reason, user_information=users)


T = TypeVar("T")


def _guard(data: bytes, parse: Callable[[Element], T]) -> T:
    try:
        return parse(decode(data, limits=LIMITS, name="ACSE"))
    except BERError as exc:
        raise AcseProtocolError(
            f"malformed ACSE APDU: {exc}", path=exc.path, offset=exc.offset
        ) from exc


def decode_apdu(data: bytes) -> Apdu:
    """Any ACSE APDU (the value of a PDV in the ACSE context)."""
    return _guard(data, _parse)
