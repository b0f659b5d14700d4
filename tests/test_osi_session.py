"""Tests of the X.225 session SPDU codec and the sans-I/O session machine."""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.osi import session as s
from waypost.osi.session_spdu import (
    Param,
    SessionProtocolError,
    Spdu,
    SpduType,
    decode_tsdu,
    encode_tsdu,
)

PP = Path("/work/shared/vectors/pp")


# ----------------------------------------------------------------------------- factory


class SpduFactory:
    """Builds wire bytes by hand, independent of the encoder (h2's FrameFactory)."""

    @staticmethod
    def length(n: int, long: bool = False) -> bytes:
        return b"\xff" + n.to_bytes(2, "big") if long or n >= 255 else bytes([n])

    def param(self, pi: int, value: bytes, long: bool = False) -> bytes:
        return bytes([pi]) + self.length(len(value), long) + value

    def spdu(self, si: int, *params: bytes, long: bool = False) -> bytes:
        body = b"".join(params)
        return bytes([si]) + self.length(len(body), long) + body


F = SpduFactory()


def test_data_spdu_exact_bytes() -> None:
    tsdu = encode_tsdu(Spdu(type=SpduType.GT), Spdu(type=SpduType.DT, user_information=b"hi"))
    assert tsdu == b"\x01\x00\x01\x00hi"
    gt, dt = decode_tsdu(tsdu)
    assert gt.type is SpduType.GT and dt.type is SpduType.DT and dt.user_information == b"hi"


CASES: list[tuple[bytes, Spdu | tuple[Spdu, Spdu]]] = [
    (
        F.spdu(
            0x0D,
            F.param(0x01, F.param(0x0A, b"ref") + F.param(0x0B, b"common")),
            F.param(
                0x05,
                F.param(0x13, b"\x00")
                + F.param(0x15, b"\x07\xf9\x00\x80")
                + F.param(0x16, b"\x03")
                + F.param(0x17, b"12")
                + F.param(0x1A, b"\x00"),
            ),
            F.param(0x14, b"\x02\x49"),
            F.param(0x33, b"A"),
            F.param(0x34, b"BB"),
            F.param(0x3C, b"\x01"),
            F.param(0xC2, b"x" * 600),
        ),
        Spdu(
            type=SpduType.CN,
            calling_ss_user_ref=b"ref",
            common_ref=b"common",
            protocol_options=0,
            tsdu_max_size=(2041, 128),
            version=3,
            initial_serial=12,
            token_setting=0,
            requirements=0x249,
            calling_ssel=b"A",
            called_ssel=b"BB",
            data_overflow=1,
            extended_user_data=b"x" * 600,
        ),
    ),
    (
        F.spdu(
            0x0E,
            F.param(0x01, F.param(0x09, b"r")),
            F.param(0x05, F.param(0x16, b"\x02")),
            F.param(0x10, b"\x15"),
            F.param(0x14, b"\x02\x49"),
            F.param(0x34, b""),
            F.param(0xC1, b"u"),
        ),
        Spdu(
            type=SpduType.AC,
            called_ss_user_ref=b"r",
            version=2,
            token_item=0x15,
            requirements=0x249,
            called_ssel=b"",
            user_data=b"u",
        ),
    ),
    (
        F.spdu(0x0C, F.param(0x11, b"\x01"), F.param(0x16, b"\x02"), F.param(0x32, b"\x02no")),
        Spdu(type=SpduType.RF, transport_disconnect=1, version=2, reason=b"\x02no"),
    ),
    (
        F.spdu(0x09, F.param(0x11, b"\x01"), F.param(0xC1, b"bye")),
        Spdu(type=SpduType.FN, transport_disconnect=1, user_data=b"bye"),
    ),
    (F.spdu(0x0A), Spdu(type=SpduType.DN)),
    (F.spdu(0x08, F.param(0xC1, b"n")), Spdu(type=SpduType.NF, user_data=b"n")),
    (
        F.spdu(0x19, F.param(0x11, b"\x05"), F.param(0x31, b"\x01\x02")),
        Spdu(type=SpduType.AB, transport_disconnect=5, reflect=b"\x01\x02"),
    ),
    (F.spdu(0x1A), Spdu(type=SpduType.AA)),
    (F.spdu(0x01, F.param(0x10, b"\x01")), Spdu(type=SpduType.GT, token_item=1)),
    (
        F.spdu(0x02, F.param(0x10, b"\x01"), F.param(0xC1, b"p")),
        Spdu(type=SpduType.PT, token_item=1, user_data=b"p"),
    ),
    (
        F.spdu(0x01) + F.spdu(0x2D, F.param(0x29, b"\x02\x01\x01")),
        (Spdu(type=SpduType.GT), Spdu(type=SpduType.AS, activity_id=b"\x02\x01\x01")),
    ),
    (
        F.spdu(0x01) + F.spdu(0x29, F.param(0x2A, b"1")),
        (Spdu(type=SpduType.GT), Spdu(type=SpduType.AE, serial=1)),
    ),
    (
        F.spdu(0x02) + F.spdu(0x2A, F.param(0x2A, b"1")),
        (Spdu(type=SpduType.PT), Spdu(type=SpduType.AEA, serial=1)),
    ),
    (
        F.spdu(0x01) + F.spdu(0x31, F.param(0x0F, b"\x01"), F.param(0x2A, b"999999")),
        (Spdu(type=SpduType.GT), Spdu(type=SpduType.MIP, sync_type=1, serial=999999)),
    ),
    (
        F.spdu(0x02) + F.spdu(0x32, F.param(0x2A, b"7"), F.param(0xC1, b"m")),
        (Spdu(type=SpduType.PT), Spdu(type=SpduType.MIA, serial=7, user_data=b"m")),
    ),
    (
        F.spdu(0x01)
        + F.spdu(
            0x1D,
            F.param(0x21, F.param(0x0A, b"x") + F.param(0x29, b"o") + F.param(0x77, b"?")),
            F.param(0x2A, b"12"),
            F.param(0x29, b"a"),
            F.param(0x78, b"!"),
            F.param(0xC1, b"u"),
        ),
        (
            Spdu(type=SpduType.GT),
            Spdu(
                type=SpduType.AR,
                calling_ss_user_ref=b"x",
                old_activity_id=b"o",
                serial=12,
                activity_id=b"a",
                user_data=b"u",
                unknown=(Param(pi=0x77, value=b"?", group=0x21), Param(pi=0x78, value=b"!")),
            ),
        ),
    ),
    (  # an AR on the same connection may leave the linking PGI out at the codec level
        F.spdu(0x01) + F.spdu(0x1D, F.param(0x2A, b"0"), F.param(0x29, b"a")),
        (Spdu(type=SpduType.GT), Spdu(type=SpduType.AR, serial=0, activity_id=b"a")),
    ),
    (
        F.spdu(0x01) + F.spdu(0x19, F.param(0x32, b"\x03")),
        (Spdu(type=SpduType.GT), Spdu(type=SpduType.AI, reason=b"\x03")),
    ),
    (F.spdu(0x02) + F.spdu(0x1A), (Spdu(type=SpduType.PT), Spdu(type=SpduType.AIA))),
    (
        F.spdu(0x01) + F.spdu(0x39, F.param(0x32, b"\x01")),
        (Spdu(type=SpduType.GT), Spdu(type=SpduType.AD, reason=b"\x01")),
    ),
    (F.spdu(0x02) + F.spdu(0x3A), (Spdu(type=SpduType.PT), Spdu(type=SpduType.ADA))),
    (
        F.spdu(0x02) + F.spdu(0x00, F.param(0xC1, b"e")),
        (Spdu(type=SpduType.PT), Spdu(type=SpduType.ER, user_data=b"e")),
    ),
    (
        F.spdu(0x01) + F.spdu(0x01) + b"y" * 70000,
        (Spdu(type=SpduType.GT), Spdu(type=SpduType.DT, user_information=b"y" * 70000)),
    ),
    (
        F.spdu(0x09, F.param(0x11, b"\x01"), F.param(0xC1, b"z" * 300)),
        Spdu(type=SpduType.FN, transport_disconnect=1, user_data=b"z" * 300),
    ),
    (F.spdu(0x0F, F.param(0xC1, b"o")), Spdu(type=SpduType.CDO, user_data=b"o")),
    (F.spdu(0x10, F.param(0x16, b"\x02")), Spdu(type=SpduType.OA, version=2)),
    (F.spdu(0x15), Spdu(type=SpduType.GTC)),
    (F.spdu(0x16), Spdu(type=SpduType.GTA)),
    (
        F.spdu(0x07, F.param(0x18, b"\x01")),
        Spdu(type=SpduType.PR, unknown=(Param(pi=0x18, value=b"\x01"),)),
    ),
]


