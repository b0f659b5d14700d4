"""Hypothesis strategies for IPM headings and bodies whose BER round-trips exactly: O/R
addresses in their canonical text, strings of the characters their X.420 types carry."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st
from test_oraddress import oraddresses

from waypost.address.oraddress import format_slash
from waypost.asn1 import encode_int, encode_string, sequence
from waypost.asn1.core import PRINTABLE_STRING
from waypost.x400.ipm_bodies import (
    ISO_8859_REGISTRATIONS,
    BilaterallyDefined,
    BodyPart,
    FileTransfer,
    GeneralText,
    IA5Text,
    MessagePart,
)
from waypost.x400.ipm_heading import (
    IMPORTANCE,
    NOTIFICATION_REQUESTS,
    SENSITIVITY,
    HeadingExtension,
    IPMHeading,
    IPMIdentifier,
    ORDescriptor,
)

PRINTABLE = st.from_regex(r"[A-Za-z0-9 '()+,\-./:=?]{0,40}", fullmatch=True)
LATIN1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"))
addresses = oraddresses().map(format_slash)
WHEN = st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2049, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
# Private heading extensions (an arc no mapped extension uses) with a BER value or none.
extensions = st.builds(
    HeadingExtension,
    type=st.integers(0, 2**20).map(lambda n: f"1.3.6.1.4.1.99999.{n}"),
    value=st.sampled_from(
        [b"", encode_int(7), encode_string(PRINTABLE_STRING, "x"), sequence(encode_int(1))]
    ),
)


@st.composite
def descriptors(draw: st.DrawFn, *, recipient: bool = False) -> ORDescriptor:
    address = draw(st.none() | addresses)
    name = draw(LATIN1.filter(lambda t: len(t) <= 64)) if address is None else None
    name = draw(st.none() | LATIN1.filter(lambda t: len(t) <= 64)) if name is None else name
    if address is None and name is None:
        name = "nobody"
    fields: dict[str, object] = {}
    if recipient:
        fields = {
            "notification_requests": frozenset(
                draw(st.sets(st.sampled_from(NOTIFICATION_REQUESTS)))
            ),
            "reply_requested": draw(st.booleans()),
            "recipient_extensions": tuple(draw(st.lists(extensions, max_size=2))),
        }
    return ORDescriptor(
        address=address,
        free_form_name=name,
        telephone_number=draw(st.none() | st.from_regex(r"\+?[0-9 ]{1,20}", fullmatch=True)),
        **fields,  # type: ignore[arg-type]
    )


identifiers = st.builds(
    IPMIdentifier, user=st.none() | addresses, local=PRINTABLE.filter(lambda t: len(t) <= 64)
)
recipients = descriptors(recipient=True)
some = st.lists


@st.composite
def headings(draw: st.DrawFn, *, p2: bool = False) -> IPMHeading:
    """Headings with every X.420 §7.2 field; with `p2`, only what P2 carries."""
    recipient = descriptors(recipient=False) if p2 else recipients
    return IPMHeading(
        this_ipm=draw(identifiers),
        originator=draw(st.none() | descriptors()),
        authorizing_users=tuple(draw(some(descriptors(), max_size=2))),
        primary_recipients=tuple(draw(some(recipient, max_size=3))),
        copy_recipients=tuple(draw(some(recipient, max_size=2))),
        blind_copy_recipients=tuple(draw(some(recipient, max_size=2))),
        reply_recipients=tuple(
            draw(some(addresses.map(lambda a: ORDescriptor(address=a)), max_size=2))
        ),
        replied_to_ipm=draw(st.none() | identifiers),
        related_ipms=tuple(draw(some(identifiers, max_size=2))),
        obsoleted_ipms=tuple(draw(some(identifiers, max_size=2))),
        subject=draw(st.none() | LATIN1.filter(lambda t: len(t) <= 128)),
        expiry_time=draw(st.none() | WHEN),
        reply_time=draw(st.none() | WHEN),
        importance=draw(st.sampled_from(IMPORTANCE)),
        sensitivity=draw(st.none() | st.sampled_from(SENSITIVITY)),
        auto_forwarded=draw(st.booleans()),
        languages=()
        if p2
        else tuple(draw(some(st.from_regex(r"[a-z]{2}", fullmatch=True), max_size=2))),
        incomplete_copy=False if p2 else draw(st.booleans()),
        other_extensions=() if p2 else tuple(draw(some(extensions, max_size=2))),
    )


TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\n"), max_size=60)


def leaf_parts(*, p2: bool = False) -> st.SearchStrategy[BodyPart]:
    """Body parts other than forwarded messages; with `p2`, the basic ones only."""
    basic: st.SearchStrategy[BodyPart] = st.builds(IA5Text, text=TEXT) | st.builds(
        BilaterallyDefined, data=st.binary(max_size=40)
    )
    if p2:
        return basic
    general = st.builds(
        lambda charset, text: GeneralText(charset=charset, text=text),
        st.sampled_from(sorted(ISO_8859_REGISTRATIONS)),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    )
    return basic | general | files()


def files() -> st.SearchStrategy[BodyPart]:
    return st.builds(
        FileTransfer,
        data=st.binary(max_size=60),
        filename=st.none()
        | st.text(
            st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=30
        ),
        content_type=st.sampled_from(["application/octet-stream", "text/plain", "image/png"]),
        parameters=st.sampled_from([(), (("name", 'a "b" c'),), (("charset", "utf-8"),)]),
        created=st.none() | WHEN,
        modified=st.none() | WHEN,
    )


def bodies(*, p2: bool = False, depth: int = 1) -> st.SearchStrategy[tuple[BodyPart, ...]]:
    """Bodies of up to four parts, a forwarded IPM among them up to `depth` deep."""
    part = leaf_parts(p2=p2)
    if depth > 0:
        forwarded = st.builds(
            lambda heading, body: MessagePart(heading=heading, body=body),
            headings(p2=p2),
            bodies(p2=p2, depth=depth - 1),
        )
        part = part | forwarded
    return st.lists(part, max_size=4).map(tuple)
