"""The BER codec (waypost.asn1): golden vectors, limits, malformed input, round trips.

Why hand-written and not pyasn1 0.6.5 (measured for issue 4): pyasn1 can express
a SET with an untagged CHOICE member, but a schema decode of a 400-byte
envelope took ~570 µs against ~26 µs for this scan (~110 µs with typed
extraction); its errors carry neither path nor offset, and only its nesting
depth (100, hard-coded) is limited. asn1tools 0.169 cannot compile X.411.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waypost import asn1 as ber
from waypost.asn1 import (
    BERError,
    LimitError,
    Limits,
    MalformedError,
    Tag,
    TagClass,
    TruncatedError,
    UnexpectedTagError,
)

H = bytes.fromhex


# --- golden vectors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (0, "020100"),
        (127, "02017f"),
        (128, "02020080"),
        (-128, "020180"),
        (-129, "0202ff7f"),
        (256, "02020100"),
        (-1, "0201ff"),
        (2**63, "0209008000000000000000"),
    ],
)
def test_integer_x690(value: int, encoding: str) -> None:
    assert ber.encode_int(value) == H(encoding)
    element = ber.decode(H(encoding))
    assert element.tag == ber.INTEGER
    assert element.as_int() == value


@pytest.mark.parametrize(
    ("oid", "encoding"),
    [
        ("2.6.0.1.6", "060456000106"),
        ("1.3.26.0.4406.0.4.1", "06082b1a00a236000401"),
        ("2.100.3", "0603813403"),
        ("2.1.1", "06025101"),
        ("0.39", "060127"),
    ],
)
def test_oid(oid: str, encoding: str) -> None:
    assert ber.encode_oid(oid) == H(encoding)
    assert ber.decode(H(encoding)).as_oid() == oid


def test_boolean_and_null() -> None:
    assert ber.encode_bool(True) == H("0101ff")
    assert ber.encode_bool(False) == H("010100")
    assert ber.decode(H("0101ff")).as_bool() is True
    assert ber.decode(H("010101")).as_bool() is True  # BER: any non-zero octet
    assert ber.decode(H("010100")).as_bool() is False
    assert ber.encode_null() == H("0500")
    assert ber.decode(H("0500")).is_null()
    assert not ber.decode(H("0101ff")).is_null()
    ber.decode(H("8000")).as_null()  # implicitly tagged NULL


@pytest.mark.parametrize(
    ("length", "header"),
    [(0, "0400"), (127, "047f"), (128, "048180"), (255, "0481ff"), (256, "04820100")],
)
def test_lengths(length: int, header: str) -> None:
    encoded = ber.encode_octets(b"x" * length)
    assert encoded[: len(H(header))] == H(header)
    element = ber.decode(encoded)
    assert element.header_length == len(H(header))
    assert element.length == length
    assert element.as_octets() == b"x" * length


def test_long_form_length_of_three_octets() -> None:
    data = b"y" * 70000
    encoded = ber.encode_octets(data)
    assert encoded[:5] == H("0483011170")
    assert ber.decode(encoded).as_octets() == data


def test_non_minimal_length_is_accepted() -> None:
    element = ber.decode(H("04820003616263"))
    assert element.as_octets() == b"abc"
    assert element.header_length == 4
    assert ber.decode(H("048400000000")).as_octets() == b""


@pytest.mark.parametrize(
    ("tag", "encoding"),
    [
        (ber.application(31), "5f1f"),
        (ber.context(201, True), "bf8149"),
        (Tag(TagClass.PRIVATE, False, 16383), "dfff7f"),
        (ber.context(30), "9e"),
        (ber.application(2**28), "5f8180808000"),
    ],
)
def test_high_tag_numbers(tag: Tag, encoding: str) -> None:
    assert ber.encode_tag(tag) == H(encoding)
    element = ber.decode(H(encoding) + b"\x00")
    assert element.tag == tag
    assert element.header_length == len(H(encoding)) + 1


def test_strings() -> None:
    printable = H("130b5465737420557365722031")
    assert ber.decode(printable).as_string() == "Test User 1"
    assert ber.encode_string(ber.PRINTABLE_STRING, "Test User 1") == printable
    assert ber.decode(H("1603616263")).as_string() == "abc"
    assert ber.decode(H("0c04c3a9c3a8")).as_string() == "éè"
    assert ber.decode(H("1402e9e8")).as_string() == "éè"  # Teletex read as Latin-1
    assert ber.decode(H("1e0400e900e8")).as_string() == "éè"  # BMPString
    assert ber.decode(H("1c08000000e9000000e8")).as_string() == "éè"  # UniversalString
    assert ber.decode(H("1a0141")).as_string() == "A"  # VisibleString
    assert ber.decode(H("19024142")).as_string() == "AB"
    assert ber.decode(H("1b024142")).as_string() == "AB"
    assert ber.decode(H("12033132 20".replace(" ", ""))).as_string() == "12 "
    # An implicitly tagged IA5String needs its kind.
    assert ber.decode(H("8003414243")).as_string(ber.IA5_STRING) == "ABC"
    assert ber.encode_string(ber.context(0), "ABC", ber.IA5_STRING) == H("8003414243")
    # Constructed (segmented) string.
    assert ber.decode(H("3680 1602 4142 1601 43 0000".replace(" ", ""))).as_string() == "ABC"


def test_string_errors() -> None:
    with pytest.raises(ber.BadValueError, match="not allowed"):
        ber.decode(H("130140")).as_string()  # "@" not in PrintableString
    assert ber.decode(H("130140")).as_string(check=False) == "@"
    with pytest.raises(ber.BadValueError, match="ascii"):
        ber.decode(H("1601e9")).as_string()
    with pytest.raises(ber.BadValueError, match="implicitly"):
        ber.decode(H("8001e9")).as_string()
    with pytest.raises(ber.BadValueError, match="not a character string"):
        ber.decode(H("0401e9")).as_string()
    with pytest.raises(ber.BadValueError, match="utf-8"):
        ber.decode(H("0c01ff")).as_string()


@pytest.mark.parametrize(
    ("wire", "text"),
    [
        ("13083c612e623e20402a", "<a.b> @*"),  # PrintableString with "<", ">", "@", "*"
        ("1202312d", "1-"),  # NumericString with "-"
        ("1603e94142", "\xe9AB"),  # IA5String with an octet outside ASCII
        ("8001e9", "\xe9"),  # the same, implicitly tagged (read as IA5String)
    ],
)
def test_lenient_strings_are_kept_as_received(wire: str, text: str) -> None:
    """A lenient decode reads a string breaking its type as received, notes where, and
    the encoder gives back the same octets."""
    root = ber.decode(H(wire), name="field", lenient=True)
    kind = ber.IA5_STRING if root.tag == ber.context(0) else None
    assert root.as_string(kind) == text
    (fault,) = root.faults
    assert fault.path == "field" and fault.offset == 0
    assert ber.encode_string(root.tag, text, kind) == H(wire)
    # The strict decode still refuses it.
    with pytest.raises(ber.BadValueError):
        ber.decode(H(wire)).as_string(kind)


def test_lenient_decoding_keeps_no_fault_for_good_strings() -> None:
    root = ber.decode(H("3005130341422e"), lenient=True)
    assert root.child(0).as_string() == "AB." and root.faults == []
    assert ber.decode(H("3005130341422e")).faults == []
    with pytest.raises(ValueError, match="does not fit"):
        ber.encode_string(ber.IA5_STRING, "\u20ac")  # not even Latin-1: never received


def test_bit_strings() -> None:
    assert ber.decode(H("0304066e5dc0")).as_bits() == (H("6e5dc0"), 6)
    assert ber.encode_bits(H("6e5dc0"), 6) == H("0304066e5dc0")
    constructed = H("2380 0303000a3b 0305045f291cd0 0000".replace(" ", ""))
    assert ber.decode(constructed).as_bits() == (H("0a3b5f291cd0"), 4)
    assert ber.decode(H("030100")).as_bits() == (b"", 0)
    assert ber.decode(H("0302078000")[:4]).as_bit_set() == frozenset({0})
    assert ber.encode_bit_set({0, 3}) == H("03020490")
    assert ber.decode(ber.encode_bit_set({1, 9})).as_bit_set() == frozenset({1, 9})
    assert ber.encode_bit_set(()) == H("030100")
    with pytest.raises(ber.BadValueError, match="unused"):
        ber.decode(H("030208ff")).as_bits()
    with pytest.raises(ber.BadValueError, match="unused"):
        ber.decode(H("030107")).as_bits()
    with pytest.raises(ber.BadValueError, match="no contents"):
        ber.decode(H("0300")).as_bits()
    with pytest.raises(ber.BadValueError, match="last segment"):
        ber.decode(H("2308 03020180 03020180".replace(" ", ""))).as_bits()


def test_times() -> None:
    utc = ber.decode(H("170d3931303530363233343534305a"))
    assert utc.as_time() == datetime(1991, 5, 6, 23, 45, 40, tzinfo=UTC)
    with pytest.raises(ber.BadValueError, match="UTCTime"):
        ber.decode(b"\x17\x0d9105061745401").as_time()
    with pytest.raises(ber.BadValueError, match="zone"):
        ber.decode(b"\x17\x0f9105061745+2400").as_time()
    zoned = ber.decode(b"\x17\x0f" + b"9105061745-0600")
    assert zoned.as_time() == datetime(1991, 5, 6, 17, 45, tzinfo=timezone(-timedelta(hours=6)))
    assert ber.decode(b"\x17\x0b4905061745Z").as_time().year == 2049
    gen = ber.decode(b"\x18\x11" + b"19851106210627.3Z")
    assert gen.as_time() == datetime(1985, 11, 6, 21, 6, 27, 300000, tzinfo=UTC)
    assert ber.decode(b"\x18\x0a2024022914").as_time() == datetime(2024, 2, 29, 14)
    with pytest.raises(ber.BadValueError, match="bad time"):
        ber.decode(b"\x18\x0a2023022914").as_time()
    moment = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)
    assert ber.encode_time(moment) == b"\x17\x0d261124010203Z"
    assert ber.decode(ber.encode_time(moment)).as_time() == moment
    generalized = ber.encode_time(moment.replace(microsecond=250000), ber.GENERALIZED_TIME)
    assert generalized == b"\x18\x1220261124010203.25Z"
    assert ber.decode(generalized).as_time() == moment.replace(microsecond=250000)
    implicit = ber.encode_time(moment, ber.context(0), ber.UTC_TIME)
    assert ber.decode(implicit).as_time(ber.UTC_TIME) == moment


# MTABindArgument A1 { 80 "MTA-A", A1 { 16 "secret" } } (X400-NOTES.md, P1).
BIND = H("a111 8005 4d54412d41 a108 1606 736563726574".replace(" ", ""))
# RTORQ B0 { 80 30, 81 5, 82 0, A3 { A0 { B0 ([16] EXPLICIT) BIND } } }.
RTORQ = H("b022 80011e 810105 820100 a317 a015 b013".replace(" ", "")) + BIND


def test_mta_bind_argument_golden() -> None:
    root = ber.decode(BIND, name="bind-argument")
    assert root.tag == ber.context(1, True)
    assert root.child(ber.context(0), "mta-name").as_string(ber.IA5_STRING) == "MTA-A"
    credentials = root.child(ber.context(1, True), "credentials")
    assert credentials.child(0, "simple").as_string() == "secret"
    built = ber.constructed(
        ber.context(1),
        ber.encode_string(ber.context(0), "MTA-A", ber.IA5_STRING),
        ber.constructed(ber.context(1), ber.encode_string(ber.IA5_STRING, "secret")),
    )
    assert built == BIND


def test_rtorq_golden() -> None:
    rtorq = ber.decode(RTORQ, name="rtorq")
    assert [c.tag.number for c in rtorq] == [0, 1, 2, 3]
    assert rtorq.child(ber.context(0)).as_int() == 30
    assert rtorq.child(ber.context(1)).as_int() == 5
    explicit = rtorq.child(ber.context(3, True)).child(0).child(0)
    assert explicit.tag == ber.context(16, True)
    bind = explicit.child(0)
    assert bytes(bind.raw) == BIND
    assert bind.offset == len(RTORQ) - len(BIND)
    built = ber.constructed(
        ber.context(16),
        ber.encode_int(30, ber.context(0)),
        ber.encode_int(5, ber.context(1)),
        ber.encode_int(0, ber.context(2)),
        ber.constructed(
            ber.context(3), ber.constructed(ber.context(0), ber.constructed(ber.context(16), BIND))
        ),
    )
    assert built == RTORQ


def test_external_and_set_of() -> None:
    external = ber.constructed(
        ber.EXTERNAL, ber.encode_int(5), ber.constructed(ber.context(0), BIND)
    )
    assert external[:2] == H("2818")
    element = ber.decode(external)
    assert element.tag == ber.EXTERNAL
    assert element.child(0).as_int() == 5
    a, b = ber.encode_int(2), ber.encode_int(1)
    assert ber.set_of(a, b) == ber.set_of(b, a) == H("3106020101020102")
    assert ber.sequence(a, b) == H("3006020102020101")


# --- indefinite lengths and constructed strings -------------------------------------


def test_indefinite_length() -> None:
    data = H("3080 0201 05 0500 0000".replace(" ", ""))
    root = ber.decode(data)
    assert root.indefinite
    assert root.end == len(data)
    assert bytes(root.value) == H("0201050500")
    assert [c.tag for c in root] == [ber.INTEGER, ber.NULL]


def test_nested_indefinite_length() -> None:
    data = H("3180 a080 0401 41 2480 0401 42 0000 0000 0201 07 0000".replace(" ", ""))
    root = ber.decode(data)
    inner = root.child(0)
    assert inner.indefinite and inner.end == 16
    assert inner.child(1).as_octets() == b"B"
    assert root.child(1).as_int() == 7
    assert not root.child(1).indefinite


def test_constructed_octet_string() -> None:
    data = H("2480 0403 616263 2406 0401 64 0401 65 0000".replace(" ", ""))
    assert ber.decode(data).as_octets() == b"abcde"
    with pytest.raises(ber.BadValueError, match="segment") as info:
        ber.decode(H("2403 020100")).as_octets()
    assert info.value.path == "$[0]"
    assert info.value.offset == 2


def test_indefinite_inside_definite_and_decode_all() -> None:
    data = H("3006 3080 0500 0000".replace(" ", ""))
    assert ber.decode(data).child(0).child(0).is_null()
    elements = ber.decode_all(data + H("0500") + H("3080 0000".replace(" ", "")))
    assert [e.offset for e in elements] == [0, 8, 10]
    assert elements[2].path == "$[2]"


# --- paths and names ------------------------------------------------------------------


def _envelope() -> bytes:
    recipient = ber.sequence(
        ber.encode_string(ber.application(0), "alice", ber.IA5_STRING),
        ber.encode_int(1, ber.context(0)),
    )
    broken = ber.sequence(
        ber.encode_octets(b"x", ber.application(0)), ber.encode_int(2, ber.context(0))
    )
    return ber.set_of(
        ber.encode_int(22, ber.application(6)),
        ber.constructed(ber.context(2), recipient, broken),
    )


def test_paths_from_names() -> None:
    envelope = ber.decode(_envelope(), name="envelope")
    prfs = envelope.child(ber.context(2, True), "per-recipient-fields")
    assert prfs.path == "envelope.per-recipient-fields"
    name = prfs.child(1).child(0, "recipient-name")
    assert name.path == "envelope.per-recipient-fields[1].recipient-name"
    with pytest.raises(UnexpectedTagError) as info:
        name.expect(ber.application(0, True), name="or-name")
    assert info.value.path == "envelope.per-recipient-fields[1].or-name"
    assert info.value.offset == name.offset
    assert "expected" in str(info.value) and "offset" in str(info.value)
    error = name.error("unknown attribute")
    assert error.path == "envelope.per-recipient-fields[1].recipient-name"
    assert prfs.child(0).child(1).as_int() == 1
    assert len(prfs) == 2
    assert envelope.find(ber.context(9)) is None


def test_missing_children() -> None:
    envelope = ber.decode(_envelope(), name="envelope")
    with pytest.raises(UnexpectedTagError, match="missing priority") as info:
        envelope.child(ber.application(7), "priority")
    assert info.value.path == "envelope"
    with pytest.raises(UnexpectedTagError, match=r"missing \[5\]"):
        envelope.child(5)
    with pytest.raises(ber.BadValueError, match="primitive"):
        envelope.child(0).children()


def test_positional_path_in_scan_errors() -> None:
    data = H("3009 0500 3005 0500 0403 41".replace(" ", ""))
    with pytest.raises(MalformedError) as info:
        ber.decode(data)
    assert info.value.path == "$[1][1]"
    assert info.value.offset == 8


# --- malformed input and limits -------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error", "offset", "path"),
    [
        ("", TruncatedError, 0, "$"),
        ("30", TruncatedError, 1, "$"),
        ("1f", TruncatedError, 1, "$"),
        ("1f81", TruncatedError, 2, "$"),
        ("048201", TruncatedError, 2, "$"),
        ("040561626364", TruncatedError, 0, "$"),
        ("3003 0405 616263", MalformedError, 2, "$[0]"),
        ("3080 0500", TruncatedError, 4, "$"),
        ("3004 3080 0500", MalformedError, 6, "$[0]"),
        ("0000", MalformedError, 0, "$"),
        ("3002 0000", MalformedError, 2, "$[0]"),
        ("0001 41", MalformedError, 0, "$"),
        ("0480 0000", MalformedError, 0, "$"),
        ("04ff", MalformedError, 1, "$"),
        ("1f8001 00", MalformedError, 0, "$"),
        ("1f05 00", MalformedError, 0, "$"),
        ("1fffffffffff7f 00", MalformedError, 0, "$"),
        ("0500 0500", MalformedError, 2, "$"),
    ],
)
def test_malformed(data: str, error: type[BERError], offset: int, path: str) -> None:
    with pytest.raises(error) as info:
        ber.decode(H(data.replace(" ", "")))
    assert type(info.value) is error
    assert info.value.offset == offset
    assert info.value.path == path
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("data", "accessor", "match"),
    [
        ("0600", "as_oid", "no contents"),
        ("06022b80", "as_oid", "ends inside"),
        ("06032b8001", "as_oid", "leading 0x80"),
        ("0200", "as_int", "no contents"),
        ("01020000", "as_bool", "one octet"),
        ("0100", "as_bool", "one octet"),
        ("050100", "is_null", "NULL with contents"),
        ("800100", "as_null", "NULL with contents"),
        ("3000", "as_int", "primitive"),
        ("170548656c6c6f", "as_time", "UTCTime"),
        ("0201ff", "as_time", "not a time type"),
    ],
)
def test_bad_values(data: str, accessor: str, match: str) -> None:
    element = ber.decode(H(data))
    with pytest.raises(ber.BadValueError, match=match) as info:
        getattr(element, accessor)()
    assert info.value.offset == 0 and info.value.path == "$"


def test_two_gigabyte_length_refused_before_allocation() -> None:
    data = H("04847fffffff") + b"x"
    with pytest.raises(LimitError) as info:
        ber.decode(data)
    assert info.value.limit == "max_length" and info.value.offset == 0
    with pytest.raises(LimitError):
        ber.split_first(H("04847fffffff"))
    with pytest.raises(LimitError):
        ber.decode(H("3007 0484ffffffff 00".replace(" ", "")))
    small = Limits(max_length=10)
    with pytest.raises(LimitError, match="max_length"):
        ber.decode(ber.encode_octets(b"x" * 11), limits=small)
    assert ber.decode(ber.encode_octets(b"x" * 10), limits=small).length == 10


def test_deep_nesting_refused_without_recursion() -> None:
    depth = 10_000
    indefinite = b"\x30\x80" * depth + b"\x00\x00" * depth
    with pytest.raises(LimitError) as info:
        ber.decode(indefinite)
    assert info.value.limit == "max_depth"
    assert info.value.offset == 2 * 64
    assert info.value.path == "$" + "[0]" * 64
    definite = b""
    for _ in range(depth):
        definite = ber.sequence(definite)
    with pytest.raises(LimitError, match="max_depth"):
        ber.decode(definite)
    assert ber.decode(b"\x30\x80" * 64 + b"\x00\x00" * 64).indefinite
    deep = ber.decode(b"\x30\x80" * depth + b"\x00\x00" * depth, limits=Limits(max_depth=depth))
    assert deep.end == 4 * depth
    # Walking and naming a very deep (allowed) tree does not recurse either.
    segments = b"\x24\x80" * depth + b"\x04\x01A" + b"\x00\x00" * depth
    deepest = ber.decode(segments, limits=Limits(max_depth=depth))
    assert deepest.as_octets() == b"A"
    element = deepest
    while element.tag.constructed:
        element = element.child(0)
    assert element.path == "$" + "[0]" * depth


def test_million_elements_refused() -> None:
    count = 1_000_000
    data = b"\x30\x84" + (2 * count).to_bytes(4, "big") + b"\x05\x00" * count
    with pytest.raises(LimitError) as info:
        ber.decode(data)
    assert info.value.limit == "max_elements"
    assert info.value.offset == 6 + 2 * (100_000 - 1)
    assert info.value.path == "$[99999]"
    with pytest.raises(LimitError, match="max_elements"):
        ber.decode_all(b"\x05\x00" * 11, limits=Limits(max_elements=10))


def test_max_total() -> None:
    with pytest.raises(LimitError) as info:
        ber.decode(b"\x04\x05hello", limits=Limits(max_total=6))
    assert info.value.limit == "max_total"
    with pytest.raises(LimitError):
        ber.split_first(b"\x04\x05hello", limits=Limits(max_total=6))
    with pytest.raises(LimitError):
        ber.split_first(b"\x30\x80\x05\x00\x05\x00", limits=Limits(max_total=4))


# --- framing --------------------------------------------------------------------------


def test_split_first() -> None:
    assert ber.split_first(b"") is None
    assert ber.split_first(H("30")) is None
    assert ber.split_first(H("3003 0201".replace(" ", ""))) is None
    assert ber.split_first(H("3003 020105 0500".replace(" ", ""))) == 5
    assert ber.split_first(H("3080 0500 00".replace(" ", ""))) is None
    assert ber.split_first(H("3080 0500 0000 ff".replace(" ", ""))) == 6
    with pytest.raises(MalformedError):
        ber.split_first(H("04ff"))


def test_tlv_reader_byte_by_byte() -> None:
    stream = BIND + RTORQ + H("3080 0500 0000".replace(" ", "")) + H("0500")
    reader = ber.TLVReader()
    got: list[bytes] = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        got.extend(reader)
    assert got == [BIND, RTORQ, H("308005000000"), H("0500")]
    assert reader.buffered == 0
    assert reader.next_element() is None


# --- properties -----------------------------------------------------------------------

_tags = st.tuples(st.sampled_from(TagClass), st.one_of(st.integers(0, 40), st.integers(0, 2**21)))
_leaf = st.tuples(st.just("p"), _tags, st.binary(max_size=200), st.just(False))
Tree = tuple[str, tuple[TagClass, int], object, bool]
_trees = st.recursive(
    _leaf,
    lambda kids: st.tuples(st.just("c"), _tags, st.lists(kids, max_size=5), st.booleans()),
    max_leaves=30,
)


def _fix(node: Tree) -> Tree:
    kind, (cls, number), body, indefinite = node
    if cls == TagClass.UNIVERSAL and number == 0:
        number = 1
    return kind, (cls, number), body, indefinite


def _encode(node: Tree) -> bytes:
    kind, (cls, number), body, indefinite = _fix(node)
    tag = Tag(cls, kind == "c", number)
    if kind == "p":
        assert isinstance(body, bytes)
        return ber.encode_tlv(tag, body)
    assert isinstance(body, list)
    inner = b"".join(_encode(child) for child in body)
    if indefinite:
        return ber.encode_tag(tag) + b"\x80" + inner + b"\x00\x00"
    return ber.constructed(tag, inner)


def _check(element: ber.Element, node: Tree) -> None:
    kind, (cls, number), body, _ = _fix(node)
    assert element.tag == Tag(cls, kind == "c", number)
    if kind == "p":
        assert bytes(element.value) == body
    else:
        assert isinstance(body, list)
        assert len(element) == len(body)
        for child, sub in zip(element, body, strict=True):
            _check(child, sub)


@given(_trees)
def test_round_trip(tree: Tree) -> None:
    data = _encode(tree)
    root = ber.decode(data)
    _check(root, tree)
    assert root.end == len(data)
    assert bytes(root.raw) == data
    assert ber.split_first(data + b"\x05") == len(data)


@given(st.integers(-(2**80), 2**80))
def test_int_round_trip(value: int) -> None:
    assert ber.decode(ber.encode_int(value)).as_int() == value


@given(
    st.lists(st.integers(0, 2**40), min_size=1, max_size=8), st.integers(0, 2), st.integers(0, 39)
)
def test_oid_round_trip(arcs: list[int], first: int, second: int) -> None:
    oid = ".".join(map(str, [first, second + (arcs[0] if first == 2 else 0), *arcs[1:]]))
    assert ber.decode(ber.encode_oid(oid)).as_oid() == oid


@given(st.frozensets(st.integers(0, 100)))
def test_bit_set_round_trip(bits: frozenset[int]) -> None:
    assert ber.decode(ber.encode_bit_set(bits)).as_bit_set() == bits


def _exercise(data: bytes) -> None:
    """Decode and use every accessor: nothing but BERError may come out."""
    try:
        elements = ber.decode_all(data, limits=Limits(max_elements=2000))
    except BERError:
        return
    todo = list(elements)
    while todo:
        element = todo.pop()
        for accessor in ("as_int", "as_bool", "as_octets", "as_oid", "as_string", "as_bits"):
            with contextlib.suppress(BERError):
                getattr(element, accessor)()
        for kind in (ber.UTC_TIME, ber.GENERALIZED_TIME, ber.PRINTABLE_STRING, ber.BMP_STRING):
            with contextlib.suppress(BERError):
                element.as_time(kind) if "Time" in str(kind) else element.as_string(kind)
        if element.tag.constructed:
            todo.extend(element.children())


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_ber_errors(data: bytes) -> None:
    _exercise(data)
    with contextlib.suppress(BERError):
        ber.split_first(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    _trees,
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from("rid")), max_size=6
    ),
)
def test_mutated_encodings_raise_only_ber_errors(
    tree: Tree, edits: list[tuple[int, int, str]]
) -> None:
    data = bytearray(_encode(tree))
    for position, octet, how in edits:
        at = position % (len(data) + 1)
        if how == "r" and at < len(data):
            data[at] = octet
        elif how == "i":
            data.insert(at, octet)
        elif how == "d" and at < len(data):
            del data[at]
    _exercise(bytes(data))