@pytest.mark.parametrize(("wire", "expected"), CASES, ids=lambda x: getattr(x, "hex", str)()[:12])
def test_round_trip(wire: bytes, expected: Spdu | tuple[Spdu, Spdu]) -> None:
    spdus = expected if isinstance(expected, tuple) else (expected,)
    assert decode_tsdu(wire) == list(spdus)
    assert encode_tsdu(*spdus) == wire


def test_ff_length_forms() -> None:
    # a non-canonical FF form decodes; a long parameter re-encodes in FF form
    wire = F.spdu(0x09, F.param(0xC1, b"ab", long=True), long=True)
    assert decode_tsdu(wire) == [Spdu(type=SpduType.FN, user_data=b"ab")]
    big = encode_tsdu(Spdu(type=SpduType.FN, user_data=b"q" * 255))
    assert big[:6] == b"\x09\xff\x01\x03\xc1\xff" and big[6:8] == b"\x00\xff"


def test_unknown_params_in_groups_are_kept() -> None:
    wire = F.spdu(0x0D, F.param(0x01, F.param(0x0C, b"a") + F.param(0x77, b"?")))
    (cn,) = decode_tsdu(wire)
    assert cn.additional_ref == b"a"
    assert cn.unknown == (Param(pi=0x77, value=b"?", group=1),)
    assert encode_tsdu(cn) == wire


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x0d",
        b"\x0d\x05\x14",
        b"\x0d\xff\x00",
        F.spdu(0x0D, F.param(0x14, b"\x02")),  # requirements must be 2 octets
        F.spdu(0x09, F.param(0x11, b"\x01\x01")),
        F.spdu(0x29, F.param(0x2A, b"1")),  # category 2 without GT/PT
        F.spdu(0x01) + F.spdu(0x29, F.param(0x2A, b"x")),  # serial not digits
        F.spdu(0x01) + F.spdu(0x29, F.param(0x2A, b"1234567")),
        F.spdu(0x0A) + F.spdu(0x0A),  # octets after a category-1 SPDU
        F.spdu(0x01) + F.spdu(0x2D) + F.spdu(0x2D),  # extended concatenation
        F.spdu(0x09, F.param(0x11, b"\x01"), F.param(0x11, b"\x01")),  # repeated
        F.spdu(0x09, F.param(0xC1, b""), F.param(0x11, b"\x01")),  # after user data
        F.spdu(0x0D, F.param(0x33, b"s" * 17)),
        F.spdu(0x0D, F.param(0xC2, b"e" * 10241)),
        F.spdu(0x0D, F.param(0xC1, b""), F.param(0xC2, b"")),
        F.spdu(0x0D, F.param(0x01, b""), F.param(0x01, b"")),
        F.spdu(0x77),
        # ACTIVITY RESUME
        F.spdu(0x01) + F.spdu(0x1D, F.param(0x29, b"a")),  # no serial number
        F.spdu(0x01) + F.spdu(0x1D, F.param(0x2A, b"1")),  # no new activity identifier
        F.spdu(0x01) + F.spdu(0x1D, F.param(0x21, F.param(0x29, b"o")), F.param(0x2A, b"1")),
        F.spdu(0x01) + F.spdu(0x1D, F.param(0x2A, b"1"), F.param(0x2A, b"2"), F.param(0x29, b"a")),
        F.spdu(0x01)
        + F.spdu(
            0x1D,
            F.param(0x21, F.param(0x29, b"o") + F.param(0x29, b"p")),  # old id repeated
            F.param(0x2A, b"1"),
            F.param(0x29, b"a"),
        ),
        F.spdu(0x01)
        + F.spdu(
            0x1D,
            F.param(0x21, F.param(0x29, b"o")),
            F.param(0x21, F.param(0x0B, b"c")),  # linking PGI repeated
            F.param(0x2A, b"1"),
            F.param(0x29, b"a"),
        ),
        F.spdu(0x01)
        + F.spdu(0x1D, F.param(0x21, b"\x29\x05o"), F.param(0x2A, b"1"), F.param(0x29, b"a")),
        F.spdu(0x01)
        + F.spdu(0x2D, F.param(0x21, F.param(0x29, b"o")), F.param(0x29, b"a")),  # not AR
        F.spdu(0x0D, F.param(0x21, F.param(0x29, b"o"))),  # linking PGI in CN
        F.spdu(0x19, F.param(0x21, b"")),  # … in AB
        F.spdu(0x0D, F.param(0x01, F.param(0x0B, b"c" * 65))),  # reference over 64 octets
        F.spdu(0x0D, F.param(0x01, F.param(0x0C, b"a" * 5))),  # additional over 4 octets
        F.spdu(0x01)
        + F.spdu(
            0x1D, F.param(0x21, F.param(0x09, b"c" * 65)), F.param(0x2A, b"1"), F.param(0x29, b"a")
        ),
    ],
)
def test_malformed_refused(wire: bytes) -> None:
    with pytest.raises(SessionProtocolError):
        decode_tsdu(wire)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_fuzz_decoder_raises_only_protocol_error(data: bytes) -> None:
    try:
        spdus = decode_tsdu(data)
    except SessionProtocolError:
        return
    assert decode_tsdu(encode_tsdu(*spdus)) == spdus


