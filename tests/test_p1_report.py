"""P1 reports and probes, and stored objects ⇄ MTS-APDUs (X.411), at the byte level."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.asn1 import SET, BERError, decode, encode_tlv
from waypost.message import (
    ContentType,
    Envelope,
    ObjectKind,
    Recipient,
    ReportRequest,
    TraceElement,
)
from waypost.message import decode_envelope as load
from waypost.message import encode_envelope as save
from waypost.x400.p1_envelope import MESSAGE_APDU, encode_envelope
from waypost.x400.p1_objects import (
    add_trace,
    decode_object,
    encode_stored,
    loop_detected,
)
from waypost.x400.p1_report import (
    ReportContent,
    ReportedRecipient,
    decode_report_content,
    encode_report_content,
    printable,
)
from waypost.x400.report_maker import RecipientFate, build_report, nondelivery_codes

A = "/C=GB/ADMD= /PRMD=A/"
B = "/C=GB/ADMD= /PRMD=B/"
SMITH = "/C=GB/ADMD= /PRMD=A/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

NDR_RECIPIENT = ReportedRecipient(
    actual_recipient=JONES, originally_specified_number=1, arrival=T0, reason=1, diagnostic=0
)


def test_non_delivered_recipient_golden_bytes() -> None:
    # Hand-assembled from X.411 (IMPLICIT TAGS): SET { [0] ORName components, [1] 1,
    # [2] BIT STRING (8 bits: mta-non-delivery, originator-non-delivery), [3] SET {
    # [0] arrival, [1] { [1] { [0] reason, [1] diagnostic } } } }.
    name = bytes.fromhex("a0 1b 3019 6104 1302 4742 6203 1301 20 a203 1301 42 a507 8005")
    name += b"Jones"
    # set_of writes a SET's members in tag order (as DER would): [1], [2], [0], [3].
    expected = (
        bytes.fromhex("810101")
        + bytes.fromhex("820200") + bytes((0x28,))
        + name
        + bytes.fromhex("a319 800d") + b"231114221320Z"
        + bytes.fromhex("a108 a106 800101 810100")
    )  # fmt: skip
    wire = encode_report_content(ReportContent(subject_id=f"{A};m1", recipients=(NDR_RECIPIENT,)))
    element = decode(wire)
    per_recipient = element.children()[-1].child(0)
    assert bytes(per_recipient.value) == expected


def test_report_content_round_trip_all_fields() -> None:
    content = ReportContent(
        subject_id=f"{A};m1",
        subject_trace=(TraceElement(domain=A, arrival=T0),),
        eits=("ia5-text",),
        content_type=ContentType.P22,
        content_id="cid-1",
        returned_content=b"\xa0\x00",
        recipients=(
            NDR_RECIPIENT,
            ReportedRecipient(
                actual_recipient="/C=GB/ADMD= /PRMD=B/S=Kay/",
                originally_specified_number=2,
                arrival=T0,
                delivered_at=T0 + 5,
                type_of_mts_user=1,
                report_request=ReportRequest.ALWAYS,
                responsibility=True,
                intended_recipient=JONES,
                supplementary="2.0.0 delivered",
            ),
        ),
    )
    assert decode_report_content(encode_report_content(content)) == content


def test_report_describes_fates() -> None:
    assert NDR_RECIPIENT.describe() == "non-delivered: unable-to-transfer / unrecognised-OR-name"
    dr = ReportedRecipient(actual_recipient=JONES, originally_specified_number=1, arrival=T0,
                           delivered_at=T0)  # fmt: skip
    assert dr.describe() == "delivered"


def test_supplementary_information_is_printable_and_bounded() -> None:
    assert printable("5.1.1 <x@y> é_!") == "5.1.1 ?x?y? ???"
    assert len(printable("x" * 1000)) == 256


@pytest.mark.parametrize(
    ("detail", "codes"),
    [
        ("5.1.1 no such O/R address", (1, 0)),
        ("5.4.4 no route", (1, 0)),
        ("5.4.6 loop detected", (1, 3)),
        ("4.4.7 expired in the queue", (0, 5)),
        ("5.3.3 unsupported critical function", (1, 18)),
        ("5.6.3 conversion", (2, 8)),
        ("5.6.1 content type", (1, 15)),
        ("5.6.9 anything else in content", (1, 12)),
        ("5.4.1 could not open an association", (0, None)),
        ("5.7.1 refused", (5, None)),
        ("no status at all", (0, None)),
    ],
)
def test_nondelivery_codes(detail: str, codes: tuple[int, int | None]) -> None:
    assert nondelivery_codes(detail) == codes


def subject(**fields: object) -> Envelope:
    base = Envelope(
        mts_id=f"{A};m1",
        originator=SMITH,
        recipients=[
            Recipient(address=JONES, originally_specified_number=1),
            Recipient(
                address="/C=GB/ADMD= /PRMD=B/S=Kay/",
                originally_specified_number=2,
                report_request=ReportRequest.ALWAYS,
            ),
        ],
        content_type=ContentType.P22,
        trace=[TraceElement(domain=A, arrival=T0)],
    )
    return msgspec.structs.replace(base, **fields)


def test_build_report_mixes_delivery_and_non_delivery() -> None:
    outcomes = [
        RecipientFate(
            rcpt_index=0, delivered=False, detail="5.1.1 no such O/R address", when=T0 + 1
        ),
        RecipientFate(rcpt_index=1, delivered=True, detail="2.0.0 delivered", when=T0 + 2),
    ]
    report = build_report(
        subject=subject(per_message_indicators=["content-return-request"]),
        content=b"\xa0\x00",
        outcomes=outcomes,
        received_at=T0,
        domain=B,
        now=T0 + 3,
    )
    env = report.envelope
    assert env.object_kind is ObjectKind.REPORT and env.is_report and env.originator == ""
    assert [r.address for r in env.recipients] == [SMITH]
    assert env.mts_id.startswith(f"{B};") and [t.domain for t in env.trace] == [B]
    content = decode_report_content(report.content)
    assert content.subject_id == f"{A};m1" and content.content_type == ContentType.P22
    assert content.returned_content == b"\xa0\x00"  # asked for, and something failed
    assert [r.describe() for r in content.recipients] == [
        "non-delivered: unable-to-transfer / unrecognised-OR-name",
        "delivered",
    ]
    assert content.recipients[1].delivered_at == T0 + 2
    assert content.recipients[1].report_request is ReportRequest.ALWAYS
    # Reports travel as MTS-APDU report [1] and come back as stored.
    wire = encode_stored(env, report.content)
    assert wire[0] == 0xA1
    again, again_content = decode_object(wire)
    # The arrival time is this MTA's bookkeeping, not part of the report envelope.
    assert again == msgspec.structs.replace(env, arrival=0.0)
    assert again_content == report.content


def test_content_is_returned_only_when_asked() -> None:
    outcome = [RecipientFate(rcpt_index=0, delivered=False, detail="5.1.1 x", when=T0)]
    report = build_report(
        subject=subject(), content=b"\xa0\x00", outcomes=outcome, received_at=T0, domain=B, now=T0
    )
    assert decode_report_content(report.content).returned_content is None


def test_probe_round_trip_with_content_length() -> None:
    probe = subject(object_kind=ObjectKind.PROBE, content_length=1234)
    wire = encode_stored(probe, b"")
    assert wire[0] == 0xA2
    # [0] in a probe is the content length (an INTEGER), not a deferred-delivery time.
    assert b"\x80\x02\x04\xd2" in wire
    again, content = decode_object(wire)
    assert again == probe and content == b""


def test_unmodelled_fields_survive_storage_and_relay() -> None:
    envelope = subject()
    element = decode(encode_envelope(envelope))
    bilateral = b"\xa1\x05\x30\x03\x02\x01\x07"
    future = b"\x9f\x40\x01\x00"
    patched = encode_tlv(SET, bytes(element.value) + bilateral + future)
    wire = encode_tlv(MESSAGE_APDU, patched + b"\x04\x02\xa0\x00")
    stored, content = decode_object(wire)
    assert stored.p1 is not None and set(stored.p1.unknown) == {bilateral, future}
    # Through the MTA database's own encoding, and out again.
    relayed = encode_stored(load(save(stored)), content)
    assert bilateral in relayed and future in relayed
    assert decode_object(relayed) == (stored, content)


def test_trace_is_added_once_per_domain() -> None:
    env = subject()
    assert add_trace(env, A, T0 + 1) is env  # A's element is already the last one
    at_b = add_trace(env, B, T0 + 1)
    assert [t.domain for t in at_b.trace] == [A, B]
    assert add_trace(at_b, B, T0 + 2) is at_b


def test_loop_detection() -> None:
    env = subject()
    assert not loop_detected(env, A)  # still in its first domain
    at_b = add_trace(env, B, T0)
    assert not loop_detected(at_b, B)
    assert loop_detected(at_b, A)  # it left A and came back
    assert not loop_detected(at_b, "/C=GB/ADMD= /PRMD=C/")


REPORT_APDU = encode_stored(
    build_report(
        subject=subject(),
        content=b"",
        outcomes=[RecipientFate(rcpt_index=0, delivered=False, detail="5.4.6 loop", when=T0)],
        received_at=T0,
        domain=B,
        now=T0,
    ).envelope,
    build_report(
        subject=subject(),
        content=b"",
        outcomes=[RecipientFate(rcpt_index=0, delivered=False, detail="5.4.6 loop", when=T0)],
        received_at=T0,
        domain=B,
        now=T0,
    ).content,
)
PROBE_APDU = encode_stored(subject(object_kind=ObjectKind.PROBE, content_length=9), b"")


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([REPORT_APDU, PROBE_APDU]),
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=4),
    st.integers(0, 3),
)
def test_fuzz_mutated_reports_and_probes(base: bytes, at: int, junk: bytes, mode: int) -> None:
    at %= len(base)
    data = [
        base[:at] + junk + base[at + len(junk) :],
        base[:at] + junk + base[at:],
        base[:at] + base[at + len(junk) :],
        base[:at],
    ][mode]
    with contextlib.suppress(BERError):
        envelope, content = decode_object(data)
        # Whatever decodes re-encodes and decodes to the same thing.
        assert decode_object(encode_stored(envelope, content)) == (envelope, content)
