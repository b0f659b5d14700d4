"""X.411 names in BER: ORName/ORAddress, GlobalDomainIdentifier and MTSIdentifier.

They map onto `waypost.address.ORAddress` and the canonical text forms the
internal `Envelope` keeps. The text of a GlobalDomainIdentifier is the O/R
address form of its attributes (`/C=GB/ADMD=TEST/PRMD=PPTEST/`); an
MTSIdentifier is that text, ";" and the local identifier
(`/C=GB/ADMD=TEST/PRMD=PPTEST/;pp.peer.1`): a PrintableString cannot hold ";",
so the first ";" always ends the domain part.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from waypost.address.mailbox import AddressError
from waypost.address.oraddress import (
    TERMINAL_TYPES,
    ORAddress,
    format_slash,
    parse_global_domain,
    parse_oraddress,
    ps_encode,
)
from waypost.asn1 import (
    IA5_STRING,
    NUMERIC_STRING,
    PRINTABLE_STRING,
    SEQUENCE,
    SET,
    Element,
    Tag,
    application,
    constructed,
    context,
    encode_int,
    encode_string,
    sequence,
    set_of,
)

OR_NAME = application(0, True)
COUNTRY_NAME = application(1, True)
ADMD_NAME = application(2, True)
GLOBAL_DOMAIN_IDENTIFIER = application(3, True)
MTS_IDENTIFIER = application(4, True)

# ExtensionAttribute types (X.411 §12.2) that waypost's ORAddress holds.
EA_COMMON_NAME = 1
EA_TERMINAL_TYPE = 23
# X.411 TerminalType values, in the order of oraddress.TERMINAL_TYPES.
_TERMINAL_CODES = dict(zip(TERMINAL_TYPES, (3, 4, 5, 6, 7, 8), strict=True))
_TERMINAL_NAMES = {code: name for name, code in _TERMINAL_CODES.items()}

_ESCAPES = {"a": "@", "p": "%", "b": "!", "q": '"', "u": "_", "l": "(", "r": ")"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ORName:
    """A P1 ORName: the O/R address plus what waypost's ORAddress cannot hold, kept as BER.

    `directory_name` is the encoding of the [0] directory-name; `extra` the
    extension attributes other than common-name and terminal-type (teletex
    variants, physical delivery …), each as received.
    """

    address: ORAddress
    directory_name: bytes | None = None
    extra: tuple[bytes, ...] = ()

    @property
    def text(self) -> str:
        """The canonical RFC 1685 text of the address (what `Envelope` stores)."""
        return format_slash(self.address)


def ps_decode(value: str) -> str:
    """The RFC 2156 printable-string decoding; an unknown "(x)" stays as it is."""
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        close = value.find(")", i, i + 5) if ch == "(" else -1
        if close > 0:
            code = value[i + 1 : close]
            named = _ESCAPES.get(code.lower())
            if named is None and len(code) == 3 and code.isdigit() and 32 <= int(code) <= 126:
                named = chr(int(code))
            if named is not None:
                out.append(named)
                i = close + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _printable(element: Element) -> str:
    return ps_decode(element.as_string(PRINTABLE_STRING))


def _choice_string(element: Element, what: str) -> str:
    """CHOICE { NumericString, PrintableString } inside an explicit tag (or bare)."""
    inner = element.child(0, what) if element.tag.constructed else element
    inner = inner.expect(NUMERIC_STRING, PRINTABLE_STRING, name=what)
    return ps_decode(inner.as_string())


def _encode_choice_string(tag: Tag | None, value: str, *, numeric_ok: bool) -> bytes:
    numeric = numeric_ok and value.isdigit()
    body = encode_string(
        NUMERIC_STRING if numeric else PRINTABLE_STRING, value if numeric else ps_encode(value)
    )
    return body if tag is None else constructed(tag, body)


def _address(element: Element, build: dict[str, object]) -> ORAddress:
    try:
        return ORAddress(**build)  # type: ignore[arg-type]
    except AddressError as exc:
        raise element.error(f"not a valid O/R address: {exc}") from None


# --- ORAddress / ORName ---------------------------------------------------------------


def decode_or_components(owner: Element, items: list[Element]) -> ORName:
    """The ORAddress components (SEQUENCE std, DDAs?, SET extensions?, [0] dir name?)."""
    fields: dict[str, object] = {}
    extra: list[bytes] = []
    directory: bytes | None = None
    std = None
    for item in items:
        if item.tag == SEQUENCE and std is None:
            std = item.named("built-in-standard-attributes")
            _standard(std, fields)
        elif item.tag == SEQUENCE:
            ddas = []
            for raw_dda in item.named("built-in-domain-defined-attributes"):
                dda = raw_dda.expect(SEQUENCE, name="dda")
                ddas.append(
                    (
                        _printable(dda.child(0, "type").expect(PRINTABLE_STRING)),
                        _printable(dda.child(1, "value").expect(PRINTABLE_STRING)),
                    )
                )
            fields["ddas"] = tuple(ddas)
        elif item.tag == SET:
            for attribute in item.named("extension-attributes"):
                _extension_attribute(attribute.expect(SEQUENCE), fields, extra)
        elif item.tag == context(0, True):
            directory = bytes(item.raw)
        else:
            raise item.error(f"unexpected {item.tag} in an O/R address")
    if std is None:
        raise owner.error("O/R address without built-in-standard-attributes")
    if "country" not in fields:
        raise std.error("O/R address without country-name (waypost needs C)")
    return ORName(address=_address(owner, fields), directory_name=directory, extra=tuple(extra))


def _standard(std: Element, fields: dict[str, object]) -> None:
    for item in std:
        tag = item.tag
        if tag == COUNTRY_NAME:
            fields["country"] = _choice_string(item, "country-name")
        elif tag == ADMD_NAME:
            fields["admd"] = _choice_string(item, "administration-domain-name")
        elif tag == context(0):
            fields["x121"] = item.as_string(NUMERIC_STRING)
        elif tag == context(1):
            fields["terminal_id"] = _printable(item)
        elif tag == context(2, True):
            fields["prmd"] = _choice_string(item, "private-domain-name")
        elif tag == context(3):
            fields["organization"] = _printable(item)
        elif tag == context(4):
            fields["numeric_user_id"] = item.as_string(NUMERIC_STRING)
        elif tag == context(5, True):
            names = {0: "surname", 1: "given_name", 2: "initials", 3: "generation"}
            for part in item.named("personal-name"):
                key = names.get(part.tag.number) if part.tag.cls == context(0).cls else None
                if key is None or part.tag.constructed:
                    raise part.error(f"unexpected {part.tag} in personal-name")
                fields[key] = _printable(part)
        elif tag == context(6, True):
            fields["org_units"] = tuple(
                _printable(unit.expect(PRINTABLE_STRING))
                for unit in item.named("organizational-unit-names")
            )
        else:
            raise item.error(f"unexpected {tag} in built-in-standard-attributes")


def _extension_attribute(attribute: Element, fields: dict[str, object], extra: list[bytes]) -> None:
    kind = attribute.child(context(0), "extension-attribute-type").as_int()
    value = attribute.child(context(1, True), "extension-attribute-value")
    if kind == EA_COMMON_NAME:
        fields["common_name"] = _printable(value.child(0).expect(PRINTABLE_STRING))
    elif kind == EA_TERMINAL_TYPE and value.child(0).as_int() in _TERMINAL_NAMES:
        fields["terminal_type"] = _TERMINAL_NAMES[value.child(0).as_int()]
    else:
        extra.append(bytes(attribute.raw))


# Names decoded recently, by their encoding: an MTA sees the same few originators,
# recipients and domains in every message. A hit is what decoding the same octets gives
# (the results are immutable); a failure is never kept, so errors still name their path,
# nor is a name with a string kept as received, so that every object with it is noted.
# Both caches are bounded in entries and in the size of an encoding they keep; a full
# cache starts again empty (one atomic step: the store's worker threads decode too).
NAME_CACHE_SIZE = 4096
_CACHEABLE_NAME = 512
_V = TypeVar("_V")
_ORNAMES: dict[bytes, ORName] = {}
_GDIS: dict[bytes, str] = {}


def _remember(cache: dict[bytes, _V], key: bytes, value: _V) -> _V:
    if len(cache) >= NAME_CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


def _cached_orname(element: Element) -> ORName:
    if len(element.value) > _CACHEABLE_NAME:
        return decode_or_components(element, element.children())
    key = bytes(element.raw)
    known = _ORNAMES.get(key)
    if known is not None:
        return known
    faults = len(element.faults)
    name = decode_or_components(element, element.children())
    if len(element.faults) > faults:
        return name  # strings kept as received: each object that has them must say so
    return _remember(_ORNAMES, key, name)


def known_orname(encoding: bytes) -> ORName | None:
    """The ORName decode_orname gave for this whole encoding (its [APPLICATION 0] header
    included), while it is remembered; None otherwise."""
    return _ORNAMES.get(encoding)


def decode_orname(element: Element) -> ORName:
    """An ORName: `[APPLICATION 0] IMPLICIT SEQUENCE { ORAddress components, [0] dir name }`."""
    return _cached_orname(element.expect(OR_NAME))


def decode_oraddress_seq(element: Element) -> ORName:
    """A bare ORAddress SEQUENCE (as inside report fields)."""
    return _cached_orname(element.expect(SEQUENCE))


def _encode_components(name: ORName | ORAddress) -> list[bytes]:
    if isinstance(name, ORAddress):
        name = ORName(address=name)
    a = name.address
    std = [
        _encode_choice_string(COUNTRY_NAME, a.country, numeric_ok=True),
        _encode_choice_string(ADMD_NAME, a.admd, numeric_ok=False),
    ]
    if a.x121 is not None:
        std.append(encode_string(context(0), a.x121, NUMERIC_STRING))
    if a.terminal_id is not None:
        std.append(encode_string(context(1), ps_encode(a.terminal_id), PRINTABLE_STRING))
    if a.prmd is not None:
        std.append(_encode_choice_string(context(2, True), a.prmd, numeric_ok=False))
    if a.organization is not None:
        std.append(encode_string(context(3), ps_encode(a.organization), PRINTABLE_STRING))
    if a.numeric_user_id is not None:
        std.append(encode_string(context(4), a.numeric_user_id, NUMERIC_STRING))
    if a.surname is not None:
        parts = [
            encode_string(context(n), ps_encode(v), PRINTABLE_STRING)
            for n, v in enumerate((a.surname, a.given_name, a.initials, a.generation))
            if v is not None
        ]
        std.append(constructed(context(5, True), *parts))
    if a.org_units:
        units = [encode_string(PRINTABLE_STRING, ps_encode(u)) for u in a.org_units]
        std.append(constructed(context(6, True), *units))
    out = [sequence(*std)]
    if a.ddas:
        out.append(
            sequence(
                *(
                    sequence(
                        encode_string(PRINTABLE_STRING, ps_encode(t)),
                        encode_string(PRINTABLE_STRING, ps_encode(v)),
                    )
                    for t, v in a.ddas
                )
            )
        )
    attributes = list(name.extra)
    if a.common_name is not None:
        attributes.append(
            _ea(EA_COMMON_NAME, encode_string(PRINTABLE_STRING, ps_encode(a.common_name)))
        )
    if a.terminal_type is not None:
        attributes.append(_ea(EA_TERMINAL_TYPE, encode_int(_TERMINAL_CODES[a.terminal_type])))
    if attributes:
        out.append(set_of(*attributes))
    if name.directory_name is not None:
        out.append(name.directory_name)
    return out


def _ea(kind: int, value: bytes) -> bytes:
    return sequence(encode_int(kind, context(0)), constructed(context(1, True), value))


def encode_orname(name: ORName | ORAddress) -> bytes:
    """`[APPLICATION 0]` ORName."""
    return constructed(OR_NAME, *_encode_components(name))


@lru_cache(maxsize=NAME_CACHE_SIZE)
def _encode_orname_text(text: str) -> bytes:
    return encode_orname(parse_oraddress(text))


def encode_orname_text(text: str) -> bytes:
    """`[APPLICATION 0]` ORName of an O/R address text (raises AddressError); the encodings
    of recent texts are kept."""
    if len(text) > _CACHEABLE_NAME:
        return encode_orname(parse_oraddress(text))
    return _encode_orname_text(text)


def encode_orname_as(name: ORName | ORAddress, tag: Tag) -> bytes:
    """An ORName under an IMPLICIT context tag (X.411's report fields): `tag` replaces
    [APPLICATION 0]."""
    return constructed(tag, *_encode_components(name))


def encode_oraddress_seq(name: ORName | ORAddress) -> bytes:
    """A bare ORAddress SEQUENCE."""
    return sequence(*_encode_components(name))


def orname_from_text(text: str) -> ORAddress:
    """The ORAddress of a canonical text (raises AddressError)."""
    return parse_oraddress(text)


# --- GlobalDomainIdentifier / MTSIdentifier --------------------------------------------


def decode_gdi(element: Element) -> str:
    """GlobalDomainIdentifier → `/C=GB/ADMD=TEST/PRMD=PPTEST/`."""
    element = element.expect(GLOBAL_DOMAIN_IDENTIFIER)
    if len(element.value) > _CACHEABLE_NAME:
        return _decode_gdi(element)
    key = bytes(element.raw)
    known = _GDIS.get(key)
    if known is not None:
        return known
    faults = len(element.faults)
    text = _decode_gdi(element)
    if len(element.faults) > faults:
        return text  # as for names: not kept, so that the next object notes it too
    return _remember(_GDIS, key, text)


def _decode_gdi(element: Element) -> str:
    fields: dict[str, object] = {
        "country": _choice_string(element.child(COUNTRY_NAME, "country-name"), "country-name"),
        "admd": _choice_string(element.child(ADMD_NAME, "administration-domain-name"), "admd"),
    }
    items = element.children()
    if len(items) > 2:
        fields["prmd"] = _choice_string(items[2].named("private-domain-identifier"), "prmd")
    if len(items) > 3:
        raise items[3].error("unexpected element in GlobalDomainIdentifier")
    return format_slash(_address(element, fields))


gdi_parts = parse_global_domain  # the name the encoders here and their callers use


def encode_gdi(text: str) -> bytes:
    """GlobalDomainIdentifier from its text (raises AddressError); recent texts are kept."""
    if len(text) > _CACHEABLE_NAME:
        return _encode_gdi(text)
    return _encode_gdi_cached(text)


def _encode_gdi(text: str) -> bytes:
    address = gdi_parts(text)
    parts = [
        _encode_choice_string(COUNTRY_NAME, address.country, numeric_ok=True),
        _encode_choice_string(ADMD_NAME, address.admd, numeric_ok=False),
    ]
    if address.prmd is not None:
        parts.append(_encode_choice_string(None, address.prmd, numeric_ok=False))
    return constructed(GLOBAL_DOMAIN_IDENTIFIER, *parts)


_encode_gdi_cached = lru_cache(maxsize=NAME_CACHE_SIZE)(_encode_gdi)


def decode_mts_identifier(element: Element, tag: Tag = MTS_IDENTIFIER) -> str:
    """MTSIdentifier → `/C=GB/ADMD=TEST/PRMD=PPTEST/;local-identifier`."""
    element = element.expect(tag)
    domain = decode_gdi(element.child(GLOBAL_DOMAIN_IDENTIFIER, "global-domain-identifier"))
    local = element.child(IA5_STRING, "local-identifier").as_string()
    if len(element) != 2:
        raise element.error("MTSIdentifier must hold exactly a domain and a local identifier")
    return f"{domain};{local}"


def split_mts_identifier(text: str) -> tuple[str, str]:
    """(domain text, local identifier); raises AddressError if not in the canonical form."""
    domain, sep, local = text.partition(";")
    if not sep or not domain.startswith("/"):
        raise AddressError(f"not an MTS identifier '/C=../ADMD=../;local': {text!r}")
    return domain, local


def encode_mts_identifier(text: str, tag: Tag = MTS_IDENTIFIER) -> bytes:
    """MTSIdentifier from its canonical text (raises AddressError)."""
    domain, local = split_mts_identifier(text)
    return constructed(tag, encode_gdi(domain), encode_string(IA5_STRING, local))


__all__ = [
    "ORName",
    "decode_gdi",
    "decode_mts_identifier",
    "decode_or_components",
    "decode_oraddress_seq",
    "decode_orname",
    "encode_gdi",
    "encode_mts_identifier",
    "encode_oraddress_seq",
    "encode_orname",
    "encode_orname_as",
    "encode_orname_text",
    "gdi_parts",
    "known_orname",
    "orname_from_text",
    "ps_decode",
    "split_mts_identifier",
]