@given(st.sampled_from([c for _w, c in CASES]), st.binary(max_size=400))
def test_fuzz_mutated_vectors(case: Spdu | tuple[Spdu, Spdu], junk: bytes) -> None:
    spdus = case if isinstance(case, tuple) else (case,)
    wire = encode_tsdu(*spdus)
    for data in (wire[: len(junk) % (len(wire) + 1)], wire + junk, junk + wire):
        with contextlib.suppress(SessionProtocolError):
            decode_tsdu(data)


_opt_bytes = st.none() | st.binary(max_size=20)
_opt_u8 = st.none() | st.integers(0, 255)
_opt_serial = st.none() | st.integers(0, 999_999)


@given(
    st.sampled_from([t for t in SpduType if t.category == 1 and t not in (SpduType.CN,)]),
    _opt_bytes,
    _opt_u8,
    _opt_u8,
    _opt_serial,
    st.none() | st.binary(max_size=16),
    st.none() | st.binary(max_size=600),
)
def test_generated_round_trip(
    kind: SpduType,
    ref: bytes | None,
    td: int | None,
    token: int | None,
    serial: int | None,
    ssel: bytes | None,
    ud: bytes | None,
) -> None:
    spdu = Spdu(
        type=kind,
        calling_ss_user_ref=ref,
        transport_disconnect=td,
        token_item=token,
        serial=serial,
        calling_ssel=ssel,
        user_data=ud,
    )
    assert decode_tsdu(encode_tsdu(spdu)) == [spdu]


@given(_opt_bytes, _opt_u8, _opt_serial, st.none() | st.integers(0, 0xFFFF), _opt_bytes)
def test_generated_cn_round_trip(
    ref: bytes | None, opt: int | None, isn: int | None, req: int | None, ud: bytes | None
) -> None:
    cn = Spdu(
        type=SpduType.CN,
        common_ref=ref,
        protocol_options=opt,
        initial_serial=isn,
        requirements=req,
        user_data=ud,
    )
    assert decode_tsdu(encode_tsdu(cn)) == [cn]


