"""IPM body parts ⇄ MIME (RFC 2157), golden cases for each body part type both ways:
the MIME written for each X.400 part, and the X.400 part read from each kind of MIME."""

from __future__ import annotations

import base64
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.mixer.bodies import (
    DEFAULT_POLICY,
    BodyConversionError,
    CachedHeaderRegistry,
    as_bytes,
    ascii_text_as_it_stands,
    body_to_mime,
    decoded_payload,
    mime_to_body,
    mime_to_part,
    mixed_bytes,
    part_to_mime,
    single_text_bytes,
)
from waypost.mixer.bodies import _attachment_head as attachment_head
from waypost.x400.ipm_bodies import (
    OCTET_STREAM,
    BilaterallyDefined,
    BodyPart,
    FileTransfer,
    GeneralText,
    IA5Text,
    MessagePart,
    charset_of_registrations,
)

_CRLF_WRITING = DEFAULT_POLICY.clone(linesep="\r\n", max_line_length=998)


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def wire(entity: EmailMessage) -> EmailMessage:
    """The entity as it arrives after SMTP: serialized with CRLF, parsed again."""
    return parse(entity.as_bytes(policy=default.clone(linesep="\r\n")))


# -- X.400 → MIME ----------------------------------------------------------------------


def test_ia5_text_is_7bit_us_ascii_text_plain() -> None:
    entity = part_to_mime(IA5Text(text="Hello\r\nworld\r\n"))
    assert entity["Content-Type"] == 'text/plain; charset="us-ascii"'
    assert entity["Content-Transfer-Encoding"] == "7bit"
    assert "Content-Disposition" not in entity
    assert wire(entity).get_content() == "Hello\r\nworld\r\n"


def test_ia5_text_with_a_line_too_long_for_smtp_goes_base64() -> None:
    entity = part_to_mime(IA5Text(text="x" * 1000))
    assert entity["Content-Transfer-Encoding"] == "base64"
    assert wire(entity).get_content() == "x" * 1000


def test_general_text_is_text_plain_in_its_iso_8859_charset() -> None:
    entity = wire(part_to_mime(GeneralText(charset="ISO-8859-2", text="Łódź\r\n")))
    assert entity.get_content_type() == "text/plain"
    assert entity.get_content_charset() == "iso-8859-2"
    assert entity.get_payload(decode=True) == "Łódź\r\n".encode("iso-8859-2")


def test_bilaterally_defined_is_an_unnamed_octet_stream() -> None:
    entity = wire(part_to_mime(BilaterallyDefined(data=b"\x00\x01\xff")))
    assert entity["Content-Type"] == "application/octet-stream"
    assert entity.get_content_disposition() is None
    assert entity.get_payload(decode=True) == b"\x00\x01\xff"


def test_ftbp_is_an_attachment_with_its_filename() -> None:
    part = FileTransfer(data=b"%PDF-1.4", filename="report.pdf", content_type="application/pdf")
    entity = wire(part_to_mime(part))
    assert entity.get_content_type() == "application/pdf"
    assert entity.get_content_disposition() == "attachment"
    assert entity.get_filename() == "report.pdf"
    assert entity.get_payload(decode=True) == b"%PDF-1.4"


def test_ftbp_filename_outside_ascii_is_encoded_per_rfc_2231() -> None:
    entity = part_to_mime(FileTransfer(data=b"x", filename="résumé.txt"))
    assert "filename*=utf-8''r%C3%A9sum%C3%A9.txt" in entity.as_string()
    assert wire(entity).get_filename() == "résumé.txt"


def test_unnamed_ftbp_of_a_type_with_an_equivalence_is_marked_attachment() -> None:
    """Else an FTBP holding octets would come back as a bilaterally-defined part."""
    assert part_to_mime(FileTransfer(data=b"x"))["Content-Disposition"] == "attachment"
    html = FileTransfer(data=b"<p>", content_type="text/html")
    assert "Content-Disposition" not in part_to_mime(html)


