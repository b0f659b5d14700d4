"""Tests of the X.228 RTSE APDU codec, the X.410 PConnect/PAccept and the transfer procedure."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcap import tcp_streams

from waypost import asn1 as ber
from waypost.osi import rtse as r
from waypost.osi import session as s
from waypost.osi.rtse_transfer import RtseReceiver, RtseSender, TransferState
from waypost.osi.session_spdu import SpduType, decode_tsdu

PP = Path("/work/shared/vectors/pp")


def tlv(tag: int, *content: bytes) -> bytes:
    """A hand-built definite-length TLV (short or 0x81/0x82 long form), not using the encoder."""
    body = b"".join(content)
    n = len(body)
    length = (
        bytes([n]) if n < 128 else (b"\x81" + bytes([n]) if n < 256 else b"\x82" + n.to_bytes(2))
    )
    return bytes([tag]) + length + body


BIND = tlv(0xA1, tlv(0x80, b"PPTEST-MTA"), tlv(0xA1, tlv(0x04, b"pppass")))
SCID = r.SessionConnectionIdentifier(
    calling_ss_user_reference=b"ref", common_reference="261123231500Z"
)

GOLDEN: list[tuple[bytes, r.Apdu]] = [
    (
        tlv(
            0xB0,
            tlv(0x80, b"\x1e"),
            tlv(0x81, b"\x05"),
            tlv(0x82, b"\x01"),
            tlv(0xA3, tlv(0xA0, tlv(0xB0, BIND))),
        ),
        r.RTORQ(
            checkpoint_size=30,
            window_size=5,
            dialogue_mode=r.DialogueMode.TWO_WAY_ALTERNATE,
            connection_data=r.Open(value=tlv(0xB0, BIND)),
        ),
    ),
    (
        tlv(0xB0, tlv(0xA3, tlv(0xA1, tlv(0x04, b"ref"), tlv(0x17, b"261123231500Z")))),
        r.RTORQ(connection_data=r.Recover(identifier=SCID)),
    ),
    (
        tlv(
            0xB1,
            tlv(0x80, b"\x01"),
            tlv(0x81, b"\x03"),
            tlv(0xA2, tlv(0xA0, tlv(0xB1, tlv(0x05, b"")))),
        ),
        r.RTOAC(
            checkpoint_size=1, window_size=3, connection_data=r.Open(value=b"\xb1\x02\x05\x00")
        ),
    ),
    (
        tlv(0xB2, tlv(0x80, b"\x02"), tlv(0xA1, tlv(0xB2, tlv(0x02, b"\x02")))),
        r.RTORJ(refuse_reason=r.RefuseReason.VALIDATION_FAILURE, user_data=b"\xb2\x03\x02\x01\x02"),
    ),
    (tlv(0xB2), r.RTORJ()),
    (tlv(0x02, b"\x05"), r.RTTP(priority=5)),
    (tlv(0x04, b"x" * 300), r.RTTR(data=b"x" * 300)),
    (
        tlv(0xB6, tlv(0x80, b"\x04"), tlv(0x81, b"\x07\x80"), tlv(0xA2, tlv(0x05, b""))),
        r.RTAB(
            abort_reason=r.AbortReason.PROTOCOL_ERROR,
            reflected_parameter=(b"\x80", 7),
            user_data=b"\x05\x00",
        ),
    ),
    (tlv(0xB6), r.RTAB()),
]


@pytest.mark.parametrize(("wire", "apdu"), GOLDEN)
def test_golden(wire: bytes, apdu: r.Apdu) -> None:
    assert r.decode_rtse_apdu(wire) == apdu
    assert r.encode_rtse_apdu(apdu) == wire


def test_defaults_and_other_forms() -> None:
    rq = r.decode_rtse_apdu(tlv(0xB0, tlv(0xA3, tlv(0xA0, b"\x05\x00"))))
    assert isinstance(rq, r.RTORQ)
    assert (rq.checkpoint, rq.window, rq.mode) == (0, 3, r.DialogueMode.MONOLOGUE)
    # SET members in any order; constructed OCTET STRING and indefinite lengths
    rq2 = r.decode_rtse_apdu(tlv(0xB0, tlv(0x84, b"\x0c"), tlv(0xA3, tlv(0xA0, b"\x05\x00"))))
    assert isinstance(rq2, r.RTORQ) and rq2.application_protocol == 12
    assert r.decode_rtse_apdu(b"\x24\x80\x04\x01a\x04\x01b\x00\x00") == r.RTTR(data=b"ab")
    ac = r.decode_rtse_apdu(b"\xb1\x80\xa2\x80\xa0\x80\x05\x00\x00\x00\x00\x00\x00\x00")
    assert ac == r.RTOAC(connection_data=r.Open(value=b"\x05\x00"))
    t61 = tlv(0xB0, tlv(0xA3, tlv(0xA1, tlv(0x14, b"r"), tlv(0x17, b"Z"), tlv(0x80, b"x"))))
    rq3 = r.decode_rtse_apdu(t61)
    assert isinstance(rq3, r.RTORQ) and isinstance(rq3.connection_data, r.Recover)
    assert rq3.connection_data.identifier.reference_is_t61
    assert rq3.connection_data.identifier.additional_reference == b"x"
    assert r.encode_rtse_apdu(rq3) == t61


X410_CONNECT = bytes.fromhex(
    "312ca003800100a12580013f820100a31aa018a116800a5050544553542d4d5441a108040670707061737384010c"
)
X410_ACCEPT = bytes.fromhex(
    "312ba003800100a124800101810103a21ca01aa118800950454552422d4d5441a10b0409706565726270617373"
)


def test_x410_golden() -> None:
    rq = r.decode_x410_connect(X410_CONNECT)
    assert rq == r.RTORQ(
        checkpoint_size=63,
        dialogue_mode=r.DialogueMode.MONOLOGUE,
        connection_data=r.Open(value=BIND),
        application_protocol=r.APPLICATION_PROTOCOL_P1_1988,
    )
    assert r.encode_x410_connect(rq) == X410_CONNECT
    ac = r.decode_x410_accept(X410_ACCEPT)
    assert ac.checkpoint == 1 and ac.window == 3
    assert r.encode_x410_accept(ac) == X410_ACCEPT
    rj = r.RTORJ(refuse_reason=r.RefuseReason.RTS_BUSY)
    assert r.encode_x410_refuse(rj) == b"\x31\x03\x80\x01\x00"
    assert r.decode_x410_refuse(b"\x31\x03\x80\x01\x00") == rj


MALFORMED = [
    b"",
    b"\xb0",
    b"\xb0\x00",  # no connectionDataRQ
    b"\xb0\x05\xa3\x03\xa0\x01\x05",  # truncated inner
    tlv(0xB0, tlv(0x80, b"\x01"), tlv(0x80, b"\x01"), tlv(0xA3, tlv(0xA0, b"\x05\x00"))),
    tlv(0xB0, tlv(0x81, b"\x00"), tlv(0xA3, tlv(0xA0, b"\x05\x00"))),  # window 0
    tlv(0xB0, tlv(0x82, b"\x07"), tlv(0xA3, tlv(0xA0, b"\x05\x00"))),  # dialogue mode 7
    tlv(0xB0, tlv(0x85, b"\x07"), tlv(0xA3, tlv(0xA0, b"\x05\x00"))),  # unknown member
    tlv(0xB0, tlv(0xA3, tlv(0xA0, b"\x05\x00\x05\x00"))),  # open holds two
    tlv(0xB0, tlv(0xA3, tlv(0xA2, b""))),  # unknown ConnectionData
    tlv(0xB0, tlv(0xA3, tlv(0xA1, tlv(0x04, b"x")))),  # short recover
    tlv(0xB6, tlv(0x80, b"\x08")),  # abort reason 8
    tlv(0xB2, tlv(0x80, b"\x09")),
    tlv(0x30),
    b"\x02\x01\x05\x00",  # trailing byte
    b"\x04\x84\xff\xff\xff\xff",  # absurd length
]


@pytest.mark.parametrize("wire", MALFORMED)
def test_malformed(wire: bytes) -> None:
    with pytest.raises(r.RemoteProtocolError) as info:
        r.decode_rtse_apdu(wire)
    assert info.value.abort == r.RTAB(abort_reason=r.AbortReason.PROTOCOL_ERROR)
    assert info.value.path.startswith("rt")


def test_error_names_the_path() -> None:
    wire = tlv(0xB0, tlv(0x81, b"\x00"), tlv(0xA3, tlv(0xA0, b"\x05\x00")))
    with pytest.raises(r.RemoteProtocolError) as info:
        r.decode_rtse_apdu(wire)
    assert info.value.path == "rtorq.windowSize" and info.value.offset == 2
    assert isinstance(info.value.__cause__, ber.BERError)
    with pytest.raises(r.RemoteProtocolError):
        r.decode_x410_connect(b"\x31\x08\xa0\x03\x80\x01\x01\xa1\x01\x00")  # normal mode
    with pytest.raises(r.RemoteProtocolError):
        r.decode_x410_accept(X410_ACCEPT[:-1])
    with pytest.raises(r.LocalProtocolError):
        r.RTORQ(window_size=0, connection_data=r.Open(value=b"\x05\x00"))


DECODERS: list[Callable[[bytes], object]] = [
    r.decode_rtse_apdu,
    r.decode_x410_connect,
    r.decode_x410_accept,
    r.decode_x410_refuse,
]


@settings(max_examples=300)
@given(st.binary(max_size=80), st.sampled_from(DECODERS))
def test_fuzz_random(data: bytes, decoder: Callable[[bytes], object]) -> None:
    with contextlib.suppress(r.RemoteProtocolError):
        decoder(data)


SEEDS = [w for w, _ in GOLDEN] + [X410_CONNECT, X410_ACCEPT]


@settings(max_examples=400)
@given(st.sampled_from(SEEDS), st.data())
def test_fuzz_mutated(seed: bytes, data: st.DataObject) -> None:
    wire = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    for decoder in DECODERS:
        for candidate in (bytes(wire), bytes(wire[:cut])):
            try:
                got = decoder(candidate)
            except r.RemoteProtocolError:
                continue
            # whatever decodes re-encodes to something that decodes to the same value
            if decoder is r.decode_rtse_apdu:
                assert isinstance(got, r.RTORQ | r.RTOAC | r.RTORJ | r.RTTP | r.RTTR | r.RTAB)
                assert r.decode_rtse_apdu(r.encode_rtse_apdu(got)) == got


ints = st.none() | st.integers(0, 1000)
opens = st.builds(r.Open, value=st.sampled_from([b"\x05\x00", BIND, b"\xb0\x00"]))


@given(
    st.builds(
        r.RTORQ,
        checkpoint_size=ints,
        window_size=st.none() | st.integers(1, 1000),
        dialogue_mode=st.none() | st.sampled_from(r.DialogueMode),
        connection_data=opens,
        application_protocol=st.none() | st.sampled_from([1, 12]),
    )
    | st.builds(
        r.RTOAC,
        checkpoint_size=ints,
        window_size=st.none() | st.integers(1, 1000),
        connection_data=opens,
    )
    | st.builds(
        r.RTORJ,
        refuse_reason=st.none() | st.sampled_from(r.RefuseReason),
        user_data=st.none() | st.just(b"\x05\x00"),
    )
    | st.builds(r.RTTP, priority=st.integers(-(2**40), 2**40))
    | st.builds(r.RTTR, data=st.binary(max_size=300))
    | st.builds(
        r.RTAB,
        abort_reason=st.none() | st.sampled_from(r.AbortReason),
        reflected_parameter=st.none() | st.just((b"\xc0", 6)),
        user_data=st.none() | st.just(b"\x04\x01x"),
    )
)
def test_generated_round_trip(apdu: r.Apdu) -> None:
    assert r.decode_rtse_apdu(r.encode_rtse_apdu(apdu)) == apdu
    if isinstance(apdu, r.RTORQ):
        assert r.decode_x410_connect(r.encode_x410_connect(apdu)) == apdu
    elif isinstance(apdu, r.RTOAC):
        assert r.decode_x410_accept(r.encode_x410_accept(apdu)) == apdu
    elif isinstance(apdu, r.RTORJ):
        assert r.decode_x410_refuse(r.encode_x410_refuse(apdu)) == apdu


# ----------------------------------------------------------------------------- PP vectors


def _tsdus(stream: bytes) -> list[bytes]:
    """TSDUs from the TPKT/TP0 DT TPDUs of one direction."""
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


def _session_user_data(path: Path) -> tuple[list[bytes], list[bytes]]:
    """(CN, DT...) user data to the server and (AC, ...) user data to the client."""
    (stream,) = tcp_streams(path)
    result = []
    for direction in (stream.client_to_server, stream.server_to_client):
        datas = []
        for tsdu in _tsdus(direction):
            last = decode_tsdu(tsdu)[-1]
            if last.type in (SpduType.CN, SpduType.AC):
                datas.append(last.user_data or last.extended_user_data or b"")
            elif last.type is SpduType.DT:
                datas.append(last.user_information)
        result.append(datas)
    return result[0], result[1]


def _rtse_in_cp(user_data: bytes) -> ber.Element:
    """The RTSE APDU in a CP/CPA's AARQ/AARE user-information EXTERNAL (no presentation codec)."""
    top = ber.decode(user_data)
    normal = top.child(ber.context(2, True))
    pdv_list = normal.child(ber.application(1, True)).child(0)
    acse = pdv_list.child(ber.context(0, True)).child(0)
    assert acse.tag in (ber.application(0, True), ber.application(1, True))
    external = acse.child(ber.context(30, True)).child(0).expect(ber.EXTERNAL)
    assert external.child(ber.INTEGER).as_int() == 3  # id-as-mta-rtse
    return external.child(ber.context(0, True)).child(0)


