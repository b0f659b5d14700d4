"""waypost.mixer.header_text writes header fields octet for octet as the email package
does with the gateway's policy: plain values directly, the others through the package."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.mixer.header_text import (
    WRITING,
    FieldValue,
    _plain,
    field_bytes,
    header_block,
    mail_date,
)

NAMES = [
    *("Subject", "X400-Recipients", "Message-ID", "In-Reply-To", "Comments", "Date"),
    *("From", "Content-Type", "MIME-Version"),
]
ADDRESS_NAMES = ["From", "To", "Cc", "Reply-To", "Sender"]


def outcome(write: Callable[[], bytes]) -> bytes | str:
    """What a writer gives: its octets, or the name of the exception it raises."""
    try:
        return write()
    except Exception as exc:
        return type(exc).__name__


def package(fields: list[tuple[str, FieldValue]]) -> bytes:
    """The email package's own header block for the fields."""
    message = EmailMessage(policy=WRITING)
    for name, value in fields:
        message[name] = value
    data = message.as_bytes(policy=WRITING)
    return data[: data.find(b"\r\n\r\n") + 2]


texts = st.text(
    st.sampled_from([*"aZ09 =?<>@.,;:\"\\()[]-_/'\t", "é", "ü", "\u4e2d", "\x7f", "\x01"]),
    max_size=40,
)
long_texts = st.builds(
    lambda t, n: t * n,
    st.text(st.sampled_from("ab c=?é"), min_size=1, max_size=8),
    st.integers(1, 400),
)
msg_ids = st.builds(
    lambda left, right: f"<{left}@{right}>",
    st.one_of(
        st.text(st.sampled_from("ab.-/=*"), min_size=1, max_size=12),
        st.text(st.sampled_from('ab /=*.\\"'), max_size=12).map(lambda t: f'"{t}"'),
    ),
    st.text(st.sampled_from("ab.-[]"), min_size=1, max_size=12),
)
dates = st.builds(
    lambda when, zone: format_datetime(when.replace(tzinfo=zone)),
    st.datetimes(),
    st.sampled_from([UTC, None, timezone(timedelta(hours=-5))]),
) | st.sampled_from(["Mon, 03 Dec 2026 10:00:00 +0000", "3 Dec 2026 10:00 GMT", "Thu, 03 Dec 2026"])
local_parts = st.sampled_from(
    ["jones", "a.b", '"/S=Sender/PRMD=A/ADMD= /C=GB/"', '"a b"', "x+y", '"q\\"uote"', "o'neil"]
)
domains = st.sampled_from(["b.example", "gw.a.example", "[192.0.2.1]"])
addresses = st.builds(
    lambda d, lp, dom: Address(display_name=d, addr_spec=f"{lp}@{dom}"),
    texts.map(lambda t: t.replace("\t", " ").replace("\x01", "").replace("\x7f", "")),
    local_parts,
    domains,
)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(NAMES), st.one_of(texts, long_texts, msg_ids, dates))
def test_text_fields_as_the_package_writes_them(name: str, value: str) -> None:
    assert outcome(lambda: field_bytes(name, value)) == outcome(lambda: package([(name, value)]))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ADDRESS_NAMES), st.lists(addresses, min_size=1, max_size=4))
def test_address_fields_as_the_package_writes_them(name: str, value: list[Address]) -> None:
    assert outcome(lambda: field_bytes(name, value)) == outcome(lambda: package([(name, value)]))


def test_a_block_of_fields_in_order() -> None:
    fields: list[tuple[str, FieldValue]] = [
        ("From", [Address("Jöns", addr_spec="jones@b.example")]),
        ("Subject", "plain"),
        ("Comments", "caf\u00e9 " * 300),
        ("Incomplete-Copy", ""),
        ("Date", "Thu, 03 Dec 2026 10:00:00 +0000"),
    ]
    assert header_block(fields) == package(fields)
    assert header_block(fields).startswith(b"From: =?utf-8?")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["Date", "Resent-Date", "Expiry-Date"]), dates)
def test_date_fields_as_the_package_writes_them(name: str, value: str) -> None:
    assert outcome(lambda: field_bytes(name, value)) == outcome(lambda: package([(name, value)]))


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_mail_date_is_format_datetime_to_the_second(timestamp: float) -> None:
    expected = format_datetime(datetime.fromtimestamp(timestamp, UTC))
    assert mail_date(timestamp) == expected
    assert mail_date(timestamp) == expected  # and again, remembered


# Every character the fast check must weigh: printable ASCII, controls, DEL, Latin-1 and
# wider characters that str.isprintable admits, separators it does not.
any_chars = st.text(
    st.sampled_from([*"aZ =?~!", "\t", "\x00", "\x1f", "\x7f", "\x85", "\xa0", "é", "\u2028"])
    | st.characters(),
    max_size=12,
)


@settings(max_examples=500, deadline=None)
@given(any_chars)
def test_plain_is_printable_ascii_with_nothing_the_folder_changes(text: str) -> None:
    printable_ascii = all(0x20 <= ord(c) <= 0x7E for c in text)
    expected = (
        printable_ascii
        and "=?" not in text
        and "  " not in text
        and not text.startswith(" ")
        and not text.endswith(" ")
    )
    assert _plain(text) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["X-Tag", "Subject", "X-Ünï", "X-a b", "message-id", "DATE", "X-\x7f"]),
    st.one_of(texts, msg_ids, dates),
)
def test_any_field_name_as_the_package_writes_it(name: str, value: str) -> None:
    # Twice: the second time with what is remembered of the name.
    for _ in range(2):
        written = outcome(lambda: field_bytes(name, value))
        assert written == outcome(lambda: package([(name, value)]))


def test_a_value_outside_ascii_that_isprintable_admits_goes_to_the_package() -> None:
    assert field_bytes("Subject", "café") == package([("Subject", "café")])
    assert field_bytes("Subject", "café").startswith(b"Subject: =?utf-8?")
