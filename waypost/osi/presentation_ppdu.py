"""ISO 8823 / X.226 PPDUs (normal mode): typed dataclasses and their BER codec.

Which session user data holds which PPDU: CN = CP-type, AC = CPA-PPDU,
RF = CPR-PPDU, AB = Abort-type (ARU/ARP), DT and FN/DN = User-data.
Decoders raise only `PresentationProtocolError` (naming the BER path and
offset), which carries the ARP-PPDU to send in the session abort.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from waypost.asn1 import (
    INTEGER,
    OID,
    SEQUENCE,
    SET,
    BERError,
    Element,
    Limits,
    application,
    constructed,
    context,
    decode,
    encode_bit_set,
    encode_bits,
    encode_int,
    encode_octets,
    encode_oid,
    fast,
    sequence,
)
from waypost.osi.errors import Layer, RemoteProtocolError

__all__ = [
    "BER",
    "MAX_PPDU_SIZE",
    "PDV",
    "AbortReason",
    "AcceptPPDU",
    "ConnectPPDU",
    "ContextDefinition",
    "ContextResult",
    "Encoding",
    "PresentationProtocolError",
    "ProviderAbortPPDU",
    "ProviderReason",
    "RefusePPDU",
    "RejectReason",
    "Result",
    "UserAbortPPDU",
    "decode_abort",
    "decode_accept",
    "decode_connect",
    "decode_refuse",
    "decode_single_pdv",
    "decode_user_data",
    "encode_abort",
    "encode_accept",
    "encode_connect",
    "encode_refuse",
    "encode_single_pdv",
    "encode_user_data",
]

#: Basic Encoding Rules, the only transfer syntax X.400 P1 uses.
BER: Final = "2.1.1"
#: Largest PPDU accepted (session user data is already bounded below us).
MAX_PPDU_SIZE: Final = 4 << 20
LIMITS: Final = Limits(max_length=MAX_PPDU_SIZE, max_total=MAX_PPDU_SIZE, max_depth=64)

NORMAL_MODE: Final = 1
X410_MODE: Final = 0

_USER_DATA_SIMPLE = application(0)
_USER_DATA_FULL = application(1, True)


class Result(enum.IntEnum):
    """Result of one proposed context (X.226 Result)."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    PROVIDER_REJECTION = 2


class RejectReason(enum.IntEnum):
    """provider-reason of a Result-list item."""

    NOT_SPECIFIED = 0
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 1
    TRANSFER_SYNTAXES_NOT_SUPPORTED = 2
    LOCAL_LIMIT_ON_DCS_EXCEEDED = 3


class ProviderReason(enum.IntEnum):
    """provider-reason of a CPR-PPDU."""

    NOT_SPECIFIED = 0
    TEMPORARY_CONGESTION = 1
    LOCAL_LIMIT_EXCEEDED = 2
    CALLED_ADDRESS_UNKNOWN = 3
    PROTOCOL_VERSION_NOT_SUPPORTED = 4
    DEFAULT_CONTEXT_NOT_SUPPORTED = 5
    USER_DATA_NOT_READABLE = 6
    NO_PSAP_AVAILABLE = 7


class AbortReason(enum.IntEnum):
    """provider-reason of an ARP-PPDU."""

    NOT_SPECIFIED = 0
    UNRECOGNIZED_PPDU = 1
    UNEXPECTED_PPDU = 2
    UNEXPECTED_SESSION_PRIMITIVE = 3
    UNRECOGNIZED_PARAMETER = 4
    UNEXPECTED_PARAMETER = 5
    INVALID_PARAMETER_VALUE = 6


class Encoding(enum.Enum):
    """How a presentation data value is carried (PDV-list choice)."""

    SINGLE_ASN1 = 0  # [0] EXPLICIT: `value` is one whole BER element
    OCTET_ALIGNED = 1  # [1] IMPLICIT OCTET STRING
    ARBITRARY = 2  # [2] IMPLICIT BIT STRING (`value` the octets, no unused bits)


# ----------------------------------------------------------------------------- errors


class PresentationProtocolError(RemoteProtocolError):
    """A malformed or unexpected PPDU from the peer: send `abort` (an ARP-PPDU) in AB."""

    abort: bytes

    def __init__(
        self,
        message: str,
        *,
        reason: AbortReason = AbortReason.INVALID_PARAMETER_VALUE,
        path: str = "$",
        offset: int = 0,
    ) -> None:
        abort = encode_abort(ProviderAbortPPDU(reason=reason))
        super().__init__(Layer.PRESENTATION, message, abort=abort, path=path, offset=offset)
        self.reason = reason