@pytest.mark.parametrize("name", ["msgx410.pcap", "selfx410.pcap", "self84.pcap"])
def test_pp_x410(name: str) -> None:
    if not (PP / name).exists():
        pytest.skip("PP vectors not present")
    out, back = _session_user_data(PP / name)
    rq = r.decode_x410_connect(out[0])
    assert r.encode_x410_connect(rq) == out[0]
    assert rq.checkpoint_size == 63 and rq.window_size is None and rq.window == 3
    assert rq.dialogue_mode is r.DialogueMode.MONOLOGUE
    want = r.APPLICATION_PROTOCOL_P1_1984 if name == "self84.pcap" else 12
    assert rq.application_protocol == want
    assert isinstance(rq.connection_data, r.Open)
    assert rq.connection_data.value.startswith(b"\xa1")  # bare MTABindArgument
    assert b"PPTEST-MTA" in rq.connection_data.value
    ac = r.decode_x410_accept(back[0])
    assert r.encode_x410_accept(ac) == back[0]
    assert ac.checkpoint_size == 1 and ac.window_size == 3
    assert isinstance(ac.connection_data, r.Open)
    assert ac.connection_data.value.startswith(b"\xa1")
    if name == "msgx410.pcap":
        (message,) = out[1:]
        assert message.startswith(b"\xa0")  # the raw MTS-APDU, no RTTR, no EXTERNAL
        ber.decode(message, allow_trailing=True)