def test_message_part_is_message_rfc822_with_its_heading_through_the_hook() -> None:
    forwarded = MessagePart(
        heading=(("Subject", "Minutes"), ("From", "jo@example.org")),
        body=(IA5Text(text="inner\r\n"),),
    )
    entity = wire(part_to_mime(forwarded))
    assert entity.get_content_type() == "message/rfc822"
    assert entity["Content-Transfer-Encoding"] == "7bit"
    inner = entity.get_content()
    assert inner["Subject"] == "Minutes"
    assert inner["From"] == "jo@example.org"
    assert inner.get_content() == "inner\r\n"


def test_the_heading_hook_the_heading_mapping_provides_is_used_both_ways() -> None:
    class Upper:
        def heading_to_fields(self, heading: object) -> list[tuple[str, str]]:
            assert isinstance(heading, str)
            return [("Subject", heading.upper())]

        def fields_to_heading(self, fields: list[tuple[str, str]]) -> object:
            return dict(fields)["Subject"].lower()

    part = MessagePart(heading="minutes", body=(IA5Text(text="x"),))
    entity = wire(body_to_mime([part], Upper()))
    assert entity.get_content()["Subject"] == "MINUTES"
    assert mime_to_body(entity, Upper()) == [part]


def test_several_parts_are_multipart_mixed_in_order() -> None:
    parts: list[BodyPart] = [IA5Text(text="a"), BilaterallyDefined(data=b"b")]
    entity = wire(body_to_mime(parts))
    assert entity.get_content_type() == "multipart/mixed"
    assert entity["MIME-Version"] == "1.0"
    assert [p.get_content_type() for p in entity.iter_parts()] == [
        "text/plain",
        "application/octet-stream",
    ]


def test_one_part_is_the_message_entity_itself_and_an_empty_body_empty_text() -> None:
    assert body_to_mime([IA5Text(text="a")]).get_content_type() == "text/plain"
    assert wire(body_to_mime([])).get_content() == ""


# -- MIME → X.400 ----------------------------------------------------------------------

ALTERNATIVE = (
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Gr\xc3\xbc\xc3\x9fe\r\n"
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"<p>Gr\xc3\xbc\xc3\x9fe</p>\r\n"
    b"--b1--\r\n"
)


@pytest.mark.parametrize("charset", ["", "; charset=us-ascii", '; charset="US-ASCII"'])
def test_us_ascii_text_plain_is_ia5_text(charset: str) -> None:
    message = parse(f"Content-Type: text/plain{charset}\r\n\r\nHello\r\nthere".encode())
    assert mime_to_body(message) == [IA5Text(text="Hello\r\nthere")]


def test_iso_8859_text_plain_is_general_text() -> None:
    message = parse(
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n"
    )
    [part] = mime_to_body(message)
    assert part == GeneralText(charset="iso-8859-1", text="café\r\n")
    assert isinstance(part, GeneralText) and part.registrations == (6, 100)


def test_utf8_text_plain_keeps_its_octets_in_an_ftbp() -> None:
    """RFC 2157 §3.1.1: a charset X.400 has no repertoire for is encapsulated, not lost."""
    message = parse(
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"\xe6\x97\xa5\xe6\x9c\xac\r\n"
    )
    assert mime_to_body(message) == [
        FileTransfer(
            data="日本\r\n".encode(),
            content_type="text/plain",
            parameters=(("charset", "utf-8"),),
        )
    ]


def test_text_whose_octets_break_its_declared_charset_keeps_them() -> None:
    message = parse(b"Content-Type: text/plain; charset=us-ascii\r\n\r\n\xff\xfe")
    [part] = mime_to_body(message)
    assert isinstance(part, FileTransfer) and part.data == b"\xff\xfe"


