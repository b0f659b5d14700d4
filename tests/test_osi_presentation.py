"""Tests of the X.226 PPDU codec and the presentation connection, with PP's captures."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcap import tcp_streams

from waypost.osi import presentation as p
from waypost.osi import presentation_ppdu as pp
from waypost.osi.session_spdu import Spdu, SpduType, decode_tsdu

PP = Path("/work/shared/vectors/pp")
PCAPS_88 = [PP / "msg88.pcap", PP / "self88n.pcap"]


def _tsdus(stream: bytes) -> list[bytes]:
    """TSDUs of one direction: TPKT + TP0 DT TPDUs, joined up to EOT."""
    out, pending, pos = [], b"", 0
    while pos < len(stream):
        n = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        tpdu = stream[pos + 4 : pos + n]
        pos += n
        if tpdu[1] == 0xF0:
            pending += tpdu[3:]
            if tpdu[2] & 0x80:
                out.append(pending)
                pending = b""
    return out


def session_user_data(path: Path) -> tuple[list[Spdu], list[Spdu]]:
    """SPDUs carrying user data, (client → server, server → client)."""
    (stream,) = tcp_streams(path)
    sides = []
    for raw in (stream.client_to_server, stream.server_to_client):
        spdus = [s for t in _tsdus(raw) for s in decode_tsdu(t)]
        sides.append([s for s in spdus if s.type not in (SpduType.GT, SpduType.PT)])
    return sides[0], sides[1]


def _ud(spdu: Spdu) -> bytes:
    data = spdu.user_data or spdu.extended_user_data or spdu.user_information
    assert data is not None
    return data


# ----------------------------------------------------------------------------- golden bytes


def test_cp_golden_bytes() -> None:
    cp = pp.ConnectPPDU(
        calling_selector=b"A",
        called_selector=b"BB",
        contexts=(pp.ContextDefinition(id=1, abstract_syntax="2.2.1.0.1"),),
        requirements=frozenset(),
        user_data=(pp.PDV(context_id=1, value=b"\x05\x00"),),
    )
    want = bytes.fromhex(
        "312f"
        "a003800101"
        "a228"
        "810141"
        "82024242"
        "a411300f020101060452010001300406025101"
        "880100"
        "6109"
        "3007020101a0020500"
    )
    assert pp.encode_connect(cp) == want
    assert pp.decode_connect(want) == cp


def test_cpa_cpr_abort_golden_bytes() -> None:
    cpa = pp.AcceptPPDU(
        responding_selector=b"",
        results=(
            pp.ContextResult(result=pp.Result.ACCEPTANCE, transfer_syntax=pp.BER),
            pp.ContextResult(
                result=pp.Result.PROVIDER_REJECTION,
                provider_reason=pp.RejectReason.ABSTRACT_SYNTAX_NOT_SUPPORTED,
            ),
        ),
    )
    want = bytes.fromhex("311ca003800101a2158300a5113007800100810251013006800102820101")
    assert pp.encode_accept(cpa) == want
    assert pp.decode_accept(want) == cpa
    cpr = pp.RefusePPDU(provider_reason=pp.ProviderReason.TEMPORARY_CONGESTION)
    assert pp.encode_refuse(cpr) == bytes.fromhex("30038a0101")
    assert pp.decode_refuse(bytes.fromhex("30038a0101")) == cpr
    arp = pp.ProviderAbortPPDU(reason=pp.AbortReason.UNEXPECTED_PPDU, event=3)
    assert pp.encode_abort(arp) == bytes.fromhex("3006800102810103")
    assert pp.decode_abort(bytes.fromhex("3006800102810103")) == arp
    aru = pp.UserAbortPPDU(
        contexts=((1, pp.BER),), user_data=(pp.PDV(context_id=1, value=b"\x05\x00"),)
    )
    raw = pp.encode_abort(aru)
    assert raw.startswith(bytes.fromhex("a0"))
    assert pp.decode_abort(raw) == aru


def test_user_data_encodings() -> None:
    assert pp.encode_user_data([pp.PDV(context_id=3, value=b"\x02\x01\x07")]) == bytes.fromhex(
        "610a3008020103a003020107"
    )
    octets = pp.decode_user_data(bytes.fromhex("6109300702010581020102"))
    assert octets == (pp.PDV(context_id=5, value=b"\x01\x02", encoding=pp.Encoding.OCTET_ALIGNED),)
    arb = pp.decode_user_data(bytes.fromhex("610f300d060251010201058204000102ff"))
    assert arb == (
        pp.PDV(
            context_id=5,
            value=b"\x01\x02\xff",
            encoding=pp.Encoding.ARBITRARY,
            transfer_syntax=pp.BER,
        ),
    )
    for pdvs in (octets, arb):
        assert pp.decode_user_data(pp.encode_user_data(pdvs)) == pdvs


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ("", "CP"),
        ("3105a003800100", "CP"),  # X.410 mode
        ("3108a003800101a201", "CP"),  # truncated
        ("3109a003800101a2020500", "CP.normal-mode[0]"),
        (
            "310da003800101a206a404300205 00",
            "CP.normal-mode.presentation-context-definition-list.context[0]",
        ),
    ],
)
def test_malformed_cp(data: str, path: str) -> None:
    with pytest.raises(pp.PresentationProtocolError) as info:
        pp.decode_connect(bytes.fromhex(data.replace(" ", "")))
    assert info.value.path.startswith(path)
    assert pp.decode_abort(info.value.abort) == pp.ProviderAbortPPDU(
        reason=pp.AbortReason.INVALID_PARAMETER_VALUE
    )


# ----------------------------------------------------------------------------- PP vectors


@pytest.mark.skipif(not PCAPS_88[0].exists(), reason="PP vectors not present")
@pytest.mark.parametrize("path", PCAPS_88, ids=lambda x: x.name)
def test_pp_vectors(path: Path) -> None:
    out, back = session_user_data(path)
    cn, ac = out[0], back[0]
    assert cn.type is SpduType.CN and ac.type is SpduType.AC
    cp = pp.decode_connect(_ud(cn))
    assert cp.calling_selector is None and cp.called_selector is None
    assert cp.contexts == p.P1_CONTEXTS  # ACSE 1, mta-rtse 3, mtse 5, all BER
    assert cp.requirements is None
    (aarq,) = cp.user_data
    assert aarq.context_id == 1 and aarq.value[0] == 0x60
    # PP uses indefinite lengths on the CP: we re-encode definite, equal after decode
    assert _ud(cn)[1] == 0x80
    assert pp.decode_connect(pp.encode_connect(cp)) == cp

    cpa = pp.decode_accept(_ud(ac))
    assert cpa.responding_selector is None
    assert (
        cpa.results == (pp.ContextResult(result=pp.Result.ACCEPTANCE, transfer_syntax=pp.BER),) * 3
    )
    (aare,) = cpa.user_data
    assert aare.context_id == 1 and aare.value[0] == 0x61
    assert pp.encode_accept(cpa) == _ud(ac)  # byte-identical

    fn, dn = out[-1], back[-1]
    assert (fn.type, dn.type) == (SpduType.FN, SpduType.DN)
    for spdu, first in ((fn, 0x62), (dn, 0x63)):
        (pdv,) = pp.decode_user_data(_ud(spdu))
        assert pdv.context_id == 1 and pdv.value[0] == first
        assert pp.encode_user_data([pdv]) == _ud(spdu)

    data = [s for s in out if s.type is SpduType.DT]
    if path.name.startswith("msg"):
        (dt,) = data
        (pdv,) = pp.decode_user_data(_ud(dt))
        assert pdv.context_id == 3  # id-as-mta-rtse: an RTTR octet string
        assert pdv.value[0] == 0x04
        assert pp.decode_user_data(pp.encode_user_data([pdv])) == (pdv,)
    else:
        assert not data

    # both connection objects follow PP's exchange
    responder = p.PresentationConnection()
    assert responder.receive_connect(_ud(cn)) == cp
    assert responder.send_accept(cpa.user_data) == _ud(ac)
    initiator = p.PresentationConnection()
    initiator.send_connect(cp.user_data)
    assert initiator.receive_accept(_ud(ac)) == cpa
    for conn in (initiator, responder):
        assert conn.contexts == {1: p.ACSE, 3: p.ID_AS_MTA_RTSE, 5: p.ID_AS_MTSE}
        assert conn.unwrap(_ud(fn))[0].context_id == 1
    for dt in data:
        assert responder.unwrap(_ud(dt))[0].context_id == responder.context_id(p.ID_AS_MTA_RTSE)


# ----------------------------------------------------------------------------- machine


def test_negotiation_rejects_unknown_syntaxes() -> None:
    initiator = p.PresentationConnection()
    contexts = (
        *p.P1_CONTEXTS,
        pp.ContextDefinition(id=7, abstract_syntax="1.2.3"),
        pp.ContextDefinition(id=9, abstract_syntax=p.ID_AS_MTSE, transfer_syntaxes=("2.1.2",)),
    )
    cp = initiator.send_connect([pp.PDV(context_id=1, value=b"\x05\x00")], contexts=contexts)
    responder = p.PresentationConnection()
    responder.receive_connect(cp)
    cpa = responder.send_accept([pp.PDV(context_id=1, value=b"\x05\x00")])
    got = initiator.receive_accept(cpa)
    assert [r.provider_reason for r in got.results[3:]] == [
        pp.RejectReason.ABSTRACT_SYNTAX_NOT_SUPPORTED,
        pp.RejectReason.TRANSFER_SYNTAXES_NOT_SUPPORTED,
    ]
    assert set(initiator.contexts) == set(responder.contexts) == {1, 3, 5}
    assert responder.unwrap(initiator.wrap({3: b"\x02\x01\x01"})) == (
        pp.PDV(context_id=3, value=b"\x02\x01\x01"),
    )
    with pytest.raises(p.LocalProtocolError):
        initiator.wrap({7: b"\x05\x00"})
    with pytest.raises(pp.PresentationProtocolError):
        responder.unwrap(pp.encode_user_data([pp.PDV(context_id=7, value=b"\x05\x00")]))
    assert responder.state is p.State.ERROR


def test_refuse_and_state_errors() -> None:
    responder = p.PresentationConnection()
    with pytest.raises(p.LocalProtocolError):
        responder.send_accept([])
    responder.receive_connect(p.PresentationConnection().send_connect([]))
    rf = responder.send_refuse(reason=pp.ProviderReason.LOCAL_LIMIT_EXCEEDED)
    assert pp.decode_refuse(rf).results[0].result is pp.Result.ACCEPTANCE
    assert responder.state is p.State.REFUSED
    with pytest.raises(p.LocalProtocolError):
        responder.wrap({1: b"\x05\x00"})


# ----------------------------------------------------------------------------- fuzz

DECODERS = [
    pp.decode_connect,
    pp.decode_accept,
    pp.decode_refuse,
    pp.decode_abort,
    pp.decode_user_data,
]
VALID = [
    pp.encode_connect(
        pp.ConnectPPDU(contexts=p.P1_CONTEXTS, user_data=(pp.PDV(context_id=1, value=b"\x05\x00"),))
    ),
    pp.encode_accept(
        pp.AcceptPPDU(
            results=(pp.ContextResult(result=pp.Result.ACCEPTANCE, transfer_syntax=pp.BER),)
        )
    ),
    pp.encode_refuse(pp.RefusePPDU(provider_reason=pp.ProviderReason.NOT_SPECIFIED)),
    pp.encode_abort(pp.UserAbortPPDU(contexts=((1, pp.BER),))),
    pp.encode_user_data([pp.PDV(context_id=3, value=b"\x04\x01x")]),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    for decoder in DECODERS:
        with contextlib.suppress(pp.PresentationProtocolError):
            decoder(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.integers(0, 10_000), st.integers(0, 255), st.booleans())
def test_fuzz_mutated(data: bytes, where: int, byte: int, cut: bool) -> None:
    i = where % len(data)
    mutated = data[:i] if cut else data[:i] + bytes([byte]) + data[i + 1 :]
    for decoder in DECODERS:
        with contextlib.suppress(pp.PresentationProtocolError):
            decoder(mutated)