@pytest.mark.parametrize("name", ["msg88.pcap", "self88n.pcap"])
def test_pp_1988(name: str) -> None:
    if not (PP / name).exists():
        pytest.skip("PP vectors not present")
    out, back = _session_user_data(PP / name)
    element = _rtse_in_cp(out[0])
    wire = bytes(element.raw)
    rq = r.decode_rtse_apdu(wire)
    assert r.encode_rtse_apdu(rq) == wire
    assert isinstance(rq, r.RTORQ)
    assert (rq.checkpoint_size, rq.window_size, rq.dialogue_mode) == (63, None, 0)
    assert rq.application_protocol is None
    assert isinstance(rq.connection_data, r.Open)
    assert rq.connection_data.value.startswith(b"\xb0")  # [16] EXPLICIT MTABindArgument
    assert b"PPTEST-MTA" in rq.connection_data.value
    element = _rtse_in_cp(back[0])
    ac = r.decode_rtse_apdu(bytes(element.raw))
    assert r.encode_rtse_apdu(ac) == bytes(element.raw)
    assert isinstance(ac, r.RTOAC) and (ac.checkpoint_size, ac.window_size) == (1, 3)
    assert isinstance(ac.connection_data, r.Open)
    assert ac.connection_data.value.startswith(b"\xb1")  # [17] EXPLICIT MTABindResult
    if name == "msg88.pcap":
        (pdata,) = out[1:]
        pdv = ber.decode(pdata).child(0)
        assert pdv.child(ber.INTEGER).as_int() == 3
        rttr_wire = bytes(pdv.child(ber.context(0, True)).child(0).raw)
        rttr = r.decode_rtse_apdu(rttr_wire)
        assert isinstance(rttr, r.RTTR) and r.encode_rtse_apdu(rttr) == rttr_wire
        external = ber.decode(rttr.data).expect(ber.EXTERNAL)
        assert external.child(ber.INTEGER).as_int() == 5  # id-as-mtse
        message = external.child(ber.context(0, True)).child(0)
        assert message.tag == ber.context(0, True)  # MTS-APDU message [0]