def test_text_plain_with_other_parameters_is_encapsulated() -> None:
    message = parse(b"Content-Type: text/plain; charset=us-ascii; format=flowed\r\n\r\nhi ")
    [part] = mime_to_body(message)
    assert isinstance(part, FileTransfer)
    assert part.parameters == (("charset", "us-ascii"), ("format", "flowed"))


def test_unnamed_octet_stream_is_bilaterally_defined() -> None:
    message = parse(
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"\x00\xff")
    )
    assert mime_to_body(message) == [BilaterallyDefined(data=b"\x00\xff")]


def test_named_attachment_is_an_ftbp_with_its_filename() -> None:
    message = parse(
        b'Content-Type: image/png; name="dot.png"\r\n'
        b'Content-Disposition: attachment; filename="dot.png"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"\x89PNG")
    )
    assert mime_to_body(message) == [
        FileTransfer(
            data=b"\x89PNG",
            filename="dot.png",
            content_type="image/png",
            parameters=(("name", "dot.png"),),
        )
    ]


def test_attached_text_file_keeps_its_name() -> None:
    message = parse(
        b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nx"
    )
    [part] = mime_to_body(message)
    assert isinstance(part, FileTransfer) and part.filename == "a.txt" and part.data == b"x"


def test_multipart_alternative_crosses_whole_and_comes_back_the_same() -> None:
    """RFC 2157 has no equivalence for multipart/alternative: one FTBP carries it (§3.1.1),
    and the 8-bit UTF-8 of its parts crosses unchanged."""
    [part] = mime_to_body(parse(ALTERNATIVE))
    assert isinstance(part, FileTransfer)
    assert part.content_type == "multipart/alternative"
    assert ("boundary", "b1") in part.parameters
    back = wire(body_to_mime([part]))
    assert back.get_content_type() == "multipart/alternative"
    assert back.get_content_disposition() is None
    # RFC 2046 §5.1.1: the CRLF before a boundary is the boundary's, not the part's.
    plain, html = back.iter_parts()
    assert plain.get_payload(decode=True) == "Grüße".encode()
    assert html.get_content_type() == "text/html"
    assert html.get_payload(decode=True) == "<p>Grüße</p>".encode()


def test_ascii_text_labelled_utf8_is_ia5_text() -> None:
    message = parse(b"Content-Type: text/plain; charset=utf-8\r\n\r\nplain")
    assert mime_to_body(message) == [IA5Text(text="plain")]


def test_mixed_message_becomes_one_body_part_per_part() -> None:
    outer = EmailMessage(policy=default)
    outer.set_content("Hi\n")
    outer.add_attachment(b"\x01\x02", maintype="application", subtype="zip", filename="a.zip")
    outer.add_attachment(ALTERNATIVE, maintype="application", subtype="octet-stream")
    body = mime_to_body(wire(outer))
    assert body[0] == IA5Text(text="Hi\r\n")
    assert body[1] == FileTransfer(
        data=b"\x01\x02", filename="a.zip", content_type="application/zip"
    )
    assert body[2] == FileTransfer(data=ALTERNATIVE)


def test_nested_multipart_alternative_inside_mixed_is_encapsulated() -> None:
    outer = EmailMessage(policy=default)
    outer.set_content("plain")
    outer.add_alternative("<p>html</p>", subtype="html")
    outer.add_attachment(b"x", maintype="application", subtype="pdf", filename="f.pdf")
    first, second = mime_to_body(wire(outer))
    assert isinstance(first, FileTransfer) and first.content_type == "multipart/alternative"
    assert isinstance(second, FileTransfer) and second.filename == "f.pdf"


def test_message_rfc822_is_a_message_part_with_its_fields_as_heading() -> None:
    message = parse(
        b"Content-Type: message/rfc822\r\n\r\n"
        b"Subject: Fwd\r\nFrom: a@b.example\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
    )
    assert mime_to_body(message) == [
        MessagePart(
            heading=(("Subject", "Fwd"), ("From", "a@b.example")),
            body=(IA5Text(text="body\r\n"),),
        )
    ]


