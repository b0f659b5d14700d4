"""Round trips of the RFC 2156 §5 heading mapping over generated headings and headers:
heading → header → heading and header → heading → header keep every field RFC 2156 maps."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage, Message
from email.utils import format_datetime, parsedate_to_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_mixer_heading import GATEWAY, mail_to_or, or_to_mail
from waypost.mixer.heading import MAPPED_HEADERS, headers_to_heading, heading_to_headers
from waypost.mixer.message_ids import printable_escape
from waypost.x400.ipm_heading import (
    IMPORTANCE,
    SENSITIVITY,
    IPMHeading,
    IPMIdentifier,
    ORDescriptor,
)

_WORD = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
_NAME = st.from_regex(r"[A-Za-zÀ-ÿ]{1,8}( [A-Za-zÀ-ÿ]{1,8}){0,2}", fullmatch=True)
_PRINTABLE = st.from_regex(r"[A-Za-z0-9 '()+,\-./:=?]{0,40}", fullmatch=True)
_MSG_ID = st.builds(lambda a, b, c: f"{a}.{b}@{c}.example", _WORD, _WORD, _WORD)
_WHEN = st.builds(
    lambda instant, minutes: instant.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)).map(
        lambda d: d.replace(microsecond=0)
    ),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)

descriptors = st.builds(
    lambda s, o, name: ORDescriptor(address=f"/O={o}/S={s}/", free_form_name=name),
    _WORD,
    _WORD,
    st.none() | _NAME,
)
identifiers = st.one_of(
    # Identifiers a gateway made from an RFC 822 msg-id, and ones X.400 made.
    _MSG_ID.map(lambda m: IPMIdentifier(user=None, local=printable_escape(m))),
    st.builds(
        IPMIdentifier,
        user=st.none() | descriptors.map(lambda d: d.address),
        local=_PRINTABLE,
    ),
)
some = st.lists  # a shorthand for the tuples of the heading below


@st.composite
def headings(draw: st.DrawFn) -> IPMHeading:
    authorizing = tuple(draw(some(descriptors, max_size=3)))
    # An author other than the originator needs the originator (Sender:) beside it.
    originator = draw(descriptors) if authorizing else draw(st.none() | descriptors)
    return IPMHeading(
        this_ipm=draw(identifiers),
        originator=originator,
        authorizing_users=authorizing,
        primary_recipients=tuple(draw(some(descriptors, max_size=3))),
        copy_recipients=tuple(draw(some(descriptors, max_size=2))),
        blind_copy_recipients=tuple(draw(some(descriptors, max_size=2))),
        reply_recipients=tuple(draw(some(descriptors, max_size=2))),
        replied_to_ipm=draw(st.none() | identifiers),
        related_ipms=tuple(draw(some(identifiers, max_size=3))),
        obsoleted_ipms=tuple(draw(some(identifiers, max_size=2))),
        subject=draw(st.none() | _NAME),
        expiry_time=draw(st.none() | _WHEN),
        reply_time=draw(st.none() | _WHEN),
        importance=draw(st.sampled_from(IMPORTANCE)),
        sensitivity=draw(st.none() | st.sampled_from(SENSITIVITY)),
        auto_forwarded=draw(st.booleans()),
        languages=tuple(draw(some(st.from_regex(r"[a-z]{2}", fullmatch=True), max_size=3))),
        incomplete_copy=draw(st.booleans()),
    )


def _reparsed(message: EmailMessage) -> Message:
    # Through the wire form, so folding and encoded-words are part of the trip.
    return email.message_from_string(message.as_string(), policy=email.policy.default)


@settings(max_examples=80, deadline=None)
@given(headings())
def test_heading_to_header_to_heading_keeps_every_mapped_field(heading: IPMHeading) -> None:
    headers = heading_to_headers(heading, or_to_mail=or_to_mail, gateway_domain=GATEWAY)
    back = headers_to_heading(_reparsed(headers), mail_to_or=mail_to_or, gateway_domain=GATEWAY)
    assert back == heading


mail_addresses = st.builds(
    lambda s, o, name: f"{name} <{s}@{o}.example>" if name else f"{s}@{o}.example",
    _WORD,
    _WORD,
    st.none() | st.from_regex(r"[A-Za-z]{1,8}( [A-Za-z]{1,8}){0,2}", fullmatch=True),
)


def _address_list(draw: st.DrawFn, most: int) -> str | None:
    found = draw(some(mail_addresses, max_size=most))
    return ", ".join(found) if found else None


@st.composite
def header_blocks(draw: st.DrawFn) -> EmailMessage:
    message = EmailMessage(policy=email.policy.default)
    authors = draw(some(mail_addresses, min_size=1, max_size=3))
    message["From"] = ", ".join(authors)
    if len(authors) > 1 or draw(st.booleans()):
        message["Sender"] = draw(mail_addresses)  # RFC 5322 §3.6.2: required with many authors
    for name, most in (("To", 3), ("Cc", 2), ("Bcc", 2), ("Reply-To", 2)):
        value = _address_list(draw, most)
        if value:
            message[name] = value
    optional: dict[str, st.SearchStrategy[str]] = {
        "Subject": _NAME,
        "In-Reply-To": _MSG_ID.map(lambda m: f"<{m}>"),
        "References": some(_MSG_ID, min_size=1, max_size=3).map(
            lambda ms: " ".join(f"<{m}>" for m in ms)
        ),
        "Obsoletes": _MSG_ID.map(lambda m: f"<{m}>"),
        "Expiry-Date": _WHEN.map(format_datetime),
        "Reply-By": _WHEN.map(format_datetime),
        "Importance": st.sampled_from(["low", "high"]),
        "Sensitivity": st.sampled_from(["Personal", "Private", "Company-Confidential"]),
        "Autoforwarded": st.just("TRUE"),
        "Incomplete-Copy": st.just(""),
    }
    message["Message-ID"] = f"<{draw(_MSG_ID)}>"
    for name, values in optional.items():
        if draw(st.booleans()):
            message[name] = draw(values)
    for language in draw(some(st.from_regex(r"[a-z]{2}", fullmatch=True), max_size=2)):
        message["Language"] = language
    return message


def _meaning(message: Message) -> dict[str, list[object]]:
    """What each mapped field says, independent of how it is written."""
    meaning: dict[str, list[object]] = {}
    for name in MAPPED_HEADERS:
        for value in message.get_all(name) or []:
            addresses = getattr(value, "addresses", None)
            said: object
            if addresses is not None:
                said = [(a.display_name, a.addr_spec) for a in addresses]
            elif name in ("Expiry-Date", "Reply-By"):
                said = parsedate_to_datetime(str(value))
            elif name in ("Message-ID", "In-Reply-To", "References", "Obsoletes"):
                said = str(value).split()
            else:
                said = str(value).lower()
            meaning.setdefault(name, []).append(said)
    return meaning


@settings(max_examples=80, deadline=None)
@given(header_blocks())
def test_header_to_heading_to_header_keeps_every_mapped_field(message: EmailMessage) -> None:
    heading = headers_to_heading(_reparsed(message), mail_to_or=mail_to_or, gateway_domain=GATEWAY)
    back = heading_to_headers(heading, or_to_mail=or_to_mail, gateway_domain=GATEWAY)
    assert _meaning(_reparsed(back)) == _meaning(_reparsed(message))
