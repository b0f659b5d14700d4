"""waypost.mixer.header_fields reads header fields as the email package does: the plain
values it passes through unparsed are what the package's header objects and
getaddresses make of them, and anything else goes through them."""

from __future__ import annotations

from email.parser import BytesParser
from email.utils import getaddresses

from hypothesis import example, given
from hypothesis import strategies as st

from waypost.mixer.bodies import DEFAULT_POLICY
from waypost.mixer.header_fields import HeaderFields, plain_mailboxes

NAMES = ["Subject", "Message-ID", "In-Reply-To", "References", "Date", "Importance", "X-Other"]
ATEXT = "abcXYZ019!#$%&'*+-/=?^_`{|}~"
# Printable ASCII and white space, the specials the fast path leaves alone included.
TEXT = st.text(st.sampled_from([chr(c) for c in range(0x20, 0x7F)] + ["\t"]), max_size=40)


def parsed(fields: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    header = "".join(f"{name}: {value}\r\n" for name, value in fields).encode()
    return BytesParser(policy=DEFAULT_POLICY).parsebytes(header + b"\r\nbody\r\n")


@given(st.lists(st.tuples(st.sampled_from(NAMES), TEXT), min_size=1, max_size=6))
@example([("Subject", "=?utf-8?q?caf=C3=A9?= ordered")])
@example([("Subject", 'a (comment) "quoted" \\x')])
@example([("Message-ID", "<a@b> (c)"), ("Message-ID", "<second@b>")])
@example([("Date", "Thu, 03 Dec 2026 10:00:00 +0000")])
@example([("Subject", "  spaced   out\t ")])
@example([("Message-ID", "<bench-1@a.example>"), ("Date", "Thu, 3 Dec 2026 10:00:00 GMT")])
def test_texts_are_what_the_header_objects_give(fields: list[tuple[str, str]]) -> None:
    message = parsed(fields)
    read = HeaderFields(message)
    for name in NAMES:
        try:
            expected = [str(v) for v in message.get_all(name) or []]
        except IndexError:
            # The package's msg-id parser fails on some malformed values (`<`); read as
            # plain text they reach the msg-id check, which refuses them by name.
            continue
        assert read.texts(name) == expected
        got = message.get(name)
        assert read.text(name) == (None if got is None else str(got))
        assert (name in read) == (got is not None)


def test_folded_values_are_unfolded_as_the_package_does() -> None:
    message = BytesParser(policy=DEFAULT_POLICY).parsebytes(
        b"Subject: a long\r\n subject\r\n\tfolded\r\nReferences: <a@b>\r\n <c@d>\r\n\r\nx"
    )
    read = HeaderFields(message)
    assert read.text("Subject") == str(message["Subject"]) == "a long subject\tfolded"
    assert read.text("References") == str(message["References"])


def test_fields_set_through_the_api_are_read_through_their_objects() -> None:
    message = parsed([("Subject", "x")])
    message["To"] = "Jo <jo@example.org>"
    assert HeaderFields(message).texts("to") == [str(message["To"])]


atom = st.text(st.sampled_from(ATEXT), min_size=1, max_size=6)
dot_atom = st.lists(atom, min_size=1, max_size=3).map(".".join)
addr_spec = st.builds(lambda a, b: f"{a}@{b}", dot_atom, dot_atom)
white = st.sampled_from(["", " ", "  ", "\t", " \t "])
display = st.lists(atom, min_size=1, max_size=3).map(" ".join)
mailbox = st.one_of(
    st.builds(lambda w, a, v: f"{w}{a}{v}", white, addr_spec, white),
    st.builds(lambda w, a, v: f"{w}<{a}>{v}", white, addr_spec, white),
    st.builds(lambda w, d, x, a, v: f"{w}{d}{x}<{a}>{v}", white, display, white, addr_spec, white),
)


# Encoded-words ("=?") are left to getaddresses and the RFC 2047 decoding after it.
@given(st.lists(mailbox, min_size=1, max_size=4).map(",".join).filter(lambda v: "=?" not in v))
@example("Sender 1 <sender@a.example>")
@example("a@b, c@d")
def test_plain_mailboxes_are_what_getaddresses_reads(value: str) -> None:
    plain = plain_mailboxes(value)
    assert plain is not None
    assert plain == getaddresses([value])


@given(TEXT)
@example('"Quoted, Name" <q@example.org>')
@example("Jo (comment) <jo@example.org>")
@example("=?utf-8?q?Jos=C3=A9?= <jose@example.org>")
@example("group: a@b, c@d;")
@example("a@b,,c@d")
@example("a.b.c <x@y>")
def test_anything_not_plain_is_left_to_getaddresses(value: str) -> None:
    plain = plain_mailboxes(value)
    if plain is not None:
        assert plain == getaddresses([value])


@given(st.builds(lambda w, a, v: f"{w}<{a}>{v}", white, addr_spec, white))
@example("<bench-1@a.example>")
def test_a_message_id_is_read_as_its_header_object_gives_it(value: str) -> None:
    message = parsed([("Message-ID", value)])
    assert HeaderFields(message).text("Message-ID") == str(message["Message-ID"])