T = TypeVar("T")


def _guard(what: str, data: bytes, parse: Callable[[Element], T]) -> T:
    """Decode `data` as one element named `what` and parse it; BERError becomes ours."""
    try:
        return parse(decode(data, limits=LIMITS, name=what))
    except BERError as exc:
        raise PresentationProtocolError(
            f"malformed {what}: {exc}", path=exc.path, offset=exc.offset
        ) from exc


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextDefinition:
    """A proposed presentation context: odd id, abstract syntax, transfer syntaxes."""

    id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...] = (BER,)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextResult:
    """The answer to one proposed context, in the order they were proposed."""

    result: Result
    transfer_syntax: str | None = None
    provider_reason: RejectReason | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PDV:
    """One presentation data value: context id and the value's bytes."""

    context_id: int
    value: bytes
    encoding: Encoding = Encoding.SINGLE_ASN1
    transfer_syntax: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectPPDU:
    """CP-type (normal mode): carried in the session CN user data."""

    calling_selector: bytes | None = None
    called_selector: bytes | None = None
    contexts: tuple[ContextDefinition, ...] = ()
    requirements: frozenset[int] | None = None
    user_data: tuple[PDV, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptPPDU:
    """CPA-PPDU (normal mode): carried in the session AC user data."""

    responding_selector: bytes | None = None
    results: tuple[ContextResult, ...] = ()
    requirements: frozenset[int] | None = None
    user_data: tuple[PDV, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusePPDU:
    """CPR-PPDU (normal mode): carried in the session RF reason."""

    responding_selector: bytes | None = None
    results: tuple[ContextResult, ...] = ()
    provider_reason: ProviderReason | None = None
    user_data: tuple[PDV, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class UserAbortPPDU:
    """ARU-PPDU (normal mode): the user's abort, with (context id, transfer syntax) pairs."""

    contexts: tuple[tuple[int, str], ...] = ()
    user_data: tuple[PDV, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderAbortPPDU:
    """ARP-PPDU: the presentation provider's abort."""

    reason: AbortReason | None = None
    event: int | None = None


# ----------------------------------------------------------------------------- encoding


def _user_data(pdvs: tuple[PDV, ...]) -> bytes:
    items = []
    for pdv in pdvs:
        fields = [encode_oid(pdv.transfer_syntax)] if pdv.transfer_syntax else []
        fields.append(encode_int(pdv.context_id))
        if pdv.encoding is Encoding.SINGLE_ASN1:
            fields.append(constructed(context(0), pdv.value))
        elif pdv.encoding is Encoding.OCTET_ALIGNED:
            fields.append(encode_octets(pdv.value, context(1)))
        else:
            fields.append(encode_bits(pdv.value, 0, context(2)))
        items.append(sequence(*fields))
    return constructed(_USER_DATA_FULL, *items)


def encode_user_data(pdvs: tuple[PDV, ...] | list[PDV]) -> bytes:
    """User-data as fully-encoded-data: P-DATA, and the release PPDUs in FN/DN."""
    if not pdvs:
        raise ValueError("fully-encoded-data needs at least one PDV-list")
    return _user_data(tuple(pdvs))


#: [APPLICATION 1] fully-encoded-data { SEQUENCE PDV-list { … } } (X.226 8.4.2).
_SINGLE_PDV_OUTER: Final = (0x61, fast.TAG_SEQUENCE)


def encode_single_pdv(context_id: int, value: bytes) -> bytes:
    """`encode_user_data((PDV(context_id=context_id, value=value),))`, through the fast
    path when the context id is one octet: the P-DATA around every RTTR."""
    encoded = fast.encode_ident_single(_SINGLE_PDV_OUTER, context_id, value)
    if encoded is None:
        return encode_user_data((PDV(context_id=context_id, value=value),))
    return encoded


def decode_single_pdv(data: bytes) -> PDV | None:
    """User-data of exactly one PDV-list `{ context id 0..127, single-ASN1-type holding
    one primitive OCTET STRING }` (an RTTR), read by the fast path: the P-DATA around
    every RTTR. None for anything else, which `decode_user_data` then decodes (or
    refuses): what this accepts, it accepts too, with the same result."""
    if len(data) > MAX_PPDU_SIZE:
        return None
    found = fast.read_ident_single(data, _SINGLE_PDV_OUTER)
    if found is None or fast.read_octet_string(data, found[1]) is None:
        return None
    return PDV(context_id=found[0], value=data[found[1] :])


def _optional_user_data(pdvs: tuple[PDV, ...]) -> list[bytes]:
    return [_user_data(pdvs)] if pdvs else []


def _selector(tag: int, value: bytes | None) -> list[bytes]:
    return [] if value is None else [encode_octets(value, context(tag))]


def _requirements(bits: frozenset[int] | None) -> list[bytes]:
    return [] if bits is None else [encode_bit_set(bits, context(8))]


def _results(tag: int, results: tuple[ContextResult, ...]) -> list[bytes]:
    if not results:
        return []
    items = []
    for r in results:
        fields = [encode_int(r.result, context(0))]
        if r.transfer_syntax is not None:
            fields.append(encode_oid(r.transfer_syntax, context(1)))
        if r.provider_reason is not None:
            fields.append(encode_int(r.provider_reason, context(2)))
        items.append(sequence(*fields))
    return [constructed(context(tag), *items)]


def _mode() -> bytes:
    return constructed(context(0), encode_int(NORMAL_MODE, context(0)))


def encode_connect(cp: ConnectPPDU) -> bytes:
    """CP-type, fields in the order X.226 lists them."""
    contexts = []
    for c in cp.contexts:
        syntaxes = sequence(*(encode_oid(t) for t in c.transfer_syntaxes))
        contexts.append(sequence(encode_int(c.id), encode_oid(c.abstract_syntax), syntaxes))
    params = [
        *_selector(1, cp.calling_selector),
        *_selector(2, cp.called_selector),
        *([constructed(context(4), *contexts)] if cp.contexts else []),
        *_requirements(cp.requirements),
        *_optional_user_data(cp.user_data),
    ]
    return constructed(SET, _mode(), constructed(context(2), *params))


def encode_accept(cpa: AcceptPPDU) -> bytes:
    """CPA-PPDU."""
    params = [
        *_selector(3, cpa.responding_selector),
        *_results(5, cpa.results),
        *_requirements(cpa.requirements),
        *_optional_user_data(cpa.user_data),
    ]
    return constructed(SET, _mode(), constructed(context(2), *params))


def encode_refuse(cpr: RefusePPDU) -> bytes:
    """CPR-PPDU, normal-mode-parameters (a SEQUENCE)."""
    reason = [] if cpr.provider_reason is None else [encode_int(cpr.provider_reason, context(10))]
    return sequence(
        *_selector(3, cpr.responding_selector),
        *_results(5, cpr.results),
        *reason,
        *_optional_user_data(cpr.user_data),
    )


def encode_abort(abort: UserAbortPPDU | ProviderAbortPPDU) -> bytes:
    """Abort-type: ARU-PPDU (normal mode, `A0`) or ARP-PPDU (`30`)."""
    if isinstance(abort, ProviderAbortPPDU):
        fields = [] if abort.reason is None else [encode_int(abort.reason, context(0))]
        if abort.event is not None:
            fields.append(encode_int(abort.event, context(1)))
        return sequence(*fields)
    ids = [sequence(encode_int(i), encode_oid(t)) for i, t in abort.contexts]
    return constructed(
        context(0),
        *([constructed(context(0), *ids)] if ids else []),
        *_optional_user_data(abort.user_data),
    )


# ----------------------------------------------------------------------------- decoding


def _fields(element: Element, known: dict[int, str]) -> dict[int, Element]:
    """Context-tagged fields of a SET/SEQUENCE by number, named; unknown ones are refused."""
    return _fields_of(element.children(), known)


def _split_user_data(element: Element) -> tuple[list[Element], Element | None]:
    """Children before the (untagged APPLICATION) User-data, and the User-data."""
    items = element.children()
    if items and items[-1].tag.cls == _USER_DATA_FULL.cls:
        return items[:-1], items[-1].named("user-data")
    return items, None


def _pdvs(element: Element | None) -> tuple[PDV, ...]:
    if element is None:
        return ()
    if element.tag == _USER_DATA_SIMPLE:
        raise element.error("simply-encoded-data is not used in normal mode with contexts")
    element = element.expect(_USER_DATA_FULL)
    out: list[PDV] = []
    for raw_item in element:
        item = raw_item.expect(SEQUENCE, name=f"pdv-list[{len(out)}]")
        fields = item.children()
        syntax = None
        if fields and fields[0].tag == OID:
            syntax = fields[0].named("transfer-syntax-name").as_oid()
            fields = fields[1:]
        if len(fields) != 2:
            raise item.error("PDV-list needs a context id and one data value")
        ctx = fields[0].expect(INTEGER, name="presentation-context-identifier").as_int()
        value = fields[1]
        if value.tag == context(0, True):
            if len(value) != 1:
                raise value.error("single-ASN1-type must hold exactly one element")
            raw = bytes(value.children()[0].raw)
            out.append(PDV(context_id=ctx, value=raw, transfer_syntax=syntax))
        elif value.tag.cls == context(0).cls and value.tag.number == 1:
            octets = value.named("octet-aligned").as_octets()
            pdv = PDV(context_id=ctx, value=octets, encoding=Encoding.OCTET_ALIGNED)
            out.append(_with_syntax(pdv, syntax))
        elif value.tag.cls == context(0).cls and value.tag.number == 2:
            bits, unused = value.named("arbitrary").as_bits()
            if unused:
                raise value.error("arbitrary data values must be whole octets")
            pdv = PDV(context_id=ctx, value=bits, encoding=Encoding.ARBITRARY)
            out.append(_with_syntax(pdv, syntax))
        else:
            raise value.error(f"unknown presentation-data-values {value.tag}")
    if not out:
        raise element.error("fully-encoded-data holds no PDV-list")
    return tuple(out)


def _with_syntax(pdv: PDV, syntax: str | None) -> PDV:
    if syntax is None:
        return pdv
    return PDV(
        context_id=pdv.context_id, value=pdv.value, encoding=pdv.encoding, transfer_syntax=syntax
    )


def _bits(element: Element | None) -> frozenset[int] | None:
    return None if element is None else element.as_bit_set()


def _octets(element: Element | None) -> bytes | None:
    return None if element is None else element.as_octets()


def _check_version(element: Element | None) -> None:
    if element is not None and 0 not in element.as_bit_set():
        raise element.error("protocol-version does not offer version-1")


def _normal(pdu: Element) -> Element:
    """The normal-mode-parameters of a CP-type or CPA-PPDU (a SET)."""
    pdu = pdu.expect(SET, name=pdu.path)
    fields = _fields(pdu, {0: "mode-selector", 1: "x410-mode-parameters", 2: "normal-mode"})
    if 0 not in fields:
        raise pdu.error("missing mode-selector")
    mode = fields[0].expect(context(0, True)).child(context(0), "mode-value").as_int()
    if mode == X410_MODE:
        raise pdu.error("X.410-mode PPDU: handled by the X.410 RTSE mapping, not here")
    if mode != NORMAL_MODE or 2 not in fields:
        raise pdu.error(f"mode {mode} without normal-mode-parameters")
    return fields[2].expect(context(2, True))


def _result_list(element: Element | None) -> tuple[ContextResult, ...]:
    if element is None:
        return ()
    out = []
    for i, raw_item in enumerate(element.expect(context(element.tag.number, True))):
        item = raw_item.expect(SEQUENCE, name=f"result[{i}]")
        f = _fields(item, {0: "result", 1: "transfer-syntax-name", 2: "provider-reason"})
        if 0 not in f:
            raise item.error("missing result")
        result = _enum(Result, f[0])
        syntax = f[1].as_oid() if 1 in f else None
        reason = _enum(RejectReason, f[2]) if 2 in f else None
        out.append(ContextResult(result=result, transfer_syntax=syntax, provider_reason=reason))
    return tuple(out)


E = TypeVar("E", bound=enum.IntEnum)


def _enum(kind: type[E], element: Element) -> E:
    value = element.as_int()
    try:
        return kind(value)
    except ValueError:
        raise element.error(f"{value} is not a {kind.__name__}") from None


def _parse_connect(pdu: Element) -> ConnectPPDU:
    params, user = _split_user_data(_normal(pdu))
    known = {
        0: "protocol-version",
        1: "calling-presentation-selector",
        2: "called-presentation-selector",
        4: "presentation-context-definition-list",
        6: "default-context-name",
        8: "presentation-requirements",
        9: "user-session-requirements",
        11: "protocol-options",
        12: "initiators-nominated-context",
        14: "extensions",
    }
    f = _fields_of(params, known)
    _check_version(f.get(0))
    if 6 in f:
        raise f[6].error("default context is not supported")
    contexts = []
    if 4 in f:
        for i, raw_item in enumerate(f[4].expect(context(4, True))):
            item = raw_item.expect(SEQUENCE, name=f"context[{i}]")
            if len(item) != 3:
                raise item.error("a context definition has id, abstract and transfer syntaxes")
            ident = item.child(0, "presentation-context-identifier").expect(INTEGER).as_int()
            abstract = item.child(1, "abstract-syntax-name").expect(OID).as_oid()
            syntaxes = item.child(2, "transfer-syntax-name-list").expect(SEQUENCE)
            names = tuple(t.expect(OID).as_oid() for t in syntaxes)
            if ident < 1 or ident % 2 == 0 or not names:
                raise item.error("context id must be odd and positive, with a transfer syntax")
            contexts.append(
                ContextDefinition(id=ident, abstract_syntax=abstract, transfer_syntaxes=names)
            )
    return ConnectPPDU(
        calling_selector=_octets(f.get(1)),
        called_selector=_octets(f.get(2)),
        contexts=tuple(contexts),
        requirements=_bits(f.get(8)),
        user_data=_pdvs(user),
    )


def _fields_of(params: list[Element], known: dict[int, str]) -> dict[int, Element]:
    """Like `_fields`, over a list of elements."""
    found: dict[int, Element] = {}
    for child in params:
        if child.tag.cls != context(0).cls or child.tag.number not in known:
            raise child.error(f"unexpected {child.tag}")
        if child.tag.number in found:
            raise child.error(f"repeated {child.tag}")
        found[child.tag.number] = child.named(known[child.tag.number])
    return found


_ACCEPT_FIELDS: Final = {
    0: "protocol-version",
    3: "responding-presentation-selector",
    5: "presentation-context-definition-result-list",
    8: "presentation-requirements",
    9: "user-session-requirements",
    11: "protocol-options",
    13: "responders-nominated-context",
}


def _parse_accept(pdu: Element) -> AcceptPPDU:
    params, user = _split_user_data(_normal(pdu))
    f = _fields_of(params, _ACCEPT_FIELDS)
    _check_version(f.get(0))
    return AcceptPPDU(
        responding_selector=_octets(f.get(3)),
        results=_result_list(f.get(5)),
        requirements=_bits(f.get(8)),
        user_data=_pdvs(user),
    )


def _parse_refuse(pdu: Element) -> RefusePPDU:
    if pdu.tag == SET:
        raise pdu.error("X.410-mode CPR (RTORJ): handled by the X.410 RTSE mapping, not here")
    pdu = pdu.expect(SEQUENCE, name=pdu.path)
    params, user = _split_user_data(pdu)
    known = {
        0: "protocol-version",
        3: "responding-presentation-selector",
        5: "presentation-context-definition-result-list",
        7: "default-context-result",
        10: "provider-reason",
    }
    f = _fields_of(params, known)
    _check_version(f.get(0))
    return RefusePPDU(
        responding_selector=_octets(f.get(3)),
        results=_result_list(f.get(5)),
        provider_reason=_enum(ProviderReason, f[10]) if 10 in f else None,
        user_data=_pdvs(user),
    )


def _parse_abort(pdu: Element) -> UserAbortPPDU | ProviderAbortPPDU:
    if pdu.tag == SEQUENCE:
        f = _fields(pdu, {0: "provider-reason", 1: "event-identifier"})
        return ProviderAbortPPDU(
            reason=_enum(AbortReason, f[0]) if 0 in f else None,
            event=f[1].as_int() if 1 in f else None,
        )
    pdu = pdu.expect(context(0, True), name=pdu.path)
    params, user = _split_user_data(pdu)
    f = _fields_of(params, {0: "presentation-context-identifier-list"})
    contexts = []
    if 0 in f:
        for i, raw_item in enumerate(f[0].expect(context(0, True))):
            item = raw_item.expect(SEQUENCE, name=f"context[{i}]")
            ident = item.child(0, "presentation-context-identifier").expect(INTEGER).as_int()
            syntax = item.child(1, "transfer-syntax-name").expect(OID).as_oid()
            if len(item) != 2:
                raise item.error("a context identifier item has two fields")
            contexts.append((ident, syntax))
    return UserAbortPPDU(contexts=tuple(contexts), user_data=_pdvs(user))


def decode_connect(data: bytes) -> ConnectPPDU:
    """CP-type from the CN user data."""
    return _guard("CP", data, _parse_connect)


def decode_accept(data: bytes) -> AcceptPPDU:
    """CPA-PPDU from the AC user data."""
    return _guard("CPA", data, _parse_accept)


def decode_refuse(data: bytes) -> RefusePPDU:
    """CPR-PPDU from the RF reason's user data."""
    return _guard("CPR", data, _parse_refuse)


def decode_abort(data: bytes) -> UserAbortPPDU | ProviderAbortPPDU:
    """ARU-PPDU or ARP-PPDU from the AB user data."""
    return _guard("abort", data, _parse_abort)


def decode_user_data(data: bytes) -> tuple[PDV, ...]:
    """User-data (P-DATA, FN/DN): fully-encoded-data, at least one PDV-list."""
    return _guard("user-data", data, _pdvs)
