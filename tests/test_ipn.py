"""X.420 §8 IPNs: golden BER of a receipt and a non-receipt notification both ways, the IPN
as the [1] of an IPM content, errors that name the field, and generated round trips."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.address import ORAddress, format_slash
from waypost.x400.ipm import build_ipm, summarize_ipm
from waypost.x400.ipm_heading import IPMIdentifier, ORDescriptor
from waypost.x400.ipn import (
    ACKNOWLEDGMENT_MODES,
    DISCARD_REASONS,
    IPN,
    NON_RECEIPT_REASONS,
    IPNError,
    NonReceiptFields,
    ReceiptFields,
    decode_ipn,
    encode_ipn,
)
from waypost.x400.p1_names import encode_orname_text

SMITH = "/C=GB/ADMD= /PRMD=A/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
WHEN = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


def tlv(tag: int, content: bytes) -> bytes:
    assert len(content) < 0x80
    return bytes((tag, len(content))) + content


SUBJECT_BER = tlv(0x6B, encode_orname_text(SMITH) + b"\x13\x02m1")  # [APPLICATION 11]

RN = IPN(
    subject_ipm=IPMIdentifier(user=SMITH, local="m1"),
    ipn_originator=ORDescriptor(address=JONES),
    receipt=ReceiptFields(
        receipt_time=WHEN, acknowledgment_mode="automatic", supplementary_receipt_info="read"
    ),
)
RN_BER = tlv(
    0xA1,
    SUBJECT_BER
    + tlv(0xA1, encode_orname_text(JONES))  # ipn-originator [1] ORDescriptor
    + tlv(0xA0, tlv(0xA1, b"\x80\x0d250301123000Z" + b"\x81\x01\x01" + b"\x82\x04read")),
)


def test_golden_receipt_notification() -> None:
    assert encode_ipn(RN) == RN_BER
    assert decode_ipn(RN_BER) == RN


def test_manual_acknowledgment_is_the_default_and_is_not_written() -> None:
    manual = IPN(subject_ipm=RN.subject_ipm, receipt=ReceiptFields(receipt_time=WHEN))
    assert encode_ipn(manual) == tlv(
        0xA1, SUBJECT_BER + tlv(0xA0, tlv(0xA1, b"\x80\x0d250301123000Z"))
    )
    assert decode_ipn(encode_ipn(manual)).receipt == ReceiptFields(receipt_time=WHEN)


def test_golden_non_receipt_notification_returns_the_ipm() -> None:
    ipm = build_ipm(originator=SMITH, recipients=[JONES], subject="S", text="x", ipm_id="m1")
    returned = b"\x30" + ipm[1:]  # IPM ::= SEQUENCE { heading, body }, untagged
    nrn = IPN(
        subject_ipm=IPMIdentifier(user=None, local="m1"),
        ipm_intended_recipient=ORDescriptor(address=JONES, free_form_name="Jo"),
        conversion_eits=("ia5-text",),
        non_receipt=NonReceiptFields(
            reason="ipm-discarded", discard_reason="ipm-expired", returned_ipm=returned
        ),
    )
    data = encode_ipn(nrn)
    assert data.startswith(b"\xa1")
    assert (
        b"\xa2"
        + bytes([len(encode_orname_text(JONES)) + 4])
        + encode_orname_text(JONES)
        + b"\x80\x02Jo"
        in data
    )
    assert b"\x80\x01\x00\x81\x01\x00\xa3" in data  # reason discarded, expired, returned IPM [3]
    assert decode_ipn(data) == nrn
    # An IPN is what an IPM content summary says it is.
    assert summarize_ipm(data).kind == "ipn"


def test_auto_forward_comment() -> None:
    nrn = IPN(
        subject_ipm=IPMIdentifier(user=None, local="m1"),
        non_receipt=NonReceiptFields(reason="ipm-auto-forwarded", auto_forward_comment="on leave"),
    )
    assert decode_ipn(encode_ipn(nrn)) == nrn


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (tlv(0xA1, SUBJECT_BER), "without its notification choice"),
        (tlv(0xA1, tlv(0xA0, tlv(0xA1, b"\x80\x0d250301123000Z"))), "without subject-ipm"),
        (
            tlv(0xA1, SUBJECT_BER + tlv(0xA0, tlv(0xA0, b"\x80\x01\x07"))),
            r"7 is not one of.*non-receipt-reason",
        ),
        (tlv(0xA1, SUBJECT_BER + tlv(0xA0, tlv(0xA1, b"\x81\x01\x01"))), "without receipt-time"),
        (tlv(0xA0, SUBJECT_BER), r"expected \[1\]\*"),
    ],
)
def test_broken_ipns_are_named(data: bytes, match: str) -> None:
    with pytest.raises(IPNError, match=match):
        decode_ipn(data)


def test_the_model_refuses_what_x420_does_not_allow() -> None:
    with pytest.raises(IPNError, match="exactly one"):
        IPN(subject_ipm=RN.subject_ipm)
    with pytest.raises(IPNError, match="suppl-receipt-info: '@'"):
        ReceiptFields(receipt_time=WHEN, supplementary_receipt_info="a@b")
    with pytest.raises(IPNError, match="discard-reason"):
        NonReceiptFields(reason="ipm-discarded", discard_reason="lost")


_NAME = st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True)
_ADDRESS = st.builds(
    lambda p, s: format_slash(ORAddress(country="GB", prmd=p, surname=s)), _NAME, _NAME
)
_DESCRIPTOR = st.builds(ORDescriptor, address=_ADDRESS, free_form_name=st.none() | _NAME)
_TEXT = st.from_regex(r"[A-Za-z0-9 '()+,\-./:=?]{1,40}", fullmatch=True)
_WHEN = st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2049, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)


@st.composite
def generated_ipns(draw: st.DrawFn) -> IPN:
    kind = draw(st.sampled_from(["receipt", "non_receipt", "other_notification"]))
    fields: dict[str, object] = {}
    if kind == "receipt":
        fields["receipt"] = ReceiptFields(
            receipt_time=draw(_WHEN),
            acknowledgment_mode=draw(st.sampled_from(ACKNOWLEDGMENT_MODES)),
            supplementary_receipt_info=draw(st.none() | _TEXT),
        )
    elif kind == "non_receipt":
        fields["non_receipt"] = NonReceiptFields(
            reason=draw(st.sampled_from(NON_RECEIPT_REASONS)),
            discard_reason=draw(st.none() | st.sampled_from(DISCARD_REASONS)),
            auto_forward_comment=draw(st.none() | _TEXT),
            returned_ipm=draw(st.none() | st.just(b"\x30\x04\x31\x00\x30\x00")),
            extensions=draw(st.none() | st.just(b"\x31\x00")),
        )
    else:
        fields["other_notification"] = b"\x31\x03\x80\x01\x00"
    return IPN(
        subject_ipm=IPMIdentifier(user=draw(st.none() | _ADDRESS), local=draw(_TEXT)),
        ipn_originator=draw(st.none() | _DESCRIPTOR),
        ipm_intended_recipient=draw(st.none() | _DESCRIPTOR),
        conversion_eits=draw(
            st.none() | st.sampled_from([("ia5-text",), ("ia5-text", "g3-facsimile")])
        ),
        notification_extensions=draw(st.none() | st.just(b"\x31\x03\x02\x01\x05")),
        **fields,  # type: ignore[arg-type]
    )


@given(generated_ipns())
def test_ipn_round_trips_through_ber(ipn: IPN) -> None:
    data = encode_ipn(ipn)
    assert decode_ipn(data) == ipn
    assert encode_ipn(decode_ipn(data)) == data


@given(st.binary(max_size=120))
def test_garbage_raises_only_ipn_errors(data: bytes) -> None:
    with contextlib.suppress(IPNError):
        decode_ipn(b"\xa1" + bytes([len(data)]) + data if len(data) < 128 else data)
