"""Tests of the RFC 1006 / ISO 8073 class 0 transport layer (waypost.osi.transport)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pcap import tcp_streams

from waypost.osi.transport import (
    NEED_DATA,
    ConnectConfirm,
    ConnectionClosed,
    ConnectRequest,
    Data,
    DisconnectRequest,
    Error,
    Event,
    LimitExceededError,
    LocalProtocolError,
    MalformedTpduError,
    NegotiationError,
    RemoteProtocolError,
    Role,
    State,
    TransportConnection,
    TransportSettings,
    UnexpectedTpduError,
)
from waypost.osi.transport_tpdu import decode

VECTORS = Path("/work/shared/vectors/pp")


class TpduFactory:
    """Builds TPKT-wrapped TPDUs byte by byte, independently of the encoder."""

    @staticmethod
    def tpkt(tpdu: bytes) -> bytes:
        return b"\x03\x00" + (len(tpdu) + 4).to_bytes(2, "big") + tpdu

    def cr(
        self,
        *,
        src: int = 0x763A,
        dst: int = 0,
        class_option: int = 0,
        params: bytes = b"\xc0\x01\x0b",
        code: int = 0xE0,
    ) -> bytes:
        fixed = bytes([code]) + dst.to_bytes(2, "big") + src.to_bytes(2, "big")
        header = fixed + bytes([class_option]) + params
        return self.tpkt(bytes([len(header)]) + header)

    def cc(self, *, dst: int = 1, src: int = 0x763E, params: bytes = b"\xc0\x01\x0b") -> bytes:
        return self.cr(src=src, dst=dst, params=params, code=0xD0)

    def dt(self, data: bytes, *, eot: bool = True) -> bytes:
        return self.tpkt(b"\x02\xf0" + (b"\x80" if eot else b"\x00") + data)

    def dr(self, *, dst: int = 1, src: int = 0x763E, reason: int = 0x80) -> bytes:
        return self.tpkt(
            b"\x06\x80" + dst.to_bytes(2, "big") + src.to_bytes(2, "big") + bytes([reason])
        )

    def er(self, *, dst: int = 1, cause: int = 2, invalid: bytes = b"") -> bytes:
        var = b"\xc1" + bytes([len(invalid)]) + invalid if invalid else b""
        header = b"\x70" + dst.to_bytes(2, "big") + bytes([cause]) + var
        return self.tpkt(bytes([len(header)]) + header)


F = TpduFactory()


def events(conn: TransportConnection, data: bytes = b"") -> list[Event]:
    if data:
        conn.receive_data(data)
    out: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        out.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return out


def accepting(conn: TransportConnection, data: bytes = b"") -> list[Event]:
    """Like `events`, answering a CR with a default CC as a responder driver would."""
    out = events(conn, data)
    while conn.state is State.CR_RECEIVED:
        conn.send(ConnectConfirm())
        more = events(conn)
        if not more:
            break
        out += more
    return out


def responder(**kw: int) -> TransportConnection:
    return TransportConnection(role=Role.RESPONDER, settings=TransportSettings(**kw))


def initiator(**kw: int) -> TransportConnection:
    return TransportConnection(role=Role.INITIATOR, settings=TransportSettings(**kw))


def open_responder(size_code: int = 0x0B, **kw: int) -> TransportConnection:
    conn = responder(**kw)
    assert events(conn, F.cr(params=bytes([0xC0, 1, size_code])))
    conn.send(ConnectConfirm())
    return conn


def open_initiator(size: int = 2048, **kw: int) -> TransportConnection:
    conn = initiator(**kw)
    conn.send(ConnectRequest(called_tsel=b"x", max_tpdu_size=size))
    code = size.bit_length() - 1
    assert events(conn, F.cc(params=bytes([0xC0, 1, code])))
    return conn


# -- byte level: sending -----------------------------------------------------------------


def test_send_cr_bytes() -> None:
    conn = initiator(local_reference=0x763A)
    wire = conn.send(ConnectRequest(called_tsel=b"p1n88", max_tpdu_size=2048))
    assert wire == F.cr(params=b"\xc2\x05p1n88\xc0\x01\x0b")
    assert conn.state is State.CR_SENT


def test_send_cr_with_calling_tsel_bytes() -> None:
    wire = initiator().send(ConnectRequest(calling_tsel=b"ab", called_tsel=b"c", max_tpdu_size=128))
    assert wire == F.cr(src=1, params=b"\xc1\x02ab\xc2\x01c\xc0\x01\x07")


def test_send_cc_bytes_and_negotiation() -> None:
    conn = responder(local_reference=0x763E)
    assert events(conn, F.cr()) == [
        ConnectRequest(calling_tsel=b"", called_tsel=b"", max_tpdu_size=2048)
    ]
    assert conn.send(ConnectConfirm()) == F.cc(dst=0x763A)
    assert conn.state is State.OPEN and conn.tpdu_size == 2048


@pytest.mark.parametrize(
    ("offered", "ours", "event_max", "expected"),
    [(2048, 2048, 8192, 2048), (8192, 2048, 8192, 2048), (128, 8192, 8192, 128),
     (8192, 8192, 8192, 8192), (8192, 8192, 512, 512)],
)  # fmt: skip
def test_negotiation(offered: int, ours: int, event_max: int, expected: int) -> None:
    conn = responder(max_tpdu_size=ours)
    events(conn, F.cr(params=bytes([0xC0, 1, offered.bit_length() - 1])))
    wire = conn.send(ConnectConfirm(max_tpdu_size=event_max))
    assert wire[-1] == expected.bit_length() - 1
    assert conn.tpdu_size == expected


def test_cr_without_size_means_128() -> None:
    conn = responder()
    assert events(conn, F.cr(params=b""))[0] == ConnectRequest(max_tpdu_size=128)
    conn.send(ConnectConfirm())
    assert conn.tpdu_size == 128


def test_send_dt_dr_er_bytes() -> None:
    conn = open_responder()
    assert conn.send(Data(payload=b"hello")) == F.dt(b"hello")
    assert conn.send(Data(payload=b"")) == F.dt(b"")
    assert conn.send(DisconnectRequest(reason=0x80)) == F.dr(dst=0x763A, src=1)
    assert conn.state is State.CLOSED
    conn = open_responder()
    assert conn.send(Error(cause=2)) == F.er(dst=0x763A)
    conn = open_responder()
    assert conn.send(Error(cause=3, invalid_tpdu=b"\x02\xf0")) == F.er(
        dst=0x763A, cause=3, invalid=b"\x02\xf0"
    )


def test_dr_additional_info_round_trip() -> None:
    conn = open_initiator()
    peer = open_responder()
    sent = peer.send(DisconnectRequest(reason=0x00, additional_info=b"why"))
    assert sent == F.tpkt(b"\x0b\x80\x76\x3a\x00\x01\x00\xe0\x03why")
    assert events(conn, sent) == [DisconnectRequest(reason=0, additional_info=b"why")]


@pytest.mark.parametrize("size", [128, 8192])
def test_segmentation_and_reassembly(size: int) -> None:
    sender = open_responder(size_code=size.bit_length() - 1, max_tpdu_size=8192)
    assert sender.tpdu_size == size
    payload = bytes(range(256)) * 100  # 25600 octets
    wire = sender.send(Data(payload=payload))
    room = size - 3
    n = -(-len(payload) // room)
    expected = b"".join(F.dt(payload[i * room : (i + 1) * room], eot=i == n - 1) for i in range(n))
    assert wire == expected
    receiver = open_initiator(size=size)
    assert events(receiver, wire) == [Data(payload=payload)]


def test_exact_multiple_of_segment_size() -> None:
    sender = open_responder(size_code=7)
    wire = sender.send(Data(payload=b"x" * 250))
    assert wire == F.dt(b"x" * 125, eot=False) + F.dt(b"x" * 125)


# -- byte level: receiving ---------------------------------------------------------------


def test_receive_cr_with_tsels_and_unknown_params() -> None:
    conn = responder()
    params = b"\xc1\x02ab\xc2\x05p1n88\xc0\x01\x0d\xc6\x01\x01\xf0\x02\x00\x10\x85\x01\x00"
    assert events(conn, F.cr(params=params)) == [
        ConnectRequest(calling_tsel=b"ab", called_tsel=b"p1n88", max_tpdu_size=8192)
    ]
    assert conn.peer_reference == 0x763A


def test_receive_cc_dt_dr_er() -> None:
    conn = initiator()
    conn.send(ConnectRequest(max_tpdu_size=2048))
    got = events(conn, F.cc(params=b"\xc1\x01a\xc0\x01\x09") + F.dt(b"a", eot=False) + F.dt(b"b"))
    assert got == [ConnectConfirm(calling_tsel=b"a", max_tpdu_size=512), Data(payload=b"ab")]
    assert conn.tpdu_size == 512
    assert events(conn, F.dr(reason=0x80)) == [DisconnectRequest(reason=0x80)]
    assert conn.state is State.CLOSED
    conn.receive_data(b"")
    assert events(conn) == [ConnectionClosed()]
    conn = open_initiator()
    assert events(conn, F.er(cause=1, invalid=b"\x02\xf0\x80")) == [
        Error(cause=1, invalid_tpdu=b"\x02\xf0\x80")
    ]


def test_refused_connect() -> None:
    conn = initiator()
    conn.send(ConnectRequest())
    assert events(conn, F.dr(reason=0x03)) == [DisconnectRequest(reason=0x03)]
    conn = responder()
    events(conn, F.cr())
    assert conn.send(DisconnectRequest(reason=0x02)) == F.dr(dst=0x763A, src=1, reason=2)
    assert conn.state is State.CLOSED


def test_eof_is_connection_closed_in_every_quiet_state() -> None:
    for conn in (initiator(), responder(), open_initiator(), open_responder()):
        conn.receive_data(b"")
        assert events(conn) == [ConnectionClosed()]
        assert conn.next_event() == ConnectionClosed()
        assert conn.state is State.CLOSED


@pytest.mark.parametrize("cut", range(1, len(F.cr()) + len(F.dt(b"abc"))))
def test_split_at_every_byte(cut: int) -> None:
    stream = F.cr() + F.dt(b"abc", eot=False) + F.dt(b"def")
    conn = responder()
    got = accepting(conn, stream[:cut])
    got += accepting(conn, stream[cut:])
    assert got == [ConnectRequest(max_tpdu_size=2048), Data(payload=b"abcdef")]


def test_split_one_byte_at_a_time() -> None:
    conn = open_initiator()
    got: list[Event] = []
    for b in F.dt(b"x" * 100, eot=False) + F.dt(b"y") + F.dr():
        got += events(conn, bytes([b]))
    assert got == [Data(payload=b"x" * 100 + b"y"), DisconnectRequest(reason=0x80)]


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn_factory", "wire", "error", "hint"),
    [
        (responder, b"\x04\x00\x00\x07\x02\xf0\x80", MalformedTpduError, DisconnectRequest),
        (responder, b"\x03\x00\x00\x05\x00", MalformedTpduError, DisconnectRequest),
        (responder, F.tpkt(b"\x05\xe0\x00"), MalformedTpduError, Error),
        (responder, F.tpkt(b"\x02\xf0"), MalformedTpduError, Error),
        (responder, F.cr(params=b"\xc0\x02\x0b"), MalformedTpduError, DisconnectRequest),
        (responder, F.cr(params=b"\xc0\x01\x0e"), MalformedTpduError, Error),
        (responder, F.cr(params=b"\xc2\x21" + b"a" * 33), MalformedTpduError, Error),
        (responder, F.cr(class_option=0x20), NegotiationError, DisconnectRequest),
        (responder, F.dt(b"early"), UnexpectedTpduError, DisconnectRequest),
        (responder, F.cc(), UnexpectedTpduError, DisconnectRequest),
        (responder, F.tpkt(b"\x04\x60\x00\x01\x00"), MalformedTpduError, Error),
        (responder, F.tpkt(b"\x02\xf0\x81"), MalformedTpduError, Error),
        (responder, F.tpkt(b"\x03\xf0\x80\x00"), MalformedTpduError, Error),
        (responder, F.tpkt(b"\x05\x80\x00\x01\x00\x01"), MalformedTpduError, Error),
        (responder, F.tpkt(b"\x03\x70\x00\x01"), MalformedTpduError, Error),
        (open_responder, F.cr(), UnexpectedTpduError, Error),
        (open_responder, F.dt(b"x" * 2046), LimitExceededError, Error),
        (open_initiator, F.cc(), UnexpectedTpduError, Error),
    ],
)
def test_remote_errors(
    conn_factory: object, wire: bytes, error: type[RemoteProtocolError], hint: type
) -> None:
    conn: TransportConnection = conn_factory()  # type: ignore[operator]
    conn.receive_data(wire)
    with pytest.raises(error) as info:
        conn.next_event()
    assert isinstance(info.value.hint, hint)
    assert conn.state is State.ERROR
    with pytest.raises(error):  # stays in ERROR
        conn.next_event()
    assert conn.send(info.value.hint)  # the hint can still be sent
    with pytest.raises(LocalProtocolError):
        conn.send(Data(payload=b"x"))


def test_cr_with_class_0_as_alternative_is_accepted() -> None:
    conn = responder()
    assert events(conn, F.cr(class_option=0x20, params=b"\xc7\x01\x00"))


def test_cc_negotiation_errors() -> None:
    for wire in (
        F.cc(dst=9),
        F.cc(params=b"\xc0\x01\x0d"),
        F.cr(code=0xD0, dst=1, class_option=0x10),
    ):
        conn = initiator()
        conn.send(ConnectRequest(max_tpdu_size=2048))
        conn.receive_data(wire)
        with pytest.raises(NegotiationError):
            conn.next_event()


def test_limits() -> None:
    conn = open_initiator(max_tsdu_size=300)
    conn.receive_data(F.dt(b"x" * 200, eot=False) + F.dt(b"x" * 101))
    with pytest.raises(LimitExceededError):
        events(conn)
    conn = open_initiator(max_tpkt_length=100)
    conn.receive_data(F.dt(b"x" * 97))
    with pytest.raises(LimitExceededError):
        conn.next_event()
    conn = open_initiator(max_buffered_bytes=70000)
    with pytest.raises(LimitExceededError):
        conn.receive_data(b"\x03" * 70001)
    with pytest.raises(ValueError):
        TransportSettings(max_buffered_bytes=10)
    with pytest.raises(ValueError):
        TransportSettings(max_tpdu_size=100)
    with pytest.raises(ValueError):
        TransportSettings(local_reference=0)


def test_eof_inside_tpkt_or_tsdu() -> None:
    for wire in (F.dt(b"abc")[:-1], F.dt(b"abc", eot=False)):
        conn = open_initiator()
        conn.receive_data(wire)
        conn.receive_data(b"")
        with pytest.raises(RemoteProtocolError):
            events(conn)


def test_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        initiator().send(Data(payload=b"x"))
    with pytest.raises(LocalProtocolError):
        responder().send(ConnectRequest())
    with pytest.raises(LocalProtocolError):
        initiator().send(ConnectConfirm())
    with pytest.raises(LocalProtocolError):
        initiator().send(ConnectionClosed())
    conn = initiator()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")
    conn = open_responder()
    conn.send(DisconnectRequest())
    with pytest.raises(LocalProtocolError):
        conn.send(Data(payload=b"late"))


def test_event_validation() -> None:
    with pytest.raises(ValueError):
        ConnectRequest(max_tpdu_size=1000)
    with pytest.raises(ValueError):
        ConnectRequest(called_tsel=b"x" * 33)
    with pytest.raises(ValueError):
        DisconnectRequest(reason=256)
    with pytest.raises(ValueError):
        Error(cause=-1)
    with pytest.raises(ValueError):
        Error(invalid_tpdu=b"x" * 201)
    with pytest.raises(ValueError):
        DisconnectRequest(additional_info=b"x" * 201)
    with pytest.raises(TypeError):
        Data(b"x")  # type: ignore[call-arg]


# -- two connections against each other ---------------------------------------------------


class ConnectionPair:
    def __init__(self, size: int = 2048) -> None:
        self.initiator = initiator(local_reference=0x1234)
        self.responder = responder(max_tpdu_size=size, local_reference=0x4321)

    def to_responder(self, event: Event) -> list[Event]:
        return events(self.responder, self.initiator.send(event))

    def to_initiator(self, event: Event) -> list[Event]:
        return events(self.initiator, self.responder.send(event))


@pytest.mark.parametrize("size", [128, 2048, 8192])
def test_connection_pair(size: int) -> None:
    pair = ConnectionPair(size)
    cr = ConnectRequest(calling_tsel=b"me", called_tsel=b"p1n88", max_tpdu_size=8192)
    assert pair.to_responder(cr) == [cr]
    assert pair.to_initiator(ConnectConfirm(called_tsel=b"p1n88")) == [
        ConnectConfirm(called_tsel=b"p1n88", max_tpdu_size=size)
    ]
    for n in (0, 1, size - 3, size - 2, 100_000):
        data = Data(payload=bytes([n % 251]) * n)
        assert pair.to_responder(data) == [data]
        assert pair.to_initiator(data) == [data]
    assert pair.to_responder(DisconnectRequest()) == [DisconnectRequest()]
    assert pair.initiator.state is State.CLOSED and pair.responder.state is State.CLOSED


# -- PP captures ---------------------------------------------------------------------------

CAPTURES = {
    # file: (called TSEL, TSDUs client->server, TSDUs server->client)
    "msg88.pcap": (b"p1n88", 5, 3),
    "msgx410.pcap": (b"p1x410", 5, 3),
    "self88n.pcap": (b"p1n88", 2, 2),
    "selfx410.pcap": (b"p1x410", 2, 2),
    "self84.pcap": (b"p1in84", 2, 2),
}


def tpdus(stream: bytes) -> list[bytes]:
    out = []
    while stream:
        length = int.from_bytes(stream[2:4], "big")
        out.append(stream[4:length])
        stream = stream[length:]
    return out


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_pp_capture(name: str) -> None:
    called, n_c2s, n_s2c = CAPTURES[name]
    (stream,) = tcp_streams(VECTORS / name)
    resp = responder()
    c2s = accepting(resp, stream.client_to_server)
    resp.receive_data(b"")
    c2s += events(resp)
    init = initiator(local_reference=int.from_bytes(stream.client_to_server[8:10], "big"))
    init.send(ConnectRequest(called_tsel=called, max_tpdu_size=2048))
    s2c = events(init, stream.server_to_client)
    init.receive_data(b"")
    s2c += events(init)

    assert c2s[0] == ConnectRequest(called_tsel=called, max_tpdu_size=2048)
    assert all(isinstance(e, Data) and e.payload for e in c2s[1:-2])
    assert len(c2s) == 1 + n_c2s + 2
    assert c2s[-2:] == [DisconnectRequest(reason=0x80), ConnectionClosed()]
    assert s2c[0] == ConnectConfirm(max_tpdu_size=2048)
    assert all(isinstance(e, Data) and e.payload for e in s2c[1:-1])
    assert len(s2c) == 1 + n_s2c + 1 and s2c[-1] == ConnectionClosed()

    # Re-encoding what we parsed gives a semantically equal CR and CC.
    cr_theirs, cc_theirs = tpdus(stream.client_to_server)[0], tpdus(stream.server_to_client)[0]
    again = initiator(local_reference=int.from_bytes(cr_theirs[4:6], "big"))
    assert decode(tpdus(again.send(c2s[0]))[0]) == decode(cr_theirs)
    peer = responder(local_reference=int.from_bytes(cc_theirs[4:6], "big"))
    events(peer, stream.client_to_server[: len(cr_theirs) + 4])
    assert decode(tpdus(peer.send(s2c[0]))[0]) == decode(cc_theirs)


def test_pcap_reader_ports() -> None:
    (stream,) = tcp_streams(VECTORS / "msg88.pcap")
    assert stream.server_port == 10102 and stream.client_port == 41422
    assert stream.client_to_server.startswith(b"\x03\x00\x00\x15")
    assert stream.server_to_client.startswith(b"\x03\x00\x00\x0e")


# -- Hypothesis ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([Role.INITIATOR, Role.RESPONDER]), st.lists(st.binary(max_size=64)))
def test_fuzz_random_bytes(role: Role, chunks: list[bytes]) -> None:
    conn = TransportConnection(role=role)
    if role is Role.INITIATOR:
        conn.send(ConnectRequest())
    try:
        for chunk in [*(c for c in chunks if c), b""]:
            conn.receive_data(chunk)
            for _ in range(10_000):
                if conn.state is State.CR_RECEIVED:
                    conn.send(ConnectConfirm())
                if conn.next_event() in (NEED_DATA, ConnectionClosed()):
                    break
            else:
                pytest.fail("next_event never returned NEED_DATA")
    except RemoteProtocolError:
        pass


VALID_STREAM = (
    F.cr(params=b"\xc2\x05p1n88\xc0\x01\x07")
    + F.dt(b"a" * 125, eot=False)
    + F.dt(b"b" * 10)
    + F.dt(b"")
    + F.dr()
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(VALID_STREAM)), max_size=20))
def test_random_split_points(cuts: list[int]) -> None:
    points = sorted({0, len(VALID_STREAM), *cuts})
    conn = responder()
    got: list[Event] = []
    for a, b in itertools.pairwise(points):
        got += accepting(conn, VALID_STREAM[a:b])
    assert got == [
        ConnectRequest(called_tsel=b"p1n88", max_tpdu_size=128),
        Data(payload=b"a" * 125 + b"b" * 10),
        Data(payload=b""),
        DisconnectRequest(reason=0x80),
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 300))
def test_fuzz_mutated_stream(mutation: bytes, at: int) -> None:
    wire = bytearray(VALID_STREAM)
    wire[at : at + len(mutation)] = mutation
    conn = responder()
    try:
        accepting(conn, bytes(wire))
        conn.receive_data(b"")
        events(conn)
    except RemoteProtocolError:
        pass


class PairMachine(RuleBasedStateMachine):
    """Random valid sends on either side must come out unchanged on the other."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = ConnectionPair(size=256)

    @precondition(lambda self: self.pair.initiator.state is State.IDLE)
    @rule(size=st.sampled_from([128, 256, 8192]), tsel=st.binary(max_size=8))
    def connect(self, size: int, tsel: bytes) -> None:
        cr = ConnectRequest(called_tsel=tsel, max_tpdu_size=size)
        assert self.pair.to_responder(cr) == [cr]
        got = self.pair.to_initiator(ConnectConfirm())
        assert got == [ConnectConfirm(max_tpdu_size=min(size, 256))]

    @precondition(lambda self: self.pair.initiator.state is State.OPEN)
    @rule(payload=st.binary(max_size=2000), forward=st.booleans())
    def data(self, payload: bytes, forward: bool) -> None:
        send = self.pair.to_responder if forward else self.pair.to_initiator
        assert send(Data(payload=payload)) == [Data(payload=payload)]

    @precondition(lambda self: self.pair.initiator.state is State.OPEN)
    @rule(reason=st.integers(0, 255), forward=st.booleans())
    def disconnect(self, reason: int, forward: bool) -> None:
        send = self.pair.to_responder if forward else self.pair.to_initiator
        assert send(DisconnectRequest(reason=reason)) == [DisconnectRequest(reason=reason)]

    @rule()
    def misuse(self) -> None:
        if self.pair.initiator.state is not State.OPEN:
            with pytest.raises(LocalProtocolError):
                TransportConnection(role=Role.INITIATOR).send(Data(payload=b"x"))

    @invariant()
    def states_agree(self) -> None:
        assert self.pair.initiator.state is self.pair.responder.state or (
            self.pair.initiator.state is State.IDLE and self.pair.responder.state is State.LISTENING
        )


TestPairMachine = PairMachine.TestCase