# ----------------------------------------------------------------------------- transfer


def _run(
    apdu: bytes, checkpoint: int, window: int, ack_delay: int
) -> tuple[bytes, list[s.Event], RtseSender]:
    """Drive a sender and a receiver in memory; acks held back up to `ack_delay` events."""
    sender, receiver = RtseSender(checkpoint_size=checkpoint, window_size=window), RtseReceiver()
    to_receiver: list[s.Event] = list(sender.transfer(apdu, b"\x02\x01\x01"))
    to_sender: list[s.Event] = []
    sent: list[s.Event] = list(to_receiver)
    serial = 0
    got: bytes | None = None
    while to_receiver or to_sender:
        if to_receiver:
            ev = to_receiver.pop(0)
            if isinstance(ev, s.MinorSync):  # the session layer numbers the sync points
                serial += 1
                ev = s.MinorSync(serial=serial)
            to_sender += receiver.receive(ev)
            assert sender.outstanding <= window
            if receiver.apdu is not None:
                got = receiver.apdu
                assert sender.state is TransferState.AWAIT_CONFIRM
                to_sender += receiver.confirm()
        if to_sender and (len(to_sender) > ack_delay or not to_receiver):
            more = sender.receive(to_sender.pop(0))
            sent += more
            to_receiver += more
    assert got is not None
    return got, sent, sender


