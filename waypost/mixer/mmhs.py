"""STANAG 4406 heading fields ⇄ the MMHS-* header fields RFC 6477 registers, both ways;
addresses are mapped by functions the caller gives (RFC 2156 §4 is the address mapper's)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from email.headerregistry import Address
from email.message import Message
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from typing import Any

from waypost.x400.ipm_heading import ORDescriptor
from waypost.x400.p772 import (
    ADDRESS_LIST_INDICATOR,
    DISTRIBUTION_CODES,
    INFORMATION_LABELS,
    MESSAGE_TYPE_NAMES,
    PILOT_FORWARDING_INFO,
    PRECEDENCE_NAMES,
    DistributionCodes,
    MessageType,
    OtherRecipient,
    P772Error,
    P772Heading,
)

AddressMapper = Callable[[str], str]

# RFC 6477 §3: the header fields, in the order this mapping writes them.
EXEMPTED_ADDRESS = "MMHS-Exempted-Address"  # §3.1, address-list
EXTENDED_AUTHORISATION_INFO = "MMHS-Extended-Authorisation-Info"  # §3.2, date-time
SUBJECT_INDICATOR_CODES = "MMHS-Subject-Indicator-Codes"  # §3.3
HANDLING_INSTRUCTIONS = "MMHS-Handling-Instructions"  # §3.4
MESSAGE_INSTRUCTIONS = "MMHS-Message-Instructions"  # §3.5
CODRESS_MESSAGE_INDICATOR = "MMHS-Codress-Message-Indicator"  # §3.6
ORIGINATOR_REFERENCE = "MMHS-Originator-Reference"  # §3.7
PRIMARY_PRECEDENCE = "MMHS-Primary-Precedence"  # §3.8
COPY_PRECEDENCE = "MMHS-Copy-Precedence"  # §3.9
MESSAGE_TYPE = "MMHS-Message-Type"  # §3.10
OTHER_RECIPIENTS_TO = "MMHS-Other-Recipients-Indicator-To"  # §3.11
OTHER_RECIPIENTS_CC = "MMHS-Other-Recipients-Indicator-CC"  # §3.12
ACP127_MESSAGE_IDENTIFIER = "MMHS-Acp127-Message-Identifier"  # §3.13
ORIGINATOR_PLAD = "MMHS-Originator-PLAD"  # §3.14
MMHS_HEADERS = (
    EXEMPTED_ADDRESS,
    EXTENDED_AUTHORISATION_INFO,
    SUBJECT_INDICATOR_CODES,
    HANDLING_INSTRUCTIONS,
    MESSAGE_INSTRUCTIONS,
    CODRESS_MESSAGE_INDICATOR,
    ORIGINATOR_REFERENCE,
    PRIMARY_PRECEDENCE,
    COPY_PRECEDENCE,
    MESSAGE_TYPE,
    OTHER_RECIPIENTS_TO,
    OTHER_RECIPIENTS_CC,
    ACP127_MESSAGE_IDENTIFIER,
    ORIGINATOR_PLAD,
)
# Fields that may be given more than once, their lists joined (RFC 6477 §3: lists).
_LIST_HEADERS = frozenset(
    h.lower()
    for h in (
        EXEMPTED_ADDRESS,
        SUBJECT_INDICATOR_CODES,
        HANDLING_INSTRUCTIONS,
        MESSAGE_INSTRUCTIONS,
        OTHER_RECIPIENTS_TO,
        OTHER_RECIPIENTS_CC,
    )
)
_CANONICAL = {h.lower(): h for h in MMHS_HEADERS}
_IDENTIFIER = "identifier"
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
# A MilitaryString item is written bare unless it holds what separates list items or
# starts a quoted-string or comment (RFC 5322 §3.2.2, §3.2.4), or white space at an end.
_NEEDS_QUOTES = re.compile(r'[,;"()\\]|^\s|\s$|^$')


class MMHSFieldError(ValueError):
    """An MMHS-* header field that cannot be mapped; the message names the field and why."""


# --- STANAG 4406 → RFC 6477 -----------------------------------------------------------


def p772_to_fields(
    heading: P772Heading, *, or_to_mail: AddressMapper | None = None
) -> list[tuple[str, str]]:
    """The MMHS-* header fields (name, unfolded value) that carry `heading`'s fields.
    Exempted addresses need `or_to_mail`; the fields RFC 6477 has no header for are
    listed by `unmapped_p772`."""
    out: list[tuple[str, str]] = []
    if heading.exempted_addresses:
        if or_to_mail is None:
            raise MMHSFieldError(f"{EXEMPTED_ADDRESS}: no O/R → mail address mapping given")
        out.append(
            (
                EXEMPTED_ADDRESS,
                ", ".join(
                    str(
                        Address(
                            display_name=d.free_form_name or "",
                            addr_spec=or_to_mail(d.address) if d.address else "",
                        )
                    )
                    for d in heading.exempted_addresses
                ),
            )
        )
    if heading.extended_authorisation_info is not None:
        out.append(
            (EXTENDED_AUTHORISATION_INFO, format_datetime(heading.extended_authorisation_info))
        )
    codes = heading.distribution_codes
    if codes is not None and codes.sics:
        out.append((SUBJECT_INDICATOR_CODES, ", ".join(codes.sics)))
    if heading.handling_instructions:
        out.append((HANDLING_INSTRUCTIONS, _string_list(heading.handling_instructions)))
    if heading.message_instructions:
        out.append((MESSAGE_INSTRUCTIONS, _string_list(heading.message_instructions)))
    if heading.codress_message is not None:
        out.append((CODRESS_MESSAGE_INDICATOR, str(heading.codress_message)))
    if heading.originator_reference is not None:
        out.append((ORIGINATOR_REFERENCE, _string(heading.originator_reference)))
    if heading.primary_precedence is not None:
        out.append((PRIMARY_PRECEDENCE, str(heading.primary_precedence)))
    if heading.copy_precedence is not None:
        out.append((COPY_PRECEDENCE, str(heading.copy_precedence)))
    if heading.message_type is not None:
        kind = heading.message_type
        value = str(kind.type)
        if kind.identifier is not None:
            value += f"; {_IDENTIFIER}={_quoted(kind.identifier)}"
        out.append((MESSAGE_TYPE, value))
    for name, type_ in ((OTHER_RECIPIENTS_TO, 0), (OTHER_RECIPIENTS_CC, 1)):
        designators = [r.designator for r in heading.other_recipients if r.type == type_]
        if designators:
            out.append((name, _string_list(designators)))
    if heading.acp127_message_identifier is not None:
        out.append((ACP127_MESSAGE_IDENTIFIER, _string(heading.acp127_message_identifier)))
    if heading.originator_plad is not None:
        out.append((ORIGINATOR_PLAD, _string(heading.originator_plad)))
    return out


def unmapped_p772(heading: P772Heading) -> tuple[str, ...]:
    """The heading extension types (OIDs) of `heading` that RFC 6477 has no header field
    for: what RFC 2156 names in Discarded-X400-IPMS-Extensions."""
    lost = []
    if heading.address_list_indicator:
        lost.append(ADDRESS_LIST_INDICATOR)
    if heading.distribution_codes is not None and heading.distribution_codes.extensions:
        lost.append(DISTRIBUTION_CODES)
    if heading.pilot_forwarding_info:
        lost.append(PILOT_FORWARDING_INFO)
    if heading.information_labels is not None:
        lost.append(INFORMATION_LABELS)
    lost.extend(e.type for e in heading.unread)
    return tuple(lost)


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _string(text: str) -> str:
    # A single value is written bare: a quoted-string is only needed for white space at
    # its ends (which header readers strip) or a value that starts like one.
    return _quoted(text) if text != text.strip() or text.startswith('"') else text


def _string_list(texts: Iterable[str]) -> str:
    return ", ".join(_quoted(t) if _NEEDS_QUOTES.search(t) else t for t in texts)


# --- RFC 6477 → STANAG 4406 -----------------------------------------------------------


def fields_to_p772(
    source: Message | Iterable[tuple[str, str]], *, mail_to_or: AddressMapper | None = None
) -> P772Heading:
    """The STANAG 4406 heading fields the MMHS-* header fields of `source` carry; other
    fields are left alone. Exempted addresses need `mail_to_or`; raises MMHSFieldError."""
    found: dict[str, list[str]] = {}
    for name, value in source.items() if isinstance(source, Message) else source:
        key = name.lower()
        if key not in _CANONICAL:
            continue
        if key in found and key not in _LIST_HEADERS:
            raise MMHSFieldError(f"{_CANONICAL[key]}: given more than once (RFC 6477 §3)")
        found.setdefault(key, []).append(_UNFOLD.sub("", str(value)).strip())
    values: dict[str, Any] = {}
    for key, texts in found.items():
        name = _CANONICAL[key]
        try:
            _read(name, texts, values, mail_to_or)
        except (P772Error, ValueError) as error:
            if isinstance(error, MMHSFieldError):
                raise
            raise MMHSFieldError(f"{name}: {error}") from None
    return P772Heading(**values)


def _read(
    name: str, texts: list[str], values: dict[str, Any], mail_to_or: AddressMapper | None
) -> None:
    """Read one field's values into the P772Heading keyword arguments `values`."""
    text = texts[0]
    if name == EXEMPTED_ADDRESS:
        if mail_to_or is None:
            raise MMHSFieldError(f"{name}: no mail → O/R address mapping given")
        values["exempted_addresses"] = tuple(_addresses(name, texts, mail_to_or))
    elif name == EXTENDED_AUTHORISATION_INFO:
        values["extended_authorisation_info"] = _date(name, text)
    elif name == SUBJECT_INDICATOR_CODES:
        sics = tuple(s for t in texts for s in _split(t) if s)
        values["distribution_codes"] = DistributionCodes(sics=sics)
    elif name == HANDLING_INSTRUCTIONS:
        values["handling_instructions"] = tuple(s for t in texts for s in _split(t))
    elif name == MESSAGE_INSTRUCTIONS:
        values["message_instructions"] = tuple(s for t in texts for s in _split(t))
    elif name == CODRESS_MESSAGE_INDICATOR:
        values["codress_message"] = _integer(name, text)
    elif name == ORIGINATOR_REFERENCE:
        values["originator_reference"] = _unquoted(text)
    elif name == PRIMARY_PRECEDENCE:
        values["primary_precedence"] = _named_integer(name, text, PRECEDENCE_NAMES)
    elif name == COPY_PRECEDENCE:
        values["copy_precedence"] = _named_integer(name, text, PRECEDENCE_NAMES)
    elif name == MESSAGE_TYPE:
        values["message_type"] = _message_type(name, text)
    elif name in (OTHER_RECIPIENTS_TO, OTHER_RECIPIENTS_CC):
        type_ = 0 if name == OTHER_RECIPIENTS_TO else 1
        designators = [OtherRecipient(type=type_, designator=s) for t in texts for s in _split(t)]
        # X.400 keeps one list; primary designators (To) first, then copy (CC).
        others = [*values.get("other_recipients", ()), *designators]
        values["other_recipients"] = tuple(sorted(others, key=lambda r: r.type))
    elif name == ACP127_MESSAGE_IDENTIFIER:
        values["acp127_message_identifier"] = _unquoted(text)
    elif name == ORIGINATOR_PLAD:
        values["originator_plad"] = _unquoted(text)
    replace(P772Heading(), **values)  # the model's own checks, named by this field


