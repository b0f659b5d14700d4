"""Tests of the X.227 ACSE APDU codec, with the APDUs inside PP's presentation PDUs."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_osi_presentation import PCAPS_88, _ud, session_user_data

from waypost.osi import acse as a
from waypost.osi import presentation_ppdu as pp

MTS_TRANSFER = "2.6.0.1.6"


def test_golden_bytes() -> None:
    aarq = a.AARQ(
        application_context=MTS_TRANSFER,
        called_ap_title="1.2.3",
        called_ae_qualifier=7,
        calling_ap_title=b"\x30\x00",
        user_information=(a.External(context_id=3, value=b"\x05\x00"),),
    )
    want = bytes.fromhex(
        "6022a106060456000106a20406022a03a303020107a6023000be092807020103a0020500".replace(" ", "")
    )
    assert a.encode_apdu(aarq) == want
    assert a.decode_apdu(want) == aarq
    aare = a.AARE(
        application_context=MTS_TRANSFER,
        result=a.AssociateResult.REJECTED_PERMANENT,
        diagnostic_source=a.DiagnosticSource.SERVICE_PROVIDER,
        diagnostic=2,
    )
    want = bytes.fromhex("6114a106060456000106a203020101a305a203020102")
    assert a.encode_apdu(aare) == want
    assert a.decode_apdu(want) == aare
    cases: list[tuple[a.Apdu, str]] = [
        (a.RLRQ(reason=0), "6203800100"),
        (a.RLRE(), "6300"),
        (a.ABRT(source=1), "6403800101"),
    ]
    for apdu, raw in cases:
        assert a.encode_apdu(apdu) == bytes.fromhex(raw)
        assert a.decode_apdu(bytes.fromhex(raw)) == apdu


def test_external_forms() -> None:
    ext = a.External(direct_reference="2.1.1", value=b"hi", octet_aligned=True)
    rlrq = a.RLRQ(user_information=(ext,))
    assert a.decode_apdu(a.encode_apdu(rlrq)) == rlrq
    with pytest.raises(ValueError):
        a.External(value=b"\x05\x00")


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ("", "ACSE"),
        ("6500", "ACSE"),
        ("6000", "AARQ"),
        ("6005a1030201 01", "AARQ.application-context-name[0]"),
        ("6108a106060456000106", "AARE"),
        ("6006be0428020500", "AARQ.user-information.external[0]"),
        ("62038a0100", "RLRQ[0]"),
    ],
)
def test_malformed(data: str, path: str) -> None:
    with pytest.raises(a.AcseProtocolError) as info:
        a.decode_apdu(bytes.fromhex(data.replace(" ", "")))
    assert info.value.path.startswith(path)
    assert a.decode_apdu(info.value.abort) == a.ABRT(source=1)


@pytest.mark.skipif(not PCAPS_88[0].exists(), reason="PP vectors not present")
@pytest.mark.parametrize("path", PCAPS_88, ids=lambda x: x.name)
def test_pp_vectors(path: Path) -> None:
    out, back = session_user_data(path)
    (aarq_pdv,) = pp.decode_connect(_ud(out[0])).user_data
    aarq = a.decode_apdu(aarq_pdv.value)
    assert isinstance(aarq, a.AARQ)
    assert aarq.application_context == MTS_TRANSFER
    assert aarq.called_ap_title is None and aarq.calling_ap_title is None
    assert aarq.called_ae_qualifier is None and aarq.calling_ae_qualifier is None
    assert aarq.protocol_version is None
    (ext,) = aarq.user_information
    # PP sends both references: direct-reference BER and the id-as-mta-rtse context
    assert ext.direct_reference == pp.BER and ext.context_id == 3
    assert ext.value[0] == 0xB0 and not ext.octet_aligned  # the RTORQ
    assert a.encode_apdu(aarq) == aarq_pdv.value

    (aare_pdv,) = pp.decode_accept(_ud(back[0])).user_data
    aare = a.decode_apdu(aare_pdv.value)
    assert isinstance(aare, a.AARE)
    assert aare.application_context == MTS_TRANSFER
    assert aare.result is a.AssociateResult.ACCEPTED
    assert (aare.diagnostic_source, aare.diagnostic) == (a.DiagnosticSource.SERVICE_USER, 0)
    assert aare.responding_ap_title is None
    (ext,) = aare.user_information
    assert ext.context_id == 3 and ext.value[0] == 0xB1  # the RTOAC
    assert a.encode_apdu(aare) == aare_pdv.value

    (rlrq_pdv,) = pp.decode_user_data(_ud(out[-1]))
    (rlre_pdv,) = pp.decode_user_data(_ud(back[-1]))
    assert a.decode_apdu(rlrq_pdv.value) == a.RLRQ(reason=0)
    assert a.decode_apdu(rlre_pdv.value) == a.RLRE(reason=0)


VALID = [
    a.encode_apdu(
        a.AARQ(
            application_context=MTS_TRANSFER,
            called_ap_title="1.2.3",
            calling_ae_qualifier=b"\x31\x00",
            user_information=(
                a.External(context_id=3, direct_reference="2.1.1", value=b"\x05\x00"),
            ),
        )
    ),
    a.encode_apdu(a.AARE(application_context=MTS_TRANSFER, responding_ae_qualifier=3)),
    a.encode_apdu(a.RLRQ(reason=1)),
    a.encode_apdu(a.ABRT(source=0)),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    with contextlib.suppress(a.AcseProtocolError):
        a.decode_apdu(data)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.integers(0, 10_000), st.integers(0, 255), st.booleans())
def test_fuzz_mutated(data: bytes, where: int, byte: int, cut: bool) -> None:
    i = where % len(data)
    mutated = data[:i] if cut else data[:i] + bytes([byte]) + data[i + 1 :]
    with contextlib.suppress(a.AcseProtocolError):
        a.decode_apdu(mutated)
