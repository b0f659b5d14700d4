"""Round trips of IPM bodies through MIME (RFC 2157), over generated bodies: X.400 → MIME →
X.400 gives the same body parts; MIME → X.400 → MIME keeps each leaf's type, charset,
filename and octets. Each MIME form crosses as SMTP carries it (CRLF, parsed again)."""

from __future__ import annotations

import re
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import default

from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.mixer.bodies import (
    body_to_mime,
    mime_to_body,
    mixed_bytes,
    single_text_bytes,
    written_body,
)
from waypost.smtp.server_message import has_bare_cr_or_lf
from waypost.x400.ipm_bodies import (
    ISO_8859_REGISTRATIONS,
    BilaterallyDefined,
    BodyPart,
    FileTransfer,
    GeneralText,
    IA5Text,
    MessagePart,
)

SMTP = default.clone(linesep="\r\n")


def over_the_wire(entity: EmailMessage) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(entity.as_bytes(policy=SMTP))
    assert isinstance(message, EmailMessage)
    return message


def _alphabet(charset: str) -> str:
    """The printable characters of an ISO 8859 part (some parts leave code points unset)."""
    chars = []
    for code in [*range(0x20, 0x7F), *range(0xA0, 0x100)]:
        try:
            chars.append(bytes([code]).decode(charset))
        except UnicodeDecodeError:
            continue
    return "".join(chars) + "\n\t"


ascii_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\n"))
ia5 = st.builds(IA5Text, text=ascii_text)
general = st.sampled_from(sorted(ISO_8859_REGISTRATIONS)).flatmap(
    lambda charset: st.builds(
        GeneralText, charset=st.just(charset), text=st.text(_alphabet(charset))
    )
)
bilateral = st.builds(BilaterallyDefined, data=st.binary())
filenames = st.none() | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-é日", min_size=1
)
file_types = st.sampled_from(
    [
        ("application/octet-stream", ()),
        ("application/pdf", ()),
        ("image/png", ()),
        ("text/html", (("charset", "utf-8"),)),
        ("text/plain", (("charset", "iso-8859-1"),)),
    ]
)
ftbp = st.builds(
    lambda kind, data, filename: FileTransfer(
        data=data, filename=filename, content_type=kind[0], parameters=kind[1]
    ),
    file_types,
    st.binary(),
    filenames,
)
words = st.from_regex(r"[A-Za-z0-9]{1,10}( [A-Za-z0-9]{1,10}){0,3}", fullmatch=True)
headings = st.builds(
    lambda subject, sender: (("Subject", subject), ("From", sender)),
    words,
    st.sampled_from(["jo@example.org", "Jo Smith <jo@example.org>"]),
)
leaves = ia5 | general | bilateral | ftbp
body_parts = st.recursive(
    leaves,
    lambda inner: st.builds(
        lambda heading, body: MessagePart(heading=heading, body=tuple(body)),
        headings,
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(body_parts, min_size=1, max_size=5))
def test_x400_to_mime_to_x400_gives_the_same_body_parts(parts: list[BodyPart]) -> None:
    assert mime_to_body(over_the_wire(body_to_mime(parts))) == parts


# Texts with CR and LF anywhere, alone or paired: what a peer's IA5 or ISO 8859 text can
# hold (X.420 puts no rule on its line ends).
line_ends_anywhere = st.text(alphabet="ab .\r\n")
loose_leaves = (
    leaves
    | st.builds(IA5Text, text=line_ends_anywhere)
    | st.builds(GeneralText, charset=st.just("iso-8859-1"), text=line_ends_anywhere)
)


def _any_boundary(octets: bytes) -> bytes:
    """The octets with a multipart boundary's random digits made the same."""
    return re.sub(rb"={15}[0-9]+==", b"=" * 15 + b"0==", octets)


@settings(max_examples=300, deadline=None)
@given(st.lists(loose_leaves, min_size=1, max_size=4))
def test_a_body_written_directly_says_truly_whether_its_line_ends_are_all_crlf(
    parts: list[BodyPart],
) -> None:
    # written_body's mark lets the SMTP client send the converted mail unscanned, so it
    # must be exactly what a scan of the octets finds, and the octets mixed_bytes's.
    written = written_body(parts, SMTP)
    if written is None:
        assert mixed_bytes(parts, SMTP) is None and single_text_bytes(parts) is None
        return
    octets, crlf = written
    other = single_text_bytes(parts) or mixed_bytes(parts, SMTP)
    assert other is not None and _any_boundary(octets) == _any_boundary(other)
    assert crlf == (not has_bare_cr_or_lf(octets))


# -- MIME → X.400 → MIME, the MIME built by the standard library -----------------------


@st.composite
def mime_leaves(draw: st.DrawFn) -> EmailMessage:
    leaf = EmailMessage(policy=default)
    filename = draw(filenames)
    disposition = "attachment" if filename is not None else None
    if draw(st.booleans()):
        subtype = draw(st.sampled_from(["plain", "html"]))
        charset = draw(st.sampled_from(["us-ascii", "utf-8", "iso-8859-1", "iso-8859-7"]))
        alphabet = (
            _alphabet("iso-8859-1") + "日本€"
            if charset == "utf-8"
            else _alphabet("iso-8859-1" if charset == "us-ascii" else charset)
        )
        text = draw(st.text(alphabet=alphabet))
        if charset == "us-ascii":
            text = text.encode("ascii", "ignore").decode()
        leaf.set_content(
            text, subtype=subtype, charset=charset, disposition=disposition, filename=filename
        )
    else:
        maintype, subtype = draw(
            st.sampled_from(
                [("application", "octet-stream"), ("application", "zip"), ("image", "gif")]
            )
        )
        leaf.set_content(
            draw(st.binary()), maintype, subtype, disposition=disposition, filename=filename
        )
    del leaf["MIME-Version"]
    return leaf


def _charset(leaf: Message) -> str | None:
    """RFC 2157 §6.1/§6.2 keep the charset, save that ASCII-only text/plain labelled
    UTF-8 becomes ia5-text and so US-ASCII."""
    charset = leaf.get_content_charset()
    data = leaf.get_payload(decode=True)
    plain = leaf.get_content_type() == "text/plain" and leaf.get_filename() is None
    if plain and charset == "utf-8" and isinstance(data, bytes) and data.isascii():
        return "us-ascii"
    return charset


def _octets(leaf: Message) -> bytes:
    data = leaf.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data.replace(b"\r\n", b"\n") if leaf.get_content_maintype() == "text" else data


def _leaves(entity: EmailMessage) -> list[Message]:
    if entity.get_content_type() == "multipart/mixed":
        return list(entity.iter_parts())
    return [entity]


@settings(max_examples=150, deadline=None)
@given(st.lists(mime_leaves(), min_size=1, max_size=4))
def test_mime_to_x400_to_mime_keeps_each_leaf(leaves_in: list[EmailMessage]) -> None:
    if len(leaves_in) == 1:
        original = leaves_in[0]
    else:
        original = EmailMessage(policy=default)
        original.make_mixed()
        for leaf in leaves_in:
            original.attach(leaf)
    sent = over_the_wire(original)
    received = over_the_wire(body_to_mime(mime_to_body(sent)))
    before, after = _leaves(sent), _leaves(received)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        assert new.get_content_type() == old.get_content_type()
        assert _charset(new) == _charset(old)
        assert new.get_filename() == old.get_filename()
        assert _octets(new) == _octets(old)
