"""IPM headings: PP's real P22 messages summarised, built IPMs read back, garbage refused."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_p1 import _pp

from waypost.asn1 import (
    PRINTABLE_STRING,
    SET,
    constructed,
    context,
    decode,
    encode_int,
    encode_oid,
    encode_string,
    encode_tlv,
    sequence,
)
from waypost.x400.ipm import build_ipm, summarize_ipm
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu


@pytest.mark.parametrize(
    ("capture", "subject"),
    [
        ("msg88.pcap", "x400peer test IPM via PP x400out88 (1988)"),
        ("msgx410.pcap", "(1988-X410)"),
    ],
)
def test_pp_ipm_heading(capture: str, subject: str) -> None:
    _, _, message = _pp(capture)
    apdu = decode_mts_apdu(message)
    assert isinstance(apdu, P1Message)
    ipm = summarize_ipm(apdu.content)
    assert ipm.kind == "ipm"
    assert ipm.subject is not None and subject in ipm.subject
    assert ipm.originator == "/C=GB/ADMD=TEST/PRMD=PPTEST/S=Sender/"
    assert ipm.primary == ["/C=GB/ADMD=TEST/PRMD=PEERB/O=Peer/S=Test/"]
    assert ipm.body_parts == ["ia5-text"]
    assert ipm.text is not None and ipm.text.startswith("Hello from PP")


def test_built_ipm_reads_back() -> None:
    ipm = build_ipm(
        originator="/C=GB/ADMD= /PRMD=W/S=Smith/",
        recipients=["/C=GB/ADMD= /PRMD=W/S=Brown/", "/C=FR/ADMD=ATLAS/S=Dupont/"],
        subject="Réunion",
        text="first line\nsecond line",
        ipm_id="id-1@w",
    )
    summary = summarize_ipm(ipm)
    assert summary.subject == "Réunion"
    assert summary.primary == ["/C=GB/ADMD= /PRMD=W/S=Brown/", "/C=FR/ADMD=ATLAS/S=Dupont/"]
    assert summary.text == "first line\r\nsecond line"
    assert summary.this_ipm == "/C=GB/ADMD= /PRMD=W/S=Smith/ id-1.w"


@given(st.binary(max_size=300))
def test_garbage_raises_only_value_errors(data: bytes) -> None:
    with contextlib.suppress(ValueError):  # BERError, or AddressError for a bad O/R name
        summarize_ipm(data)


@given(st.data())
def test_mutated_pp_ipm_raises_only_value_errors(data: st.DataObject) -> None:
    _, _, message = _pp("msg88.pcap")
    apdu = decode_mts_apdu(message)
    assert isinstance(apdu, P1Message)
    content = bytearray(apdu.content)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(content) - 1))
        content[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ValueError):
        summarize_ipm(bytes(content))


A = "/C=GB/ADMD= /PRMD=A/S=Smith/"


def test_p772_heading_fields_are_summarised() -> None:
    # A P22 IPM with STANAG 4406 heading extensions [15] added, as a P772 MM carries them.
    built = decode(build_ipm(originator=A, recipients=[A], subject="Orders", text="x", ipm_id="1"))
    heading, body = built.child(0), built.child(1)
    arc = "1.3.26.0.4406.0.2."
    extensions = constructed(
        context(15, True),
        sequence(encode_oid(arc + "0"), encode_int(4)),  # primary precedence: flash
        sequence(encode_oid(arc + "1"), encode_int(1)),  # copy precedence: routine
        sequence(
            encode_oid(arc + "2"),
            sequence(
                encode_int(1, context(0)), encode_string(context(1), "OP-X", PRINTABLE_STRING)
            ),
        ),
        sequence(encode_oid(arc + "10"), encode_string(PRINTABLE_STRING, "REF-1")),
        sequence(encode_oid(arc + "99"), sequence()),  # unknown: shown as present
        sequence(encode_oid("1.2.3"), encode_int(5)),  # not P772: not shown
    )
    ipm = constructed(
        context(0, True), encode_tlv(SET, bytes(heading.value) + extensions), bytes(body.raw)
    )
    summary = summarize_ipm(ipm)
    assert summary.subject == "Orders"
    assert summary.military == [
        ("Precedence", "flash"),
        ("Copy precedence", "routine"),
        ("Message type", "operation OP-X"),
        ("Originator ref", "REF-1"),
        ("P772 field 99", "(present)"),
    ]


def test_p772_fields_are_read_by_the_stanag_4406_decoder() -> None:
    # Codress is a number, not a precedence; SICs are listed; a field that breaks its
    # type is named as unreadable rather than failing the summary.
    built = decode(build_ipm(originator=A, recipients=[A], subject="S", text="x", ipm_id="1"))
    heading, body = built.child(0), built.child(1)
    arc = "1.3.26.0.4406.0.2."
    sics = constructed(
        SET,
        constructed(
            context(0, True),
            encode_string(PRINTABLE_STRING, "ABC"),
            encode_string(PRINTABLE_STRING, "DEF"),
        ),
    )
    extensions = constructed(
        context(15, True),
        sequence(encode_oid(arc + "9"), encode_int(1)),
        sequence(encode_oid(arc + "6"), sics),
        sequence(encode_oid(arc + "14"), encode_int(3)),
    )
    ipm = constructed(
        context(0, True), encode_tlv(SET, bytes(heading.value) + extensions), bytes(body.raw)
    )
    assert summarize_ipm(ipm).military == [
        ("Codress", "1"),
        ("Distribution", "ABC, DEF"),
        ("Originator PLAD", "(unreadable)"),
    ]