def _addresses(name: str, texts: list[str], mail_to_or: AddressMapper) -> list[ORDescriptor]:
    found = []
    for display_name, addr_spec in getaddresses(texts):
        if not addr_spec or "@" not in addr_spec:
            raise MMHSFieldError(f"{name}: {', '.join(texts)!r} holds no usable address")
        found.append(
            ORDescriptor(address=mail_to_or(addr_spec), free_form_name=display_name or None)
        )
    return found


def _date(name: str, text: str) -> datetime:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise MMHSFieldError(f"{name}: {text!r} is not an RFC 5322 date-time") from None
    if when.tzinfo is None:
        raise MMHSFieldError(f"{name}: {text!r} has no known time zone (-0000)")
    return when


def _integer(name: str, text: str) -> int:
    if not re.fullmatch(r"-?[0-9]{1,10}", text):
        raise MMHSFieldError(f"{name}: {text!r} is not a decimal number")
    return int(text)


def _named_integer(name: str, text: str, names: tuple[str, ...]) -> int:
    # Written as the number; the STANAG 4406 names are read too, without regard to case.
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered)
    return _integer(name, text)


def _message_type(name: str, text: str) -> MessageType:
    kind, _, rest = text.partition(";")
    identifier = None
    if rest.strip():
        key, equals, value = rest.strip().partition("=")
        if not equals or key.strip().lower() != _IDENTIFIER:
            raise MMHSFieldError(f"{name}: {rest.strip()!r} is not identifier=<military string>")
        identifier = _unquoted(value.strip())
    return MessageType(
        type=_named_integer(name, kind.strip(), MESSAGE_TYPE_NAMES), identifier=identifier
    )


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _split(text: str) -> list[str]:
    """The items of a comma-separated list whose items may be quoted-strings; ';' is read
    as a separator too (it is no PrintableString character)."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            current.append(char)
        elif char in ",;" and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if quoted:
        raise MMHSFieldError(f"{text!r}: a quoted-string is not closed")
    items.append("".join(current).strip())
    return [_unquoted_item(i) for i in items if i]


def _unquoted_item(item: str) -> str:
    # Escapes were consumed by _split; only the quotes are left to remove.
    return item[1:-1] if len(item) >= 2 and item[0] == item[-1] == '"' else item
