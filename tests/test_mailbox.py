"""RFC 5321 mailboxes and paths: parsing, the reasons for refusals, quoting and round trips."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.address import (
    AddressError,
    Mailbox,
    mailbox_name,
    parse_domain,
    parse_mailbox,
    parse_path,
)
from waypost.address.mailbox import quote_local


@pytest.mark.parametrize(
    ("text", "local", "domain"),
    [
        ("jo@example.com", "jo", "example.com"),
        ("Jo.Smith@Example.COM", "Jo.Smith", "example.com"),  # local case kept, domain folded
        ("a!#$%&'*+-/=?^_`{|}~z@x.org", "a!#$%&'*+-/=?^_`{|}~z", "x.org"),
        ('"jo smith"@example.com', "jo smith", "example.com"),
        ('"a\\"b\\\\c"@example.com', 'a"b\\c', "example.com"),
        ('"a@b"@example.com', "a@b", "example.com"),
        ('""@example.com', "", "example.com"),
        ('"jo"@example.com', "jo", "example.com"),
        ("postmaster@localhost", "postmaster", "localhost"),
        ("jo@[192.0.2.1]", "jo", "[192.0.2.1]"),
        ("jo@[IPv6:2001:DB8:0:0::1]", "jo", "[IPv6:2001:db8::1]"),
        ("jo@[ipv6:::1]", "jo", "[IPv6:::1]"),
        ("jörg@bücher.example", "jörg", "bücher.example"),
        ("用户@例子.广告", "用户", "例子.广告"),
        ("jo@xn--bcher-kva.example", "jo", "xn--bcher-kva.example"),
        ("jo@123.example", "jo", "123.example"),
    ],
)
def test_valid_mailboxes(text: str, local: str, domain: str) -> None:
    mailbox = parse_mailbox(text)
    assert (mailbox.local, mailbox.domain) == (local, domain)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty address"),
        ("jo.example.com", "missing @"),
        ("@example.com", "empty local part"),
        ("jo@", "missing domain"),
        (".jo@example.com", "empty atom"),
        ("jo.@example.com", "empty atom"),
        ("j..o@example.com", "empty atom"),
        ("jo smith@example.com", "character ' ' is not allowed unless"),
        ("a@b@example.com", "character '@' is not allowed"),
        ('jo"x"@example.com', "character '\"' is not allowed unless"),
        ('"jo@example.com', "unterminated quoted local part"),
        ('"jo"', "missing @ after the quoted local part"),
        ('"jo"x@example.com', "unexpected text after the quoted local part"),
        ('"jo\\\x01"@example.com', "backslash must be followed by a printable"),
        ('"jo\x07"@example.com', "control or invalid character"),
        ("jo@example..com", "empty label"),
        ("jo@example.com.", "ends with a dot"),
        ("jo@-example.com", "starts or ends with a hyphen"),
        ("jo@example-.com", "starts or ends with a hyphen"),
        ("jo@exa_mple.com", "character '_' is not allowed"),
        ("jo@exa mple.com", "character ' ' is not allowed"),
        ("jo@" + "a" * 64 + ".com", "domain label too long"),
        ("jo@" + "ü" * 60 + ".com", "domain label too long"),  # counted as its A-label
        ("jo@" + ".".join(["a" * 63] * 4) + ".b", "domain too long"),
        ("a" * 65 + "@example.com", "local part too long"),
        ('"' + "a" * 62 + ' "@example.com', "local part too long"),  # the quotes count
        ("a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".cc", "address too long"),
        ("jo@[192.0.2.256]", "is not an IPv4 address"),
        ("jo@[192.0.2.1", "missing its closing ]"),
        ("jo@[IPv6:zz::1]", "is not an IPv6 address"),
        ("jo@[IPv6:fe80::1%eth0]", "zone"),
        ("jo@[x400:whatever]", "tag 'x400' is not supported"),
    ],
)
def test_invalid_mailboxes_say_why(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_mailbox(text)
    assert reason in str(info.value)


def test_limits_are_inclusive() -> None:
    assert parse_mailbox("a" * 64 + "@example.com").local == "a" * 64
    parse_mailbox("jo@" + "a" * 63 + ".com")
    longest = "a" * 64 + "@" + ".".join(["b" * 61] * 3)  # 64 + 1 + 185 = 250 octets
    assert len(str(parse_mailbox(longest))) == 250


@pytest.mark.parametrize(
    ("local", "written"),
    [
        ("jo", "jo"),
        ("jo.smith", "jo.smith"),
        ("jo smith", '"jo smith"'),
        ("", '""'),
        (".jo", '".jo"'),
        ("jo..smith", '"jo..smith"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a@b", '"a@b"'),
        ("jörg", "jörg"),
        ("jö rg", '"jö rg"'),
        ("a\u3000b", '"a\u3000b"'),  # a space of another script stays quoted
    ],
)
def test_local_part_is_quoted_only_when_needed(local: str, written: str) -> None:
    assert quote_local(local) == written
    mailbox = Mailbox(local, "Example.COM")
    assert str(mailbox) == f"{written}@example.com"
    assert parse_mailbox(str(mailbox)) == mailbox


def test_needlessly_quoted_local_part_is_the_same_mailbox() -> None:
    assert parse_mailbox('"jo.smith"@example.com') == parse_mailbox("jo.smith@example.com")
    assert str(parse_mailbox('"jo.smith"@example.com')) == "jo.smith@example.com"


def test_construction_validates_and_normalises() -> None:
    assert Mailbox("jo", "EXAMPLE.com").domain == "example.com"
    assert Mailbox("jo", "[IPv6:0:0::1]").domain == "[IPv6:::1]"
    with pytest.raises(AddressError, match="control"):
        Mailbox("jo\n", "example.com")
    with pytest.raises(AddressError, match="empty label"):
        Mailbox("jo", "a..b")


def test_parse_domain() -> None:
    assert parse_domain("Mail.Example.COM") == "mail.example.com"
    assert parse_domain("[10.0.0.1]") == "[10.0.0.1]"
    with pytest.raises(AddressError, match="missing domain"):
        parse_domain("")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<jo@example.com>", "jo@example.com"),
        ("  <jo@Example.com>  ", "jo@example.com"),
        ("<@relay.example:jo@example.com>", "jo@example.com"),
        ("<@a.example,@b.example:jo@example.com>", "jo@example.com"),
        ("<@[IPv6:::1],@[192.0.2.1]:jo@example.com>", "jo@example.com"),
        ('<"a>b"@example.com>', '"a>b"@example.com'),
    ],
)
def test_parse_path(text: str, expected: str) -> None:
    mailbox = parse_path(text)
    assert mailbox is not None
    assert str(mailbox) == expected


def test_null_path() -> None:
    assert parse_path("<>") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("jo@example.com", "enclosed in < and >"),
        ("<jo@example.com", "enclosed in < and >"),
        ("<", "enclosed in < and >"),
        ("<@relay.example>", "source route must be"),
        ("<@relay.example;jo@example.com>", "source route: "),
        ("<@bad_host:jo@example.com>", "source route: "),
        ("<jo>", "missing @"),
    ],
)
def test_bad_paths(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_path(text)
    assert reason in str(info.value)


# --- round trips --------------------------------------------------------------------------

_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
_atoms = st.text(st.sampled_from(_ATEXT) | st.sampled_from("äößéñ中文Ω"), min_size=1, max_size=8)
_dot_strings = st.lists(_atoms, min_size=1, max_size=4).map(".".join)
_quoted_locals = st.text(
    st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("é中\u3000"), max_size=20
)
_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True) | st.sampled_from(
    ["bücher", "例子", "xn--bcher-kva"]
)
_domains = st.lists(_labels, min_size=1, max_size=4).map(".".join)
_literals = st.ip_addresses(v=4).map(lambda a: f"[{a}]") | st.ip_addresses(v=6).map(
    lambda a: f"[IPv6:{a}]"
)


@given(local=_dot_strings | _quoted_locals, domain=_domains | _literals)
def test_mailbox_round_trip(local: str, domain: str) -> None:
    mailbox = Mailbox(local, domain)
    text = str(mailbox)
    assert parse_mailbox(text) == mailbox
    assert parse_path(f"<{text}>") == mailbox
    assert str(parse_mailbox(text)) == text


@given(st.text(max_size=80))
def test_parse_mailbox_only_raises_address_error(text: str) -> None:
    try:
        mailbox = parse_mailbox(text)
    except AddressError:
        return
    assert parse_mailbox(str(mailbox)) == mailbox


@pytest.mark.parametrize("local", ["bob", "Bob.Smith", "a+tag", "postmaster"])
def test_mailbox_name_of_a_usable_local_part(local: str) -> None:
    assert mailbox_name(local) == local.lower()


@pytest.mark.parametrize("local", ["../../x", "a b", "a/b", ".hidden", "a..b", "", "ü", 'a"b'])
def test_mailbox_name_refuses_what_cannot_be_a_directory_name(local: str) -> None:
    with pytest.raises(AddressError, match="cannot be a mailbox name"):
        mailbox_name(local)