# ----------------------------------------------------------------------------- PP vectors


def _pcapng_packets(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    links: list[int] = []
    off, e = 0, "<"
    while off < len(data):
        btype = struct.unpack_from(e + "I", data, off)[0]
        if btype == 0x0A0D0D0A:
            e = "<" if data[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        blen = struct.unpack_from(e + "I", data, off + 4)[0]
        body = data[off + 8 : off + blen - 4]
        if btype == 1:
            links.append(struct.unpack_from(e + "H", body)[0])
        elif btype == 6:
            iface, _hi, _lo, caplen = struct.unpack_from(e + "IIII", body)
            out.append((links[iface], body[20 : 20 + caplen]))
        off += blen
    return out


def _session_tsdus(path: Path) -> dict[int, list[bytes]]:
    """TSDUs per destination port, from the TPKT/TP0 DT TPDUs of one TCP connection."""
    segs: dict[int, dict[int, bytes]] = {}
    for link, pkt in _pcapng_packets(path.read_bytes()):
        ip = pkt[{1: 14, 0: 4, 113: 16}[link] :]
        tcp = ip[(ip[0] & 15) * 4 :]
        _sport, dport, seq = struct.unpack_from(">HHI", tcp)
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if payload:
            segs.setdefault(dport, {})[seq] = payload
    result: dict[int, list[bytes]] = {}
    for dport, by_seq in segs.items():
        stream = b"".join(by_seq[k] for k in sorted(by_seq))
        tsdus, pending, pos = [], b"", 0
        while pos < len(stream):
            assert stream[pos : pos + 2] == b"\x03\x00"
            n = int.from_bytes(stream[pos + 2 : pos + 4], "big")
            tpdu = stream[pos + 4 : pos + n]
            pos += n
            if tpdu[1] == 0xF0:  # DT: 02 F0 EOT
                pending += tpdu[3:]
                if tpdu[2] & 0x80:
                    tsdus.append(pending)
                    pending = b""
        result[dport] = tsdus
    return result


PCAPS = sorted(PP.glob("*.pcap"))


@pytest.mark.skipif(not PCAPS, reason="PP vectors not present")
@pytest.mark.parametrize("path", PCAPS, ids=lambda p: p.name)
def test_pp_vectors(path: Path) -> None:
    by_port = _session_tsdus(path)
    server_port = 10102 if "msg" in path.name else 20001
    server_raw = by_port.pop(server_port)
    (client_raw,) = by_port.values()
    to_server = [decode_tsdu(t) for t in server_raw]
    to_client = [decode_tsdu(t) for t in client_raw]
    for raw, spdus in zip(server_raw + client_raw, to_server + to_client, strict=True):
        assert encode_tsdu(*spdus) == raw  # PP's encoding choices are ours: byte-identical

    (cn,) = to_server[0]
    assert cn.type is SpduType.CN
    assert cn.version == 3  # offers versions 1 and 2
    assert cn.requirements == s.RTSE_REQUIREMENTS
    assert cn.protocol_options == 0 and cn.token_setting == 0
    assert cn.tsdu_max_size == (2041, 2041)
    assert cn.calling_ssel is None and cn.called_ssel is None
    assert cn.user_data is not None and len(cn.user_data) in (134, 46)
    (ac,) = to_client[0]
    assert ac.type is SpduType.AC and ac.version == 2
    assert ac.requirements == s.RTSE_REQUIREMENTS and ac.token_setting == 0
    # PP's 1988 responder sends an empty responding session selector; X.410 mode none
    assert ac.called_ssel == (b"" if "88" in path.name else None)
    assert ac.user_data is not None

    kinds_out = [tuple(x.type for x in t) for t in to_server]
    kinds_in = [tuple(x.type for x in t) for t in to_client]
    if path.name.startswith("msg"):
        assert kinds_out == [
            (SpduType.CN,),
            (SpduType.GT, SpduType.AS),
            (SpduType.GT, SpduType.DT),
            (SpduType.GT, SpduType.AE),
            (SpduType.FN,),
        ]
        assert kinds_in == [(SpduType.AC,), (SpduType.PT, SpduType.AEA), (SpduType.DN,)]
        assert to_server[1][1].activity_id == b"\x02\x01\x01"
        assert len(to_server[2][1].user_information) in (605, 585)
        assert to_server[3][1].serial == 1 and to_client[1][1].serial == 1
    else:
        assert kinds_out == [(SpduType.CN,), (SpduType.FN,)]
        assert kinds_in == [(SpduType.AC,), (SpduType.DN,)]
    assert to_server[-1][0].transport_disconnect == 1

    # the machine follows PP's exchange from both sides
    responder = s.SessionConnection(s.Role.RESPONDER)
    for raw in server_raw:
        responder.receive_tsdu(raw)
    got = []
    while (ev := responder.next_event()) is not s.NEED_DATA:
        got.append(type(ev))
        if isinstance(ev, s.ConnectRequest):
            responder.send(s.ConnectAccept(user_data=b"x"))
        elif isinstance(ev, s.ActivityEnd):
            responder.send(s.ActivityEndAck())
        elif isinstance(ev, s.Finish):
            responder.send(s.Disconnect())
    assert got[0] is s.ConnectRequest and got[-1] is s.Finish
    assert responder.state is s.State.CLOSED


# ----------------------------------------------------------------------------- machine


def _pump(src: s.SessionConnection, dst: s.SessionConnection, event: s.Event) -> list[s.Event]:
    for tsdu in src.send(event):
        dst.receive_tsdu(tsdu)
    out: list[s.Event] = []
    while (ev := dst.next_event()) is not s.NEED_DATA:
        assert not isinstance(ev, s.NeedData)
        out.append(ev)
    return out


def test_two_sided_exchange() -> None:
    i = s.SessionConnection(s.Role.INITIATOR)
    r = s.SessionConnection(s.Role.RESPONDER)
    (cr,) = _pump(i, r, s.ConnectRequest(called_ssel=b"S", user_data=b"bind"))
    assert cr == s.ConnectRequest(called_ssel=b"S", user_data=b"bind")
    assert _pump(r, i, s.ConnectAccept(user_data=b"ok")) == [
        s.ConnectAccept(responding_ssel=None, user_data=b"ok")
    ]
    assert i.state is r.state is s.State.CONNECTED
    assert i.tokens == s.TOKEN_DATA | s.TOKEN_MINOR | s.TOKEN_MAJOR and r.tokens == 0
    assert i.send(s.Data(payload=b"d")) == [b"\x01\x00\x01\x00d"]
    assert _pump(i, r, s.ActivityStart(activity_id=b"\x02\x01\x01")) == [
        s.ActivityStart(activity_id=b"\x02\x01\x01")
    ]
    assert _pump(i, r, s.Data(payload=b"apdu")) == [s.Data(payload=b"apdu")]
    assert _pump(i, r, s.MinorSync()) == [s.MinorSync(serial=1)]
    assert _pump(r, i, s.MinorSyncAck(serial=1)) == [s.MinorSyncAck(serial=1)]
    assert _pump(i, r, s.ActivityEnd()) == [s.ActivityEnd(serial=2)]
    assert _state(r) is s.State.AWAIT_SEND_AEA
    assert _pump(r, i, s.ActivityEndAck()) == [s.ActivityEndAck(serial=2)]
    assert _pump(i, r, s.Finish(user_data=b"rlrq")) == [s.Finish(user_data=b"rlrq")]
    assert _pump(r, i, s.Disconnect(user_data=b"rlre")) == [s.Disconnect(user_data=b"rlre")]
    assert _state(i) is _state(r) is s.State.CLOSED
    r.receive_tsdu(b"")
    assert r.next_event() == s.ConnectionClosed()


def _state(c: s.SessionConnection) -> s.State:
    return c.state  # a call, so mypy does not narrow the attribute across sends


def _connected() -> tuple[s.SessionConnection, s.SessionConnection]:
    i = s.SessionConnection(s.Role.INITIATOR)
    r = s.SessionConnection(s.Role.RESPONDER)
    _pump(i, r, s.ConnectRequest())
    _pump(r, i, s.ConnectAccept())
    return i, r


def test_tokens_and_local_errors() -> None:
    i, r = _connected()
    with pytest.raises(s.LocalProtocolError):
        r.send(s.Data(payload=b"x"))  # responder lacks the data token
    with pytest.raises(s.LocalProtocolError):
        i.send(s.MinorSync())  # no activity
    assert _pump(r, i, s.PleaseTokens(tokens=s.TOKEN_DATA)) == [s.PleaseTokens(tokens=s.TOKEN_DATA)]
    assert _pump(i, r, s.GiveTokens(tokens=s.TOKEN_DATA)) == [s.GiveTokens(tokens=s.TOKEN_DATA)]
    assert _pump(r, i, s.Data(payload=b"turn")) == [s.Data(payload=b"turn")]
    with pytest.raises(s.LocalProtocolError):
        i.send(s.Data(payload=b"x"))


def test_refuse_and_abort() -> None:
    i = s.SessionConnection(s.Role.INITIATOR)
    r = s.SessionConnection(s.Role.RESPONDER)
    _pump(i, r, s.ConnectRequest())
    assert _pump(r, i, s.Refuse(reason=2, user_data=b"no")) == [s.Refuse(reason=2, user_data=b"no")]
    assert i.state is s.State.CLOSED
    i, r = _connected()
    assert _pump(i, r, s.Abort(user_data=b"why")) == [s.Abort(reason=3, user_data=b"why")]
    assert r.state is s.State.CLOSED
    i, r = _connected()
    assert _pump(i, r, s.Abort(reason=s.TD_USER_ABORT)) == [s.Abort(reason=s.TD_USER_ABORT)]
    assert _state(i) is s.State.AWAIT_AA and _state(r) is s.State.AWAIT_SEND_AA
    assert _pump(r, i, s.AbortAccept()) == [s.AbortAccept()]
    assert _state(i) is _state(r) is s.State.CLOSED


@pytest.mark.parametrize(
    "wire",
    [
        b"\x01\x00\x01\x00data",  # the initiator holds the data token, not the peer
        b"\x01\x00\x29\x03\x2a\x01\x31",  # AE outside an activity
        b"\x0e\x00",  # AC after connection
        b"\x02\x00\x32\x03\x2a\x01\x31",  # MIA without MIP
        b"\xde\xad",
    ],
)
def test_remote_errors_give_an_abort(wire: bytes) -> None:
    i, _r = _connected()
    i.receive_tsdu(wire)
    with pytest.raises(s.RemoteProtocolError) as info:
        i.next_event()
    assert info.value.abort == b"\x19\x03\x11\x01\x05"
    assert i.state is s.State.ERROR
    with pytest.raises(s.LocalProtocolError):
        i.send(s.Data(payload=b"x"))


def test_bounded_buffers() -> None:
    c = s.SessionConnection(s.Role.RESPONDER, max_tsdu_size=10, max_buffered=15)
    with pytest.raises(s.RemoteProtocolError):
        c.receive_tsdu(b"x" * 11)
    c = s.SessionConnection(s.Role.RESPONDER, max_tsdu_size=10, max_buffered=15)
    c.receive_tsdu(b"x" * 10)
    with pytest.raises(s.RemoteProtocolError):
        c.receive_tsdu(b"x" * 10)
    with pytest.raises(s.LocalProtocolError):
        s.ConnectRequest(user_data=b"u" * 10241)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_machine_fuzz(tsdus: list[bytes]) -> None:
    for role in s.Role:
        c = s.SessionConnection(role)
        try:
            for t in tsdus:
                c.receive_tsdu(t)
                while c.next_event() is not s.NEED_DATA:
                    pass
        except s.RemoteProtocolError:
            assert c.state is s.State.ERROR


# ----------------------------------------------------------------------------- recovery

CID = s.ConnectionId(
    called_ss_user_ref=b"CALLED", calling_ss_user_ref=b"CALLING", common_ref=b"20261124"
)

# GT + ACTIVITY RESUME, assembled by hand from X.225 §8.3.29 (not with the encoder).
AR_GOLDEN = bytes.fromhex(
    "01 00"  # GT, LI 0
    "1d 20"  # AR, LI 32
    "21 12"  # PGI 33 Linking Information, 18 octets:
    "09 01 41"  # PI 9 Called SS-user Reference "A"
    "0a 01 42"  # PI 10 Calling SS-user Reference "B"
    "0b 02 43 43"  # PI 11 Common Reference "CC"
    "0c 01 07"  # PI 12 Additional Reference Information 07
    "29 03 02 01 01"  # PI 41 Old Activity Identifier 02 01 01
    "2a 01 32"  # PI 42 Serial Number "2"
    "29 03 02 01 02"  # PI 41 New Activity Identifier 02 01 02
    "c1 02 75 64"  # PI 193 User Data "ud"
)
AR_EVENT = s.ActivityResume(
    activity_id=b"\x02\x01\x02",
    old_activity_id=b"\x02\x01\x01",
    serial=2,
    old_connection=s.ConnectionId(
        called_ss_user_ref=b"A", calling_ss_user_ref=b"B", common_ref=b"CC", additional_ref=b"\x07"
    ),
    user_data=b"ud",
)


def test_activity_resume_golden_bytes() -> None:
    gt, ar = decode_tsdu(AR_GOLDEN)
    assert gt == Spdu(type=SpduType.GT)
    assert ar == Spdu(
        type=SpduType.AR,
        called_ss_user_ref=b"A",
        calling_ss_user_ref=b"B",
        common_ref=b"CC",
        additional_ref=b"\x07",
        old_activity_id=b"\x02\x01\x01",
        serial=2,
        activity_id=b"\x02\x01\x02",
        user_data=b"ud",
    )
    assert encode_tsdu(gt, ar) == AR_GOLDEN
    i, r = _connected()
    assert i.send(AR_EVENT) == [AR_GOLDEN]
    r.receive_tsdu(AR_GOLDEN)
    assert r.next_event() == AR_EVENT
    assert _state(r) is s.State.ACTIVITY


def test_activity_resume_on_the_same_connection_has_no_references() -> None:
    i, r = _connected()
    same = s.ActivityResume(activity_id=b"n", old_activity_id=b"o", serial=0)
    (tsdu,) = i.send(same)
    # GT; AR LI 11: PGI 33 { PI 41 "o" }, PI 42 "0", PI 41 "n"
    assert tsdu == bytes.fromhex("0100 1d0b 2103 29016f 2a0130 29016e")
    r.receive_tsdu(tsdu)
    assert r.next_event() == same
    assert _pump(i, r, s.MinorSync()) == [s.MinorSync(serial=1)]


def test_connection_id_in_cn_and_ac() -> None:
    def cn_of(event: s.ConnectRequest) -> list[bytes]:
        return s.SessionConnection(s.Role.INITIATOR).send(event)

    # absent or empty: today's CN, byte for byte (no PGI 1)
    today = [bytes.fromhex("0d12 0509 130100 160102 1a0100 14020249 c10175")]
    assert cn_of(s.ConnectRequest(user_data=b"u")) == today
    assert cn_of(s.ConnectRequest(user_data=b"u", connection_id=s.ConnectionId())) == today
    i = s.SessionConnection(s.Role.INITIATOR)
    r = s.SessionConnection(s.Role.RESPONDER)
    (cn,) = i.send(s.ConnectRequest(connection_id=CID))
    # CN LI 44; PGI 1 LI 27 first: PI 9 "CALLED", PI 10 "CALLING", PI 11 "20261124"; PGI 5 …
    assert cn.startswith(b"\x0d\x2c\x01\x1b\x09\x06CALLED\x0a\x07CALLING\x0b\x0820261124\x05")
    r.receive_tsdu(cn)
    assert r.next_event() == s.ConnectRequest(connection_id=CID)
    ac_cid = s.ConnectionId(called_ss_user_ref=b"ME", common_ref=b"20261124", additional_ref=b"1")
    (ac,) = r.send(s.ConnectAccept(connection_id=ac_cid))
    # AC LI 34; PGI 1 LI 17: PI 9 "ME", PI 11 "20261124", PI 12 "1"; PGI 5 …
    assert ac.startswith(b"\x0e\x22\x01\x11\x09\x02ME\x0b\x0820261124\x0c\x011\x05")
    i.receive_tsdu(ac)
    assert i.next_event() == s.ConnectAccept(connection_id=ac_cid)
    # without one, today's AC
    _i, r2 = _connected_pair_without_accept()
    assert r2.send(s.ConnectAccept()) == [bytes.fromhex("0e0f 0509 130100 160102 1a0100 14020249")]
    with pytest.raises(s.LocalProtocolError):
        s.ConnectionId(common_ref=b"c" * 65)
    with pytest.raises(s.LocalProtocolError):
        s.ConnectionId(additional_ref=b"12345")


def _connected_pair_without_accept() -> tuple[s.SessionConnection, s.SessionConnection]:
    i = s.SessionConnection(s.Role.INITIATOR)
    r = s.SessionConnection(s.Role.RESPONDER)
    _pump(i, r, s.ConnectRequest())
    return i, r


def test_resume_an_interrupted_activity_on_a_new_connection() -> None:
    i, r = _connected()
    _pump(i, r, s.ActivityStart(activity_id=b"\x02\x01\x01"))
    for n in (1, 2, 3):
        _pump(i, r, s.Data(payload=b"chunk%d" % n))
        assert _pump(i, r, s.MinorSync()) == [s.MinorSync(serial=n)]
    assert _pump(r, i, s.MinorSyncAck(serial=2)) == [s.MinorSyncAck(serial=2)]
    # the transport breaks; RTSE recovers on new session connection objects
    i2 = s.SessionConnection(s.Role.INITIATOR)
    r2 = s.SessionConnection(s.Role.RESPONDER)
    new_cid = s.ConnectionId(calling_ss_user_ref=b"MTA-A", common_ref=b"2")
    assert _pump(i2, r2, s.ConnectRequest(connection_id=new_cid)) == [
        s.ConnectRequest(connection_id=new_cid)
    ]
    assert _pump(r2, i2, s.ConnectAccept(connection_id=new_cid)) == [
        s.ConnectAccept(connection_id=new_cid)
    ]
    resume = s.ActivityResume(
        activity_id=b"\x02\x01\x02", old_activity_id=b"\x02\x01\x01", serial=2, old_connection=CID
    )
    assert _pump(i2, r2, resume) == [resume]
    assert _state(i2) is _state(r2) is s.State.ACTIVITY
    assert i2._next_serial == r2._next_serial == 3
    _pump(i2, r2, s.Data(payload=b"chunk3"))
    assert _pump(i2, r2, s.MinorSync()) == [s.MinorSync(serial=3)]
    assert _pump(r2, i2, s.MinorSyncAck(serial=3)) == [s.MinorSyncAck(serial=3)]
    assert _pump(i2, r2, s.ActivityEnd()) == [s.ActivityEnd(serial=4)]
    assert _pump(r2, i2, s.ActivityEndAck()) == [s.ActivityEndAck(serial=4)]
    assert _state(i2) is _state(r2) is s.State.CONNECTED
    # resuming right after the last acknowledged point: the activity end carries serial + 1
    i3, r3 = _connected()
    _pump(i3, r3, s.ActivityResume(activity_id=b"n", old_activity_id=b"o", serial=41))
    assert _pump(i3, r3, s.ActivityEnd()) == [s.ActivityEnd(serial=42)]
    assert _pump(r3, i3, s.ActivityEndAck()) == [s.ActivityEndAck(serial=42)]


def test_activity_resume_local_errors() -> None:
    i, r = _connected()
    with pytest.raises(s.LocalProtocolError):
        r.send(AR_EVENT)  # the responder lacks the major/activity token
    _pump(i, r, s.ActivityStart(activity_id=b"a"))
    with pytest.raises(s.LocalProtocolError):
        i.send(AR_EVENT)  # already in an activity
    for bad in (
        {"activity_id": b""},
        {"activity_id": b"1234567"},
        {"old_activity_id": b""},
        {"serial": -1},
        {"serial": 1_000_000},
    ):
        args: dict[str, object] = {"activity_id": b"n", "old_activity_id": b"o", "serial": 1}
        args.update(bad)
        with pytest.raises(s.LocalProtocolError):
            s.ActivityResume(**args)  # type: ignore[arg-type]


def _ar(*params: bytes) -> bytes:
    return F.spdu(0x01) + F.spdu(0x1D, *params)


@pytest.mark.parametrize(
    ("sender", "wire"),
    [
        ("responder", AR_GOLDEN),  # the initiator holds the major/activity token
        ("activity", AR_GOLDEN),  # an AR inside an activity
        ("initiator", _ar(F.param(0x2A, b"1"), F.param(0x29, b"a"))),  # no old activity id
        ("initiator", _ar(F.param(0x21, F.param(0x29, b"o")), F.param(0x29, b"a"))),  # no serial
        (  # a 7-octet new activity identifier
            "initiator",
            _ar(F.param(0x21, F.param(0x29, b"o")), F.param(0x2A, b"1"), F.param(0x29, b"a" * 7)),
        ),
        ("initiator", _ar(F.param(0x21, b"\x29"), F.param(0x2A, b"1"), F.param(0x29, b"a"))),
    ],
)
def test_activity_resume_remote_errors(sender: str, wire: bytes) -> None:
    i, r = _connected()
    target = i if sender == "responder" else r
    if sender == "activity":
        _pump(i, r, s.ActivityStart(activity_id=b"a"))
    target.receive_tsdu(wire)
    with pytest.raises(s.RemoteProtocolError) as info:
        target.next_event()
    assert info.value.abort == b"\x19\x03\x11\x01\x05"
    assert target.state is s.State.ERROR


def test_an_as_with_a_long_activity_id_is_a_remote_error() -> None:
    _i, r = _connected()
    r.receive_tsdu(F.spdu(0x01) + F.spdu(0x2D, F.param(0x29, b"a" * 7)))
    with pytest.raises(s.RemoteProtocolError):
        r.next_event()


_ref = st.none() | st.binary(max_size=64)
_cids = st.builds(
    s.ConnectionId,
    called_ss_user_ref=_ref,
    calling_ss_user_ref=_ref,
    common_ref=_ref,
    additional_ref=st.none() | st.binary(max_size=4),
)
_aids = st.binary(min_size=1, max_size=6)


def _norm(cid: s.ConnectionId | None) -> s.ConnectionId | None:
    return None if cid == s.ConnectionId() else cid


@settings(max_examples=200)
@given(
    st.none() | _cids,
    st.none() | _cids,
    st.builds(
        s.ActivityResume,
        activity_id=_aids,
        old_activity_id=_aids,
        serial=st.integers(0, 999_998),
        old_connection=st.none() | _cids,
        user_data=st.binary(max_size=300),
    ),
)
def test_generated_resume_round_trip(
    cn_cid: s.ConnectionId | None, ac_cid: s.ConnectionId | None, resume: s.ActivityResume
) -> None:
    i = s.SessionConnection(s.Role.INITIATOR)
    r = s.SessionConnection(s.Role.RESPONDER)
    (cr,) = _pump(i, r, s.ConnectRequest(connection_id=cn_cid))
    assert isinstance(cr, s.ConnectRequest) and cr.connection_id == _norm(cn_cid)
    (ca,) = _pump(r, i, s.ConnectAccept(connection_id=ac_cid))
    assert isinstance(ca, s.ConnectAccept) and ca.connection_id == _norm(ac_cid)
    (tsdu,) = i.send(resume)
    spdus = decode_tsdu(tsdu)
    assert encode_tsdu(*spdus) == tsdu
    r.receive_tsdu(tsdu)
    got = r.next_event()
    assert got == s.ActivityResume(
        activity_id=resume.activity_id,
        old_activity_id=resume.old_activity_id,
        serial=resume.serial,
        old_connection=_norm(resume.old_connection),
        user_data=resume.user_data,
    )
    assert _pump(i, r, s.MinorSync()) == [s.MinorSync(serial=resume.serial + 1)]


def test_tshark_decodes_cn_and_ar(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    from pcap_writer import TcpCapture  # noqa: PLC0415 (tests/ helper, needed here only)

    def tpkt_dt(tsdu: bytes) -> bytes:  # TPKT + TP0 DT with EOT
        return b"\x03\x00" + (len(tsdu) + 7).to_bytes(2, "big") + b"\x02\xf0\x80" + tsdu

    i = s.SessionConnection(s.Role.INITIATOR)
    r = s.SessionConnection(s.Role.RESPONDER)
    (cn,) = i.send(s.ConnectRequest(connection_id=CID))
    r.receive_tsdu(cn)
    r.next_event()
    (ac,) = r.send(s.ConnectAccept())
    i.receive_tsdu(ac)
    i.next_event()
    (ar,) = i.send(AR_EVENT)
    cap = TcpCapture(client_port=40000, server_port=10102)
    cap.handshake(1.0)
    for t, from_client, tsdu in ((1.1, True, cn), (1.2, False, ac), (1.3, True, ar)):
        cap.send(t, from_client=from_client, data=tpkt_dt(tsdu))
    pcap = cap.write(tmp_path / "ar.pcap")

    def run(*args: str) -> list[str]:
        cmd = [tshark, "-n", "-r", str(pcap), "-o", "tpkt.tcp.ports:102,10102", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert run("-Y", "_ws.malformed") == []
    fields = ["ses.type", "ses.called_ss_user_reference", "ses.calling_ss_user_reference"]
    fields += ["ses.common_reference", "ses.additional_reference_information"]
    fields += ["ses.activity_identifier", "ses.serial_number"]
    rows = run("-Y", "ses", "-T", "fields", *(a for f in fields for a in ("-e", f)))
    assert rows == [
        "13\t43414c4c4544\t43414c4c494e47\t3230323631313234\t\t\t",
        "14\t\t\t\t\t\t",
        # GT and AR: the old connection's references and the old activity id (PGI 33),
        # then the serial number and the new activity id
        "1,29\t41\t42\t4343\t07\t020101,020102\t2",
    ]