def test_attached_message_rfc822_is_a_message_part_too_only_named_ones_are_files() -> None:
    inner = b"Subject: x\r\n\r\nbody\r\n"
    named = parse(
        b"Content-Type: message/rfc822\r\n"
        b"Content-Disposition: attachment; filename=fwd.eml\r\n\r\n" + inner
    )
    [part] = mime_to_body(named)
    assert isinstance(part, FileTransfer) and part.filename == "fwd.eml"
    assert part.data == inner


# -- the model's checks ----------------------------------------------------------------


def test_the_model_refuses_what_x400_cannot_carry() -> None:
    with pytest.raises(ValueError, match="ia5-text"):
        IA5Text(text="café")
    with pytest.raises(ValueError, match="not an ISO 8859 part"):
        GeneralText(charset="utf-8", text="x")
    with pytest.raises(UnicodeEncodeError):
        GeneralText(charset="iso-8859-1", text="Łódź")
    with pytest.raises(ValueError, match="not type/sub"):
        FileTransfer(data=b"", content_type="pdf")


def test_text_line_ends_are_crlf_as_x420_carries_them() -> None:
    assert IA5Text(text="a\nb\rc\r\n").text == "a\r\nb\r\nc\r\n"


def test_general_text_repertoires_name_their_charset() -> None:
    assert charset_of_registrations((1, 6, 100)) == "iso-8859-1"
    assert charset_of_registrations(frozenset({6, 144})) == "iso-8859-5"
    assert charset_of_registrations((6,)) == "us-ascii"
    assert charset_of_registrations((100, 101)) is None
    assert charset_of_registrations((87,)) is None


def test_a_multipart_part_that_is_no_entity_is_a_conversion_error() -> None:
    message = EmailMessage(policy=default)
    message["Content-Type"] = "multipart/mixed; boundary=x"
    message.set_payload(["not an entity"])
    with pytest.raises(BodyConversionError, match="not a MIME entity"):
        mime_to_body(message)


def test_as_bytes_writes_the_octets_the_email_package_writes() -> None:
    message = EmailMessage()
    message["Subject"] = "line ends of every kind"
    message.set_content("one\ntwo\r\nthree\rfour", cte="8bit")
    message.add_attachment(bytes(range(256)) * 400, "application", "pdf", filename="f.pdf")
    inner = EmailMessage()
    inner.set_content("plain")
    inner.add_alternative("<p>html</p>", subtype="html")
    message.attach(inner)
    message.preamble = "preamble\n"
    message.epilogue = "epilogue\r\n"
    for entity in (message, wire(message)):
        for policy in (default, default.clone(linesep="\r\n"), DEFAULT_POLICY):
            assert as_bytes(entity, policy) == entity.as_bytes(policy=policy)
        assert as_bytes(entity) == entity.as_bytes()


def test_header_objects_are_shared_but_each_message_keeps_its_own_fields() -> None:
    data = b"Content-Type: text/plain; charset=us-ascii\r\n\r\ntext\r\n"
    first = BytesParser(policy=DEFAULT_POLICY).parsebytes(data)
    second = BytesParser(policy=DEFAULT_POLICY).parsebytes(data)
    assert isinstance(first, EmailMessage) and isinstance(second, EmailMessage)
    assert first["Content-Type"] is second["Content-Type"]  # parsed once
    first.set_param("format", "flowed")
    assert first.get_param("format") == "flowed"
    assert second.get_param("format") is None
    assert dict(second["Content-Type"].params) == {"charset": "us-ascii"}
    # Values that are not text (Address objects) are made each time.
    message = EmailMessage(policy=DEFAULT_POLICY)
    message["To"] = [Address("Jo Smith", addr_spec="jo@example.com")]
    assert message["To"].addresses[0].display_name == "Jo Smith"
    assert str(message["To"]) == "Jo Smith <jo@example.com>"