@settings(max_examples=100)
@given(
    st.binary(min_size=1, max_size=20_000),
    st.integers(0, 6),
    st.integers(1, 5),
    st.integers(0, 4),
)
def test_transfer_round_trip(apdu: bytes, checkpoint: int, window: int, delay: int) -> None:
    got, sent, sender = _run(apdu, checkpoint, window, delay)
    assert got == apdu
    assert sender.state is TransferState.IDLE and sender.confirmed == 1
    size = checkpoint * 1024 or len(apdu)
    datas = [e.payload for e in sent if isinstance(e, s.Data)]
    assert all(len(d) <= size for d in datas) and b"".join(datas) == apdu
    syncs = sum(isinstance(e, s.MinorSync) for e in sent)
    assert syncs == len(datas) - 1
    assert isinstance(sent[0], s.ActivityStart) and isinstance(sent[-1], s.ActivityEnd)


def test_window_blocks_until_acked() -> None:
    sender = RtseSender(checkpoint_size=1, window_size=2)
    first = sender.transfer(b"x" * 5000)
    kinds = [type(e) for e in first]
    assert kinds == [s.ActivityStart, s.Data, s.MinorSync, s.Data, s.MinorSync]
    assert sender.outstanding == 2
    assert [type(e) for e in sender.receive(s.MinorSyncAck(serial=2))] == [
        s.Data,
        s.MinorSync,
        s.Data,
        s.MinorSync,
    ]
    assert [type(e) for e in sender.receive(s.MinorSyncAck(serial=3))] == [s.Data, s.ActivityEnd]
    with pytest.raises(r.LocalProtocolError):
        sender.transfer(b"y")
    assert sender.receive(s.ActivityEndAck()) == []
    assert sender.confirmed == 1 and sender.state is TransferState.IDLE


