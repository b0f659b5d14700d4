"""The IPM heading (X.420 §7.2) ⇄ RFC 5322 header fields, as RFC 2156 §5 maps them, both ways;
addresses are mapped by a function the caller gives (RFC 2156 §4 is the address mapper's)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from functools import lru_cache

from waypost.mixer.bodies import DEFAULT_POLICY
from waypost.mixer.header_fields import HeaderFields, plain_mailboxes
from waypost.mixer.header_text import FieldValue
from waypost.mixer.message_ids import (
    MessageIdError,
    ipm_id_to_msg_id,
    msg_id_to_ipm_id,
    msg_ids_in,
)
from waypost.x400.ipm_heading import (
    IMPORTANCE,
    SENSITIVITY,
    IPMHeading,
    IPMIdentifier,
    ORDescriptor,
)

AddressMapper = Callable[[str], str]

# RFC 2156 §5 defines these header fields for heading fields RFC 822 lacks; the values
# are written as RFC 2156 spells them and read without regard to case.
_SENSITIVITY_WORDS = {
    "personal": "Personal",
    "private": "Private",
    "company-confidential": "Company-Confidential",
}
_BOOLEAN_WORDS = {"true": "true", "false": "false"}
# X.420's own words, which RFC 2156 §5.3 spells the same in Importance: and Sensitivity:.
_IMPORTANCE_WORDS = {word: word for word in IMPORTANCE}
_SENSITIVITY_KEYS = {word: word for word in SENSITIVITY}

# The header fields this mapping writes or reads; the gateway passes others on as they are.
MAPPED_HEADERS = (
    "From",
    "Sender",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Obsoletes",
    "Supersedes",
    "Expiry-Date",
    "Reply-By",
    "Importance",
    "Sensitivity",
    "Autoforwarded",
    "Language",
    "Incomplete-Copy",
    "Disposition-Notification-To",
    "Discarded-X400-IPMS-Extensions",
)


# Fields are folded only at RFC 5322 §2.1.1's hard limit of 998 characters: the stdlib's
# folder splits encoded-words of display names and encodes the comma after one, which
# changes the addresses a reader sees.
_WRITING = DEFAULT_POLICY.clone(max_line_length=998)
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")


class HeadingMappingError(ValueError):
    """A header field that cannot be mapped; the message names the field and the reason."""


# --- X.400 → RFC 5322 (RFC 2156 §5.3) -------------------------------------------------


def heading_to_headers(
    heading: IPMHeading, *, or_to_mail: AddressMapper, gateway_domain: str
) -> EmailMessage:
    """A header-only message whose fields carry every heading field RFC 2156 maps."""
    message = EmailMessage(policy=_WRITING)
    for name, value in heading_fields(
        heading, or_to_mail=or_to_mail, gateway_domain=gateway_domain
    ):
        message[name] = value
    return message


def heading_fields(
    heading: IPMHeading, *, or_to_mail: AddressMapper, gateway_domain: str
) -> list[tuple[str, FieldValue]]:
    """The header fields (name, value) that carry every heading field RFC 2156 maps, in
    order: an address field's value is its Address objects, others are text (written
    by waypost.mixer.header_text, or set on a message)."""
    fields: list[tuple[str, FieldValue]] = []

    def addresses(name: str, descriptors: Iterable[ORDescriptor]) -> None:
        mapped = [_mail_address(d, or_to_mail) for d in descriptors]
        if mapped:
            fields.append((name, mapped))

    # RFC 2156 §5.3: with authorizing users, they are the authors (From:) and the
    # originator is the sender (Sender:); without, the originator is From:.
    if heading.authorizing_users:
        addresses("From", heading.authorizing_users)
        if heading.originator is not None:
            addresses("Sender", [heading.originator])
    elif heading.originator is not None:
        addresses("From", [heading.originator])
    addresses("To", heading.primary_recipients)
    addresses("Cc", heading.copy_recipients)
    addresses("Bcc", heading.blind_copy_recipients)
    addresses("Reply-To", heading.reply_recipients)
    if heading.subject is not None:
        # The policy writes non-ASCII text as RFC 2047 encoded-words.
        fields.append(("Subject", heading.subject))
    fields.append(("Message-ID", ipm_id_to_msg_id(heading.this_ipm, gateway_domain)))
    if heading.replied_to_ipm is not None:
        fields.append(("In-Reply-To", ipm_id_to_msg_id(heading.replied_to_ipm, gateway_domain)))
    _ids("References", heading.related_ipms, fields, gateway_domain)
    # RFC 2156 defines Obsoletes: for obsoleted-IPMs (Supersedes: is read as well).
    _ids("Obsoletes", heading.obsoleted_ipms, fields, gateway_domain)
    if heading.expiry_time is not None:
        fields.append(("Expiry-Date", format_datetime(heading.expiry_time)))
    if heading.reply_time is not None:
        fields.append(("Reply-By", format_datetime(heading.reply_time)))
    if heading.importance != "normal":
        fields.append(("Importance", heading.importance))
    if heading.sensitivity is not None:
        fields.append(("Sensitivity", _SENSITIVITY_WORDS[heading.sensitivity]))
    if heading.auto_forwarded:
        fields.append(("Autoforwarded", "TRUE"))
    for language in heading.languages:
        fields.append(("Language", language))
    if (
        heading.originator is not None
        and heading.originator.address
        and any(
            "rn" in r.notification_requests
            for r in (
                *heading.primary_recipients,
                *heading.copy_recipients,
                *heading.blind_copy_recipients,
            )
        )
    ):
        # RFC 2156's IPN mapping: a receipt notification asked of a recipient is an MDN
        # asked of the reader (RFC 8098 §2.1), sent to the IPM's originator.
        # (not in the stdlib's header registry: written as text)
        notify = str(_mail_address(heading.originator, or_to_mail))
        fields.append(("Disposition-Notification-To", notify))
    if heading.incomplete_copy:
        fields.append(("Incomplete-Copy", ""))
    if heading.other_extensions:
        # RFC 2156: heading extensions with no mapping are named, not carried.
        named = ", ".join(e.type for e in heading.other_extensions)
        fields.append(("Discarded-X400-IPMS-Extensions", named))
    return fields


def _mail_address(descriptor: ORDescriptor, or_to_mail: AddressMapper) -> Address:
    if descriptor.address is None:
        # X.420 §7.2.3 allows a descriptor with a free-form name only: no address to map.
        name = descriptor.free_form_name
        raise HeadingMappingError(f"O/R descriptor {name!r} has no O/R address to map")
    username, domain = _addr_spec_parts(or_to_mail(descriptor.address))
    return Address(display_name=descriptor.free_form_name or "", username=username, domain=domain)


@lru_cache(maxsize=1024)
def _addr_spec_parts(addr_spec: str) -> tuple[str, str]:
    """The local part and domain the email package reads in an addr-spec, as
    Address(addr_spec=...) does (and raising as it does): parsing it is most of the cost
    of an Address, and the same mailboxes come in message after message."""
    address = Address(addr_spec=addr_spec)
    return address.username, address.domain


def _ids(
    name: str,
    identifiers: Iterable[IPMIdentifier],
    fields: list[tuple[str, FieldValue]],
    gateway_domain: str,
) -> None:
    msg_ids = [ipm_id_to_msg_id(i, gateway_domain) for i in identifiers]
    if msg_ids:
        fields.append((name, " ".join(msg_ids)))


# --- RFC 5322 → X.400 (RFC 2156 §5.1) -------------------------------------------------


def headers_to_heading(
    message: Message | HeaderFields,
    *,
    mail_to_or: AddressMapper,
    gateway_domain: str,
    generated_id: IPMIdentifier | None = None,
) -> IPMHeading:
    """The IPM heading RFC 2156 maps a message's header fields to. A message without a
    Message-ID takes generated_id (the gateway's own); raises HeadingMappingError. The
    fields may be given already read."""
    fields = message if isinstance(message, HeaderFields) else HeaderFields(message)
    authors = _descriptors(fields, "From", mail_to_or)
    senders = _descriptors(fields, "Sender", mail_to_or)
    # RFC 2156 §5.1: Sender: is the originator and From: the authorizing users; a
    # message without Sender: has its (single) author as originator.
    if senders:
        originator: ORDescriptor | None = senders[0]
        authorizing = tuple(authors)
    elif len(authors) == 1:
        originator, authorizing = authors[0], ()
    else:
        originator, authorizing = (authors[0] if authors else None), tuple(authors)
    # RFC 8098 §2.1 Disposition-Notification-To: an MDN is asked of every reader, which
    # X.420 §7.2.4 says as a receipt notification request on each recipient.
    asked = frozenset({"rn"}) if fields.text("Disposition-Notification-To") else frozenset()
    return IPMHeading(
        this_ipm=_this_ipm(fields, gateway_domain, generated_id),
        originator=originator,
        authorizing_users=authorizing,
        primary_recipients=tuple(_descriptors(fields, "To", mail_to_or, asked)),
        copy_recipients=tuple(_descriptors(fields, "Cc", mail_to_or, asked)),
        blind_copy_recipients=tuple(_descriptors(fields, "Bcc", mail_to_or, asked)),
        reply_recipients=tuple(_descriptors(fields, "Reply-To", mail_to_or)),
        replied_to_ipm=_first_id(fields, "In-Reply-To", gateway_domain),
        related_ipms=tuple(_all_ids(fields, ("References",), gateway_domain)),
        obsoleted_ipms=tuple(_all_ids(fields, ("Obsoletes", "Supersedes"), gateway_domain)),
        subject=fields.text("Subject"),
        expiry_time=_date(fields, "Expiry-Date"),
        reply_time=_date(fields, "Reply-By"),
        importance=_choice(fields, "Importance", _IMPORTANCE_WORDS) or "normal",
        sensitivity=_choice(fields, "Sensitivity", _SENSITIVITY_KEYS),
        auto_forwarded=_choice(fields, "Autoforwarded", _BOOLEAN_WORDS) == "true",
        languages=tuple(_languages(fields)),
        incomplete_copy="Incomplete-Copy" in fields,
    )


def _descriptors(
    fields: HeaderFields,
    name: str,
    mail_to_or: AddressMapper,
    asked: frozenset[str] = frozenset(),
) -> list[ORDescriptor]:
    if name not in fields:  # most of the six are absent from most mail
        return []
    return [
        ORDescriptor(
            address=mail_to_or(addr_spec),
            free_form_name=display_name or None,
            notification_requests=asked,
        )
        for display_name, addr_spec in _mailboxes(fields, name)
    ]


def _mailboxes(fields: HeaderFields, name: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) of each mailbox of a field. Fields parsed from text are
    read from their raw form: the stdlib keeps the folding white space between adjacent
    encoded-words of a display name, which RFC 2047 §6.2 says to ignore."""
    found: list[tuple[str, str]] = []
    for _, raw in fields.raw(name):
        parsed = getattr(raw, "addresses", None)
        if parsed is not None:
            pairs = [(a.display_name, a.addr_spec) for a in parsed]
        else:
            text = _UNFOLD.sub("", str(raw))
            plain = plain_mailboxes(text)
            if plain is None:
                pairs = [(_decoded(display), spec) for display, spec in getaddresses([text])]
            else:
                pairs = plain
        for display_name, addr_spec in pairs:
            if not addr_spec or addr_spec == "<>" or "@" not in addr_spec:
                raise HeadingMappingError(f"{name}: {str(raw)!r} holds no usable address")
            found.append((display_name, addr_spec))
    return found


def _decoded(display_name: str) -> str:
    if "=?" not in display_name:
        return display_name
    return str(make_header(decode_header(display_name)))


def _this_ipm(
    fields: HeaderFields, gateway_domain: str, generated_id: IPMIdentifier | None
) -> IPMIdentifier:
    ids = _all_ids(fields, ("Message-ID",), gateway_domain)
    if ids:
        return ids[0]
    if generated_id is None:
        raise HeadingMappingError("Message-ID: absent, and no identifier was given to use")
    return generated_id


def _first_id(fields: HeaderFields, name: str, gateway_domain: str) -> IPMIdentifier | None:
    # X.420 has one replied-to IPM; RFC 2156 maps the first msg-id of In-Reply-To.
    ids = _all_ids(fields, (name,), gateway_domain)
    return ids[0] if ids else None


def _all_ids(
    fields: HeaderFields, names: Iterable[str], gateway_domain: str
) -> list[IPMIdentifier]:
    found: list[IPMIdentifier] = []
    for name in names:
        for value in fields.texts(name):
            try:
                found.extend(msg_id_to_ipm_id(m, gateway_domain) for m in msg_ids_in(name, value))
            except MessageIdError as error:
                raise HeadingMappingError(f"{name}: {error}") from None
    return found


def _date(fields: HeaderFields, name: str) -> datetime | None:
    value = fields.text(name)
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise HeadingMappingError(f"{name}: {value!r} is not an RFC 5322 date-time") from None
    if when.tzinfo is None:
        raise HeadingMappingError(f"{name}: {value!r} has no known time zone (-0000)")
    return when


def _choice(fields: HeaderFields, name: str, words: dict[str, str]) -> str | None:
    value = fields.text(name)
    if value is None:
        return None
    key = value.strip().lower()
    if key not in words:
        raise HeadingMappingError(f"{name}: {value!r} is not one of {sorted(set(words))}")
    return words[key]


def _languages(fields: HeaderFields) -> list[str]:
    # RFC 2156: Language: 2*ALPHA [language-description]; X.420 keeps the ISO 639 code.
    found = []
    for value in fields.texts("Language"):
        code = value.split("(")[0].strip()
        if len(code) != 2 or not code.isascii() or not code.isalpha():
            raise HeadingMappingError(f"Language: {value!r} is not a two-letter ISO 639 code")
        found.append(code.lower())
    return found