def test_the_header_cache_is_bounded() -> None:
    registry = CachedHeaderRegistry(size=2)
    first = registry("Content-Type", "text/plain")
    assert registry("Content-Type", "text/plain") is first
    registry("Content-Type", "text/html")
    registry("Content-Type", "image/png")  # full: forgets what it made, then makes this one
    again = registry("Content-Type", "text/plain")
    assert again is not first and again == first == "text/plain"
    assert registry["content-type"] is registry["Content-Type"]  # one class per field name
    # Other fields, and long values, are not kept: their parse trees are large.
    assert registry("Subject", "a") is not registry("Subject", "a")
    long = "application/x-long; name=" + "x" * 300
    assert registry("Content-Type", long) is not registry("Content-Type", long)


def test_as_bytes_gives_a_new_multipart_a_boundary_its_parts_do_not_contain() -> None:
    entity = body_to_mime(
        [IA5Text(text="--" + "=" * 15 + "\r\n"), FileTransfer(data=b"x" * 5000, filename="x")]
    )
    assert entity.get_boundary() is None
    data = as_bytes(entity, default.clone(linesep="\r\n"))
    boundary = entity.get_boundary()
    assert boundary is not None and boundary.startswith("=" * 15)
    assert data.count(f"--{boundary}".encode()) == 3  # two parts and the close delimiter
    assert mime_to_body(parse(data)) == [
        IA5Text(text="--" + "=" * 15 + "\r\n"),
        FileTransfer(data=b"x" * 5000, filename="x"),
    ]


_TEXT_PIECES = st.sampled_from(["a", " ", "\r\n", "\n", "\r", "x" * 500, "\x7f", "\t", "From "])


@settings(max_examples=400, deadline=None)
@given(st.lists(_TEXT_PIECES, max_size=12).map("".join))
def test_a_single_text_written_directly_is_what_the_email_package_writes(text: str) -> None:
    """single_text_bytes writes what as_bytes(body_to_mime(...)) writes, or declines."""
    parts = [IA5Text(text=text)]
    written = single_text_bytes(parts)
    if written is not None:
        assert written == as_bytes(body_to_mime(parts), _CRLF_WRITING)
    elif text.isascii() and "\r" not in text.replace("\r\n", "") and len(text) <= 998:
        raise AssertionError(f"a plain short text was declined: {text!r}")


def test_other_bodies_are_not_written_directly() -> None:
    assert single_text_bytes([IA5Text(text="a"), IA5Text(text="b")]) is None
    assert single_text_bytes([GeneralText(charset="iso-8859-1", text="a")]) is None
    assert single_text_bytes([]) is None


_TEXT_FIELDS = st.lists(
    st.sampled_from(
        [
            "Content-Type: text/plain",
            "Content-Type: text/plain; charset=us-ascii",
            'Content-Type: TEXT/Plain; charset="US-ASCII"',
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type:  text/plain ;charset = ascii ",
            "Content-Type: text/plain; charset=iso-8859-1",
            "Content-Type: text/plain; charset=us-ascii; format=flowed",
            'Content-Type: text/plain; charset="us-ascii',
            "Content-Type: text/plain;\r\n charset=us-ascii",
            "Content-Type: text/html",
            "Content-Transfer-Encoding: 7bit",
            "Content-Transfer-Encoding: 8BIT",
            "Content-Transfer-Encoding: quoted-printable",
            "Content-Transfer-Encoding: base64",
            "Content-Disposition: inline",
            "Content-Description: a note",
            "MIME-Version: 1.0",
        ]
    ),
    max_size=4,
)
_TEXT_BODY = st.lists(
    st.sampled_from(["a", "Z", " ", "=", "\r\n", "\n", "\r", "é", "\t"]), max_size=30
).map("".join)