def test_whole_apdu_when_checkpoint_zero() -> None:
    sender = RtseSender()
    assert sender.transfer(b"abc") == [
        s.ActivityStart(activity_id=b"\x01"),
        s.Data(payload=b"abc"),
        s.ActivityEnd(),
    ]


def test_transfer_errors() -> None:
    sender = RtseSender(checkpoint_size=1)
    with pytest.raises(r.LocalProtocolError):
        sender.transfer(b"")
    sender.transfer(b"x" * 3000)
    with pytest.raises(r.RemoteProtocolError):
        sender.receive(s.MinorSyncAck(serial=5))
    assert sender.state is TransferState.ERROR
    with pytest.raises(r.LocalProtocolError):
        RtseSender(window_size=0)
    with pytest.raises(r.LocalProtocolError):
        RtseSender(checkpoint_size=-1)

    receiver = RtseReceiver(max_apdu_size=4)
    with pytest.raises(r.RemoteProtocolError):
        receiver.receive(s.Data(payload=b"x"))  # no activity
    receiver = RtseReceiver(max_apdu_size=4)
    receiver.receive(s.ActivityStart(activity_id=b"\x01"))
    with pytest.raises(r.RemoteProtocolError) as info:
        receiver.receive(s.Data(payload=b"12345"))
    assert info.value.reason is r.AbortReason.PERMANENT_PROBLEM
    receiver = RtseReceiver()
    receiver.receive(s.ActivityStart(activity_id=b"\x01"))
    assert receiver.receive(s.MinorSync(serial=1, no_confirm=True)) == []
    with pytest.raises(r.RemoteProtocolError):
        receiver.receive(s.ActivityEnd(serial=2))  # no data
    receiver = RtseReceiver()
    with pytest.raises(r.LocalProtocolError):
        receiver.confirm()


def test_receiver_confirms_only_on_request() -> None:
    receiver = RtseReceiver()
    assert receiver.receive(s.ActivityStart(activity_id=b"\x02\x01\x01")) == []
    assert receiver.receive(s.Data(payload=b"ab")) == []
    assert receiver.receive(s.MinorSync(serial=1)) == [s.MinorSyncAck(serial=1)]
    assert receiver.receive(s.Data(payload=b"cd")) == []
    assert receiver.receive(s.ActivityEnd(serial=2)) == []
    assert receiver.apdu == b"abcd" and receiver.activity_id == b"\x02\x01\x01"
    assert receiver.state is TransferState.AWAIT_CONFIRM
    assert receiver.confirm() == [s.ActivityEndAck()]
    assert receiver.apdu is None and receiver.state is TransferState.IDLE


def test_over_real_session_layer() -> None:
    """Sender and receiver driving two SessionConnections, as PP's msg exchange does."""
    ini, rsp = s.SessionConnection(s.Role.INITIATOR), s.SessionConnection(s.Role.RESPONDER)

    def pump(src: s.SessionConnection, dst: s.SessionConnection, ev: s.Event) -> list[s.Event]:
        for tsdu in src.send(ev):
            dst.receive_tsdu(tsdu)
        out = []
        while (got := dst.next_event()) is not s.NEED_DATA:
            assert not isinstance(got, s.NeedData)
            out.append(got)
        return out

    pump(
        ini,
        rsp,
        s.ConnectRequest(user_data=r.encode_x410_connect(r.decode_x410_connect(X410_CONNECT))),
    )
    pump(rsp, ini, s.ConnectAccept(user_data=X410_ACCEPT))
    sender, receiver = RtseSender(checkpoint_size=1, window_size=2), RtseReceiver()
    apdu = bytes(range(256)) * 20
    queue = sender.transfer(apdu)
    while queue:
        replies = []
        for ev in pump(ini, rsp, queue.pop(0)):
            replies += receiver.receive(ev)
            if receiver.apdu is not None:
                assert receiver.apdu == apdu
                replies += receiver.confirm()
        for reply in replies:
            for ev in pump(rsp, ini, reply):
                queue += sender.receive(ev)
    assert sender.confirmed == 1 and ini.state is s.State.CONNECTED
