"""X.400 O/R addresses: both text forms, the RFC 2156 escapes, X.402 validation, prefixes."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.address import (
    AddressError,
    Mailbox,
    ORAddress,
    canonical_address,
    format_semicolon,
    format_slash,
    is_oraddress_text,
    parse_address,
    parse_oraddress,
)
from waypost.address.oraddress import TERMINAL_TYPES, ps_encode

SMITH = ORAddress(
    country="GB", admd=" ", prmd="Acme", organization="Sales", surname="Smith", given_name="Jo"
)


def test_the_two_forms_of_one_address() -> None:
    slash = "/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/G=Jo/"
    semicolon = "c=GB;a= ;p=Acme;o=Sales;s=Smith;g=Jo"
    assert parse_oraddress(slash) == SMITH
    assert parse_oraddress(semicolon) == SMITH
    assert format_slash(SMITH) == slash
    assert str(SMITH) == slash
    assert format_semicolon(SMITH) == semicolon


def test_f401_example_with_spaces_after_delimiters() -> None:
    # F.401 Annex F (RFC 1685 §3): delimiters may be followed by spaces; any order.
    addr = parse_oraddress("G=john; S=smith; O=a bank ltd; P=abl; A=snomail; C=aq")
    assert addr == ORAddress(
        country="AQ", admd="snomail", prmd="abl", organization="a bank ltd",
        surname="smith", given_name="john",
    )  # fmt: skip
    assert str(addr) == "/C=AQ/ADMD=snomail/PRMD=abl/O=a bank ltd/S=smith/G=john/"


def test_rfc1685_dda_example() -> None:
    addr = parse_oraddress("DDA:RFC-822=fred(a)widget.co.uk; O=gateway; P=abc; C=gb")
    assert addr.ddas == (("RFC-822", "fred@widget.co.uk"),)
    assert (addr.country, addr.prmd, addr.organization) == ("GB", "abc", "gateway")
    assert str(addr) == "/C=GB/ADMD= /PRMD=abc/O=gateway/DDA:RFC-822=fred(a)widget.co.uk/"


def test_missing_admd_is_the_blank_admd() -> None:
    # RFC 1685 §2: "The ADMD value 'blank' is expressed by omitting the attribute."
    assert parse_oraddress("/C=GB/PRMD=Acme/").admd == " "
    assert parse_oraddress("c=gb;a=;p=acme").admd == " "
    assert parse_oraddress("/C=GB/ADMD=   /PRMD=Acme/") == parse_oraddress("/C=GB/PRMD=Acme/")


@pytest.mark.parametrize(
    "text",
    [
        "/C=GB/ADMD=BT/PRMD=XYZ/O=ABC/OU1=Eng/OU2=Lab/S=Smith/G=J/I=K/Q=Jr/",
        "/c=gb/admd=BT/prmd=XYZ/o=ABC/ou1=Eng/ou2=Lab/s=Smith/g=J/i=K/q=Jr",  # no trailing /
        "c=gb;a=BT;p=XYZ;o=ABC;ou=Eng;ou=Lab;s=Smith;g=J;i=K;gq=Jr",
        "country=gb;admd=BT;prmd=XYZ;org=ABC;OU1=Eng;OU2=Lab;surname=Smith;given=J;"
        "initials=K;generation=Jr;",
        "X.400: Q=Jr; I=K; G=J; S=Smith; OU2=Lab; OU1=Eng; O=ABC; P=XYZ; A=BT; C=GB",
    ],
)
def test_labels_aliases_and_order(text: str) -> None:
    assert parse_oraddress(text) == ORAddress(
        country="GB", admd="BT", prmd="XYZ", organization="ABC", org_units=("Eng", "Lab"),
        surname="Smith", given_name="J", initials="K", generation="Jr",
    )  # fmt: skip


def test_other_attributes_and_their_aliases() -> None:
    addr = parse_oraddress(
        "/C=GB/ADMD=BT/CN=Sales Desk/X121=23421234567/UA-ID=1234/T-ID=term 7/T-TY=G3FAX/"
        "DD.Id=42/RFC-822=jo(a)example.com/"
    )
    assert addr.common_name == "Sales Desk"
    assert addr.x121 == "23421234567"
    assert addr.numeric_user_id == "1234"
    assert addr.terminal_id == "term 7"
    assert addr.terminal_type == "g3fax"
    assert addr.ddas == (("Id", "42"), ("RFC-822", "jo@example.com"))
    assert parse_oraddress("c=gb;x.121=1;n-id=2").x121 == "1"
    assert addr.attributes() == [
        ("C", "GB"), ("ADMD", "BT"), ("CN", "Sales Desk"), ("X121", "23421234567"),
        ("N-ID", "1234"), ("T-ID", "term 7"), ("T-TY", "g3fax"),
        ("DDA:Id", "42"), ("DDA:RFC-822", "jo@example.com"),
    ]  # fmt: skip


def test_attributes_in_canonical_order() -> None:
    addr = parse_oraddress("g=Jo;s=Smith;ou=b;ou=a;o=O;p=P;a=A;c=GB;dda:x=1;cn=C")
    assert [key for key, _ in addr.attributes()] == [
        "C", "ADMD", "PRMD", "O", "OU1", "OU2", "S", "G", "CN", "DDA:x",
    ]  # fmt: skip
    assert addr.org_units == ("b", "a")


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("jo(a)example.com", "jo@example.com"),
        ("100(p)", "100%"),
        ("bang(b)path", "bang!path"),
        ("(q)quoted(q)", '"quoted"'),
        ("under(u)score", "under_score"),
        ("(l)paren(r)", "(paren)"),
        ("(035)hash(126)", "#hash~"),
        ("(A)(P)", "@%"),  # the escape letters are read case-insensitively
        ("x(061)y", "x=y"),  # (ddd) may spell a printable character too
        ("A$/B", "A/B"),  # RFC 2156 §4.1.3 quoting
        ("x$=y", "x=y"),
        ("a=b", "a=b"),  # after the label's "=", an "=" is just a character
        ("semi;colon", "semi;colon"),  # not the delimiter of the slash form
        ("raw@and_raw", "raw@and_raw"),  # typed without escapes: still meant as written
    ],
)
def test_escapes_in_values(written: str, meant: str) -> None:
    assert parse_oraddress(f"/C=GB/O={written}/").organization == meant


def test_escapes_are_written_back() -> None:
    addr = ORAddress(country="GB", organization='a@b%c!d"e_f(g)h#i$j~')
    expected = "a(a)b(p)c(b)d(q)e(u)f(l)g(r)h(035)i(036)j(126)"
    assert format_slash(addr) == f"/C=GB/ADMD= /O={expected}/"
    assert format_semicolon(addr) == f"c=GB;a= ;o={expected}"
    assert ps_encode("plain 'text' +,-./:=?") == "plain 'text' +,-./:=?"


def test_delimiter_in_a_value_is_doubled() -> None:
    # F.401 Annex F: "If the value of any attribute contains the delimiter character,
    # this is represented by a pair of delimiter characters."
    assert parse_oraddress("/C=GB/O=A//B/OU1=x///").organization == "A/B"
    assert parse_oraddress("/C=GB/O=A//B/OU1=x///").org_units == ("x/",)
    assert parse_oraddress("c=GB;o=A;;B;ou=//x").organization == "A;B"
    addr = ORAddress(country="GB", organization="A/B", org_units=("/x/",))
    assert format_slash(addr) == "/C=GB/ADMD= /O=A//B/OU1=//x///"
    assert format_semicolon(addr) == "c=GB;a= ;o=A/B;ou1=/x/"  # ";" itself is (059)
    assert format_semicolon(ORAddress(country="GB", organization="a;b")) == "c=GB;a= ;o=a(059)b"


def test_dda_type_with_equals_and_value_starting_with_equals() -> None:
    # F.401 Annex F: an "=" in a DDA type is written "==".
    addr = parse_oraddress("/C=GB/DDA:a==b=v/")
    assert addr.ddas == (("a=b", "v"),)
    tricky = ORAddress(country="GB", ddas=(("a=", "=v"), ("x/y", "1")))
    assert format_slash(tricky) == "/C=GB/ADMD= /DDA:a===(061)v/DDA:x//y=1/"
    assert parse_oraddress(format_slash(tricky)) == tricky
    assert parse_oraddress(format_semicolon(tricky)) == tricky


def test_repeated_dda_types_are_kept_in_order() -> None:
    # F.401 Annex F.3.2.3: DDAs of one type are processed in the sequence written.
    addr = parse_oraddress("c=gb;dda:x=2;dda:x=1")
    assert addr.ddas == (("x", "2"), ("x", "1"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty O/R address"),
        ("/", "empty O/R address"),
        ("/S=Smith/", "missing C"),
        ("/C=GB/XYZ=1/", "unknown attribute 'XYZ'"),
        ("/C=GB/S=a/S=b/", "repeated attribute S"),
        ("c=gb;a=x;admd=y", "repeated attribute ADMD"),
        ("c=gb;c=de", "repeated attribute C"),
        ("c=gb;ou1=a;ou1=b", "repeated attribute OU1"),
        ("c=gb;ou=a;ou1=b", "repeated attribute OU1"),
        ("c=gb;ou=1;ou=2;ou=3;ou=4;ou=5", "more than 4 organizational units"),
        ("c=gb;ou2=x", "OU2 given without OU1"),
        ("c=gb;ou1=a;ou3=x", "OU3 given without OU2"),
        ("/C=GB/S/", "'S' is not key=value"),
        ("//C=GB/", "empty attribute"),
        (";c=gb", "empty attribute"),
        ("c=gb;;s=x", "C must be 2 letters"),  # ";;" is a ";" inside the value of C
        ("c=gb;s=", "S is empty"),
        ("/C=GB/O=(x)/", "unknown escape (x)"),
        ("/C=GB/O=(12)/", "unknown escape (12)"),
        ("/C=GB/O=(007)/", "escape (007) is not a printable"),
        ("/C=GB/O=(200)/", "escape (200) is not a printable"),
        ("/C=GB/O=a(b/", "bad escape"),
        ("/C=GB/O=a)b/", "unmatched ')'"),
        ("/C=GB/O=Cash$Co/", "'$' quotes the next"),
        ("/C=GB/O=x$", "'$' quotes the next"),
        ("/C=GB/O=Müller/", "character 'ü' cannot be carried"),
        ("/C=GB/O=tab\there/", "character '\\t' cannot be carried"),
        ("/C=GBR/", "C must be 2 letters"),
        ("/C=G1/", "C must be 2 letters"),
        ("/C=12/", "C must be 2 letters"),
        ("/C=GB/ADMD=" + "a" * 17 + "/", "ADMD is 17 characters"),
        ("/C=GB/PRMD=" + "a" * 17 + "/", "PRMD is 17 characters"),
        ("/C=GB/O=" + "a" * 65 + "/", "O is 65 characters"),
        ("/C=GB/OU1=" + "a" * 33 + "/", "OU1 is 33 characters"),
        ("/C=GB/S=" + "a" * 41 + "/", "S is 41 characters"),
        ("/C=GB/S=x/G=" + "a" * 17 + "/", "G is 17 characters"),
        ("/C=GB/S=x/I=" + "a" * 6 + "/", "I is 6 characters"),
        ("/C=GB/S=x/Q=" + "a" * 4 + "/", "Q is 4 characters"),
        ("/C=GB/CN=" + "a" * 65 + "/", "CN is 65 characters"),
        ("/C=GB/T-ID=" + "a" * 25 + "/", "T-ID is 25 characters"),
        ("/C=GB/O=" + "a" * 62 + "(a)/", "O is 65 characters as a PrintableString"),
        ("/C=GB/X121=" + "1" * 17 + "/", "X121 is 17 digits"),
        ("/C=GB/X121=12a/", "X121 must be digits"),
        ("/C=GB/N-ID=" + "1" * 33 + "/", "N-ID is 33 digits"),
        ("/C=GB/N-ID=x/", "N-ID must be digits"),
        ("/C=GB/T-TY=fax/", "T-TY must be one of"),
        ("/C=GB/DDA:=x/", "DDA type is empty"),
        ("/C=GB/DDA:abcdefghi=x/", "DDA type 'abcdefghi' is 9 characters"),
        ("/C=GB/DDA:a@b=x/", "must be a PrintableString"),
        ("/C=GB/DDA: a=x/DDA:b =y/DDA:c=/", "DDA:c is empty"),
        ("/C=GB/DDA:x=" + "a" * 129 + "/", "DDA:x is 129 characters"),
        ("c=gb;dda:a=1;dda:b=2;dda:c=3;dda:d=4;dda:e=5", "5 DDAs"),
        ("/C=GB/G=Jo/", "G needs S"),
        ("/C=GB/I=J/", "I needs S"),
        ("/C=GB/Q=Jr/", "Q needs S"),
    ],
)
def test_invalid_oraddresses_say_why(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_oraddress(text)
    assert reason in str(info.value)


def test_bounds_are_inclusive() -> None:
    addr = parse_oraddress(
        "/C=234/ADMD=" + "a" * 16 + "/PRMD=" + "p" * 16 + "/O=" + "o" * 64 + "/OU1=" + "u" * 32
        + "/OU2=u/OU3=u/OU4=u/S=" + "s" * 40 + "/G=" + "g" * 16 + "/I=" + "i" * 5 + "/Q=" + "q" * 3
        + "/CN=" + "c" * 64 + "/X121=" + "1" * 16 + "/N-ID=" + "2" * 32 + "/T-ID=" + "t" * 24
        + "/DDA:abcdefgh=" + "v" * 128 + "/DDA:b=1/DDA:c=1/DDA:d=1/"
    )  # fmt: skip
    assert addr.country == "234"
    assert parse_oraddress(format_slash(addr)) == addr


def test_construction_validates_too() -> None:
    with pytest.raises(AddressError, match="5 organizational units"):
        ORAddress(country="GB", org_units=("a", "b", "c", "d", "e"))
    with pytest.raises(AddressError, match="G needs S"):
        ORAddress(country="GB", given_name="Jo")
    with pytest.raises(AddressError, match="OU2 is empty"):
        ORAddress(country="GB", org_units=("a", ""))
    with pytest.raises(AddressError, match="leading or trailing spaces"):
        ORAddress(country="GB", ddas=((" a", "x"),))
    assert ORAddress(country="gb", admd="").country == "GB"
    assert ORAddress(country="gb", admd="").admd == " "


# --- telling O/R addresses from mailboxes ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/C=GB/ADMD= /S=Smith/", True),
        ("/C=GB", True),
        ("c=GB;a= ;s=Smith", True),
        ("S=Smith; C=gb", True),
        ("c=gb", True),
        ("X.400: G=john; C=aq", True),
        ("c=gb;a= ;dda:rfc-822=jo@example.com", True),  # has an @, but no mailbox
        ("/C=GB/DDA:RFC-822=jo@example.com/", True),
        ("jo@example.com", False),
        ('"/C=GB/S=Smith/"@gateway.example', False),  # RFC 2156 encoding: it is a mailbox
        ("s=smith@example.com", False),  # "=" is atext: a valid, odd, mailbox
        ("/s=smith@example.com", False),
        ("foo=bar;baz=1", False),
        ("/just/a/path", False),
        ("", False),
    ],
)
def test_is_oraddress_text(text: str, expected: bool) -> None:
    assert is_oraddress_text(text) is expected


def test_parse_address_and_canonical_address() -> None:
    assert parse_address("c=gb;a= ;p=Acme;s=Smith") == ORAddress(
        country="GB", prmd="Acme", surname="Smith"
    )
    assert parse_address("Jo@Example.COM") == Mailbox("Jo", "example.com")
    assert canonical_address("s=Smith;p=Acme;c=gb") == "/C=GB/ADMD= /PRMD=Acme/S=Smith/"
    assert canonical_address('"jo"@Example.COM') == "jo@example.com"
    with pytest.raises(AddressError, match="missing @"):
        canonical_address("nobody")
    with pytest.raises(AddressError, match="missing C"):
        canonical_address("s=Smith;p=Acme")


# --- prefixes -------------------------------------------------------------------------------

ADDRESS = parse_oraddress("/C=GB/ADMD=BT/PRMD=Acme/O=Sales/OU1=East/S=Smith/DDA:ID=42/")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("/C=GB/", True),
        ("/C=gb/ADMD= /PRMD=ACME/", True),  # case-insensitive, blank ADMD is any ADMD
        ("/C=GB/ADMD=bt/", True),
        ("/C=GB/ADMD= /PRMD=  acme  /", True),  # leading/trailing spaces do not count
        ("/C=GB/ADMD=BT/PRMD=Acme/O=Sales/OU1=East/", True),
        ("/C=GB/ADMD= /O=Sales/", True),
        ("/C=GB/DDA:id=42/", True),
        ("/C=DE/", False),
        ("/C=GB/ADMD=Other/", False),
        ("/C=GB/ADMD= /PRMD=Acme/O=Marketing/", False),
        ("/C=GB/ADMD= /PRMD=Acme/O=Sales/OU1=East/OU2=Lab/", False),
        ("/C=GB/DDA:ID=43/", False),
        ("/C=GB/DDA:other=42/", False),
        ("/C=GB/S=Smith/G=Jo/", False),
    ],
)
def test_matches_prefix(prefix: str, expected: bool) -> None:
    assert ADDRESS.matches_prefix(parse_oraddress(prefix)) is expected


def test_blank_admd_address_does_not_match_a_named_admd() -> None:
    anywhere = parse_oraddress("/C=GB/ADMD= /PRMD=Acme/S=Smith/")
    assert not anywhere.matches_prefix(parse_oraddress("/C=GB/ADMD=BT/"))
    assert anywhere.matches_prefix(parse_oraddress("/C=GB/ADMD= /PRMD=Acme/"))


def test_internal_spaces_compare_as_one() -> None:
    addr = parse_oraddress("/C=GB/O=A  Bank   Ltd/")
    assert addr.matches_prefix(parse_oraddress("/C=GB/O=a bank ltd/"))


@pytest.mark.parametrize(
    ("prefix", "specificity"),
    [
        ("/C=GB/", 1),
        ("/C=GB/ADMD= /", 1),
        ("/C=GB/ADMD=BT/", 2),
        ("/C=GB/ADMD= /PRMD=Acme/", 2),
        ("/C=GB/ADMD=BT/PRMD=Acme/O=Sales/OU1=a/OU2=b/", 6),
        ("/C=GB/DDA:x=1/DDA:y=2/", 3),
    ],
)
def test_specificity(prefix: str, specificity: int) -> None:
    assert parse_oraddress(prefix).specificity == specificity


# --- round trips ----------------------------------------------------------------------------

_VALUE_CHARS = st.characters(min_codepoint=32, max_codepoint=126)
_PRINTABLE = string.ascii_letters + string.digits + " '()+,-./:=?"


@st.composite
def _values(draw: st.DrawFn, bound: int) -> str:
    """Printable ASCII whose escaped (PrintableString) form fits the bound."""
    chars = draw(st.lists(_VALUE_CHARS, min_size=1, max_size=bound))
    while chars and len(ps_encode("".join(chars))) > bound:
        chars.pop()
    return "".join(chars) or "x"


_dda_types = st.text(st.sampled_from(_PRINTABLE), min_size=1, max_size=8).filter(
    lambda t: t == t.strip()
)


@st.composite
def oraddresses(draw: st.DrawFn) -> ORAddress:
    def maybe(strategy: st.SearchStrategy[str]) -> str | None:
        return draw(st.none() | strategy)

    surname = maybe(_values(40))
    return ORAddress(
        country=draw(st.from_regex(r"[A-Za-z]{2}|[0-9]{3}", fullmatch=True)),
        admd=draw(st.just(" ") | _values(16)),
        prmd=maybe(_values(16)),
        organization=maybe(_values(64)),
        org_units=tuple(draw(st.lists(_values(32), max_size=4))),
        surname=surname,
        given_name=maybe(_values(16)) if surname is not None else None,
        initials=maybe(_values(5)) if surname is not None else None,
        generation=maybe(_values(3)) if surname is not None else None,
        common_name=maybe(_values(64)),
        x121=maybe(st.from_regex(r"[0-9]{1,16}", fullmatch=True)),
        numeric_user_id=maybe(st.from_regex(r"[0-9]{1,32}", fullmatch=True)),
        terminal_id=maybe(_values(24)),
        terminal_type=maybe(st.sampled_from(TERMINAL_TYPES)),
        ddas=tuple(draw(st.lists(st.tuples(_dda_types, _values(128)), max_size=4))),
    )


@given(oraddresses())
def test_slash_form_round_trip(addr: ORAddress) -> None:
    text = format_slash(addr)
    assert parse_oraddress(text) == addr
    assert is_oraddress_text(text)
    assert canonical_address(text) == text


@given(oraddresses())
def test_semicolon_form_round_trip(addr: ORAddress) -> None:
    text = format_semicolon(addr)
    assert parse_oraddress(text) == addr
    assert is_oraddress_text(text)
    assert format_slash(parse_oraddress(text)) == format_slash(addr)


@given(st.text(max_size=80) | st.text(st.sampled_from("/;=()$ aC:DAS1"), max_size=40))
def test_parse_oraddress_only_raises_address_error(text: str) -> None:
    try:
        addr = parse_oraddress(text)
    except AddressError:
        return
    assert parse_oraddress(format_slash(addr)) == addr