@settings(max_examples=500, deadline=None)
@given(fields=_TEXT_FIELDS, body=_TEXT_BODY)
def test_text_read_as_it_stands_is_what_the_general_reading_makes(
    fields: list[str], body: str
) -> None:
    data = ("\r\n".join(["Subject: x", *fields]) + "\r\n\r\n" + body).encode()
    entity = parse(data)
    fast = ascii_text_as_it_stands(entity)
    if fast is not None:
        assert [fast] == [mime_to_part(entity)]
    assert mime_to_body(entity) == [mime_to_part(entity)]


def test_plain_us_ascii_text_is_read_as_it_stands() -> None:
    for header in (b"", b"Content-Type: text/plain; charset=us-ascii\r\nMIME-Version: 1.0\r\n"):
        entity = parse(b"Subject: x\r\n" + header + b"\r\nline one\nline two\r\n")
        assert ascii_text_as_it_stands(entity) == IA5Text(text="line one\r\nline two\r\n")


def _encoded_entity(payload: str, encoding: str) -> EmailMessage:
    entity = EmailMessage(policy=DEFAULT_POLICY)
    entity["Content-Type"] = "application/octet-stream"
    entity["Content-Transfer-Encoding"] = encoding
    entity.set_payload(payload)
    return entity


# Base64 in lines, and text that breaks it: junk, padding in the wrong place or missing,
# groups cut short, bare CRs, 8-bit octets (as the parser's surrogate escapes).
_ENCODED = st.binary(max_size=120).map(lambda data: base64.encodebytes(data).decode()) | st.text(
    alphabet="QUJDab+/=\r\n! \udce9", max_size=40
)


@settings(max_examples=3000, deadline=None)
@given(_ENCODED, st.sampled_from(["base64", "BASE64", " base64", "7bit", "quoted-printable"]))
def test_decoded_payload_is_the_email_packages(payload: str, encoding: str) -> None:
    ours, theirs = _encoded_entity(payload, encoding), _encoded_entity(payload, encoding)
    assert decoded_payload(ours) == theirs.get_payload(decode=True)
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]


@pytest.mark.parametrize(
    "payload",
    [
        "QUJD",
        "QR==",
        "QQ==",
        "QQ==QQ==",
        "Q===",
        "=QQQ",
        "QQ=a",
        "QU\r\nJD\r\n",
        "QU\rJD",
        "QUJ\x00",
    ],
)
def test_base64_at_the_edges_of_validity_is_read_as_the_email_package_reads_it(
    payload: str,
) -> None:
    ours, theirs = _encoded_entity(payload, "base64"), _encoded_entity(payload, "base64")
    assert decoded_payload(ours) == theirs.get_payload(decode=True)
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]


def _without_boundary(data: bytes) -> bytes:
    found = re.search(rb'boundary="([^"]+)"', data)
    assert found is not None
    return data.replace(found.group(1), b"BOUNDARY")


# Attachments of some thousands of octets, their base64 lines cut 64 at a time: sizes
# about a multiple of 64 lines of 57 octets (RFC 2045 §6.8's 76 characters).
_LARGE_DATA = st.sampled_from([57 * 64 - 1, 57 * 64, 57 * 64 + 1, 57 * 128 + 5, 9000]).map(
    lambda size: (bytes(range(256)) * 40)[:size]
)
_LEAF_PARTS = st.one_of(
    st.lists(_TEXT_PIECES, max_size=8).map(lambda t: IA5Text(text="".join(t))),
    st.builds(
        GeneralText,
        charset=st.just("iso-8859-1"),
        text=st.text(st.sampled_from("aé\r\n"), max_size=20),
    ),
    st.builds(BilaterallyDefined, data=st.binary(max_size=300)),
    st.builds(
        FileTransfer,
        data=st.binary(max_size=300) | _LARGE_DATA,
        filename=st.none()
        | st.sampled_from(["f.pdf", "a long name with spaces.txt", "é.txt", 'a "q".txt'])
        | st.text(st.sampled_from('az09 ."\\;=()é\t'), max_size=12),
        content_type=st.sampled_from(
            ["application/pdf", "text/plain", "image/png", OCTET_STREAM, "Image/PNG"]
        ),
        parameters=st.sampled_from(
            [(), (("name", "x.pdf"),), (("charset", "utf-8"),), (("name", "a"), ("name", "b"))]
        ),
    ),
)

# Parameters and filenames at the edges of what is written directly: quotes,
# backslashes, specials, spaces where folding might look, non-ASCII, long values.
_VALUES = st.text(st.sampled_from('aZ9 ."\\;=()<>@,:/?[]é\t~!#'), min_size=0, max_size=30) | (
    st.integers(60, 1000).map(lambda n: "x" * n)
)


@settings(max_examples=1000, deadline=None)
@given(
    content_type=st.sampled_from(
        ["application/pdf", "text/plain", "image/svg+xml", "Application/PDF", "x/y", "multipart/x"]
    ),
    filename=st.none() | _VALUES,
    parameters=st.lists(
        st.tuples(st.sampled_from(["name", "charset", "x-a", "Name", "a b"]), _VALUES),
        max_size=3,
    ),
)
def test_an_attachment_head_written_directly_is_what_the_email_package_writes(
    content_type: str, filename: str | None, parameters: list[tuple[str, str]]
) -> None:
    part = FileTransfer(
        data=b"", filename=filename, content_type=content_type, parameters=tuple(parameters)
    )
    entity = part_to_mime(part, payload=False)
    expected = b"".join(_CRLF_WRITING.fold_binary(n, v) for n, v in entity.raw_items())
    written = attachment_head(part, _CRLF_WRITING)
    if written is not None:
        assert written == expected + b"\r\n"


def test_the_usual_attachment_heads_are_written_directly() -> None:
    usual = [
        FileTransfer(data=b"", filename="figures.pdf", content_type="application/pdf"),
        FileTransfer(data=b"", filename="Q3 report (final).xlsx", content_type=OCTET_STREAM),
        FileTransfer(
            data=b"", filename=None, content_type="text/plain", parameters=(("charset", "utf-8"),)
        ),
        BilaterallyDefined(data=b""),
    ]
    assert all(attachment_head(part, _CRLF_WRITING) is not None for part in usual)


@given(st.binary(max_size=300) | _LARGE_DATA)
def test_an_attachment_is_base64_in_lines_of_76(data: bytes) -> None:
    entity = part_to_mime(BilaterallyDefined(data=data))
    assert entity.get_payload() == base64.encodebytes(data).decode("ascii").rstrip("\n")
    written = mixed_bytes([IA5Text(text="a"), FileTransfer(data=data)], _CRLF_WRITING)
    assert written is not None
    attachment = parse(written).get_payload(1)
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_payload(decode=True) == data
    assert max(map(len, attachment.get_payload().splitlines()), default=0) <= 76


@settings(max_examples=300, deadline=None)
@given(st.lists(_LEAF_PARTS, min_size=2, max_size=4))
def test_text_and_attachments_written_directly_are_what_the_email_package_writes(
    parts: list[BodyPart],
) -> None:
    written = mixed_bytes(parts, _CRLF_WRITING)
    assert written is not None
    expected = as_bytes(body_to_mime(parts), _CRLF_WRITING)
    assert _without_boundary(written) == _without_boundary(expected)
    assert mime_to_body(parse(written)) == mime_to_body(parse(expected))


def test_bodies_with_a_message_or_a_composite_are_left_to_the_generator() -> None:
    text = IA5Text(text="a")
    forwarded = MessagePart(heading=(("Subject", "x"),), body=(text,))
    alternative = FileTransfer(
        data=b"--b\r\n\r\nx\r\n--b--\r\n",
        content_type="multipart/alternative",
        parameters=(("boundary", "b"),),
    )
    assert mixed_bytes([text, forwarded], _CRLF_WRITING) is None
    assert mixed_bytes([text, alternative], _CRLF_WRITING) is None
    assert mixed_bytes([text], _CRLF_WRITING) is None
