"""The P1 association stack: a ConnectionPair in memory (h11 style), PP replays, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcap import tcp_streams

from waypost import asn1 as ber
from waypost.osi import acse as a
from waypost.osi import rtse as r
from waypost.osi import transport as t
from waypost.osi.presentation_ppdu import decode_accept
from waypost.osi.session_spdu import SpduType, decode_tsdu
from waypost.osi.stack import (
    NEED_DATA,
    Abort,
    Aborted,
    Accept,
    Accepted,
    Association,
    AssociationSettings,
    ConfirmTransfer,
    ConnectionClosed,
    Event,
    GiveTurn,
    Layer,
    LocalProtocolError,
    Mode,
    Open,
    OpenRequest,
    Refuse,
    Refused,
    Release,
    Released,
    RequestTurn,
    Role,
    State,
    Transfer,
    TransferConfirmed,
    TransferReceived,
    TurnGiven,
    TurnRequested,
)

PP = Path("/work/shared/vectors/pp")
MODES = [Mode.NORMAL_1988, Mode.X410]
BIND = b"\xa1\x0c\x80\x0aPPTEST-MTA"
RESULT = b"\xa1\x0b\x80\x09PEERB-MTA"
SUBJECT = b"x400peer test IPM via PP"


def apdu_of(size: int) -> bytes:
    """A message-like MTS-APDU (`A0 { 04 … }`) of about `size` octets; b"" for 0."""
    if size == 0:
        return b""
    body = bytes(i % 251 for i in range(size))
    return ber.constructed(ber.context(0), ber.encode_octets(body))


def drain(assoc: Association) -> list[Event]:
    out: list[Event] = []
    while (ev := assoc.next_event()) is not NEED_DATA:
        assert not isinstance(ev, type(NEED_DATA))
        out.append(ev)
    return out


class ConnectionPair:
    """An initiator and a responder wired back to back in memory."""

    def __init__(
        self,
        mode: Mode,
        initiator: AssociationSettings | None = None,
        responder: AssociationSettings | None = None,
    ) -> None:
        self.i = Association(role=Role.INITIATOR, mode=mode, settings=initiator)
        self.r = Association(role=Role.RESPONDER, mode=mode, settings=responder)

    def other(self, side: Association) -> Association:
        return self.r if side is self.i else self.i

    def send(self, side: Association, event: Event) -> tuple[list[Event], list[Event]]:
        """`side` sends `event`; pump until quiet: (events at initiator, at responder)."""
        self.other(side).receive_data(side.send(event))
        return self.pump()

    def pump(self) -> tuple[list[Event], list[Event]]:
        got: dict[int, list[Event]] = {id(self.i): [], id(self.r): []}
        busy = True
        while busy:
            busy = False
            for side in (self.i, self.r):
                events = drain(side)
                got[id(side)] += events
                out = side.data_to_send()
                if out:
                    self.other(side).receive_data(out)
                busy = busy or bool(events) or bool(out)
        return got[id(self.i)], got[id(self.r)]

    def open(self, bind: bytes = BIND, result: bytes = RESULT) -> None:
        ievs, revs = self.send(self.i, Open(bind_argument=bind))
        assert ievs == []
        (req,) = revs
        assert isinstance(req, OpenRequest) and req.bind_argument == bind
        ievs, revs = self.send(self.r, Accept(bind_result=result))
        (acc,) = ievs
        assert isinstance(acc, Accepted) and acc.bind_result == result
        assert revs == []
        assert self.i.state is State.OPEN and self.r.state is State.OPEN

    def transfer(self, apdu: bytes) -> None:
        ievs, revs = self.send(self.i, Transfer(apdu=apdu))
        assert ievs == []  # not confirmed before the receiver says it is durable
        assert revs == [TransferReceived(apdu=apdu)]
        ievs, revs = self.send(self.r, ConfirmTransfer())
        assert ievs == [TransferConfirmed()] and revs == []

    def release(self) -> None:
        ievs, revs = self.send(self.i, Release())
        assert ievs == [Released()] and revs == [Released()]
        assert self.i.state is State.CLOSED and self.r.state is State.CLOSED
        self.i.receive_data(b"")
        self.r.receive_data(b"")
        assert drain(self.i) == [ConnectionClosed()]
        assert drain(self.r) == [ConnectionClosed()]


# ----------------------------------------------------------------------------- pair


@pytest.mark.parametrize("mode", MODES)
def test_open_transfer_release(mode: Mode) -> None:
    small = AssociationSettings(checkpoint_size=1, window_size=2)
    pair = ConnectionPair(mode, small, small)
    pair.open()
    assert (pair.i.checkpoint_size, pair.i.window_size) == (1, 2)
    sizes = [100, 100 * 1024, 5, 3000] if mode is Mode.X410 else [0, 100, 100 * 1024, 5]
    for size in sizes:
        pair.transfer(apdu_of(size))
    pair.release()


@pytest.mark.parametrize("mode", MODES)
def test_window_is_respected(mode: Mode) -> None:
    small = AssociationSettings(checkpoint_size=1, window_size=2)
    pair = ConnectionPair(mode, small, small)
    pair.open()
    apdu = apdu_of(100 * 1024)
    wire = pair.i.send(Transfer(apdu=apdu))
    sender = pair.i.sender
    assert sender is not None and sender.outstanding == 2
    assert len(wire) < 3 * 1024 + 512  # three segments, then it waits for a MIA
    pair.r.receive_data(wire)
    assert drain(pair.r) == []
    acks = pair.r.data_to_send()
    assert acks  # two MinorSyncAcks
    pair.i.receive_data(acks)
    assert drain(pair.i) == []
    assert sender.outstanding <= 2
    _, revs = pair.pump()
    assert revs == [TransferReceived(apdu=apdu)]


@pytest.mark.parametrize("mode", MODES)
def test_no_checkpointing(mode: Mode) -> None:
    none = AssociationSettings(checkpoint_size=0)
    pair = ConnectionPair(mode, none, AssociationSettings())
    pair.open()
    assert pair.i.checkpoint_size == 0
    pair.transfer(apdu_of(50_000))
    pair.release()


@pytest.mark.parametrize("mode", MODES)
def test_negotiation_takes_the_smaller(mode: Mode) -> None:
    pair = ConnectionPair(
        mode,
        AssociationSettings(checkpoint_size=8, window_size=3),
        AssociationSettings(checkpoint_size=2, window_size=5),
    )
    pair.send(pair.i, Open(bind_argument=b"\x05\x00"))
    ievs, _ = pair.send(pair.r, Accept(bind_result=b"\x05\x00"))
    assert ievs == [Accepted(bind_result=b"\x05\x00", checkpoint_size=2, window_size=3)]


@pytest.mark.parametrize("mode", MODES)
def test_refuse(mode: Mode) -> None:
    pair = ConnectionPair(mode)
    pair.send(pair.i, Open(bind_argument=BIND))
    error = b"\x02\x01\x02"  # authentication-error
    ievs, revs = pair.send(
        pair.r, Refuse(bind_error=error, reason=r.RefuseReason.VALIDATION_FAILURE)
    )
    assert ievs == [
        Refused(bind_error=error, reason=r.RefuseReason.VALIDATION_FAILURE, layer=Layer.RTSE)
    ]
    assert revs == []
    assert pair.i.state is State.CLOSED and pair.r.state is State.CLOSED


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("who", ["initiator", "responder"])
@pytest.mark.parametrize("when", ["open", "transfer", "awaiting-accept"])
def test_abort_from_each_side(mode: Mode, who: str, when: str) -> None:
    pair = ConnectionPair(mode, AssociationSettings(checkpoint_size=1, window_size=1))
    if when == "awaiting-accept":
        pair.send(pair.i, Open(bind_argument=BIND))
    else:
        pair.open()
    if when == "transfer":
        pair.send(pair.i, Transfer(apdu=apdu_of(10_000)))
    side = pair.i if who == "initiator" else pair.r
    ievs, revs = pair.send(side, Abort(reason=r.AbortReason.TEMPORARY_PROBLEM))
    got = revs if side is pair.i else ievs
    assert got == [Aborted(layer=Layer.RTSE, reason="RTAB TEMPORARY_PROBLEM")]
    assert pair.i.state is State.CLOSED and pair.r.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        side.send(Transfer(apdu=b"\xa0\x00"))


@pytest.mark.parametrize("mode", MODES)
def test_local_misuse_raises(mode: Mode) -> None:
    pair = ConnectionPair(mode)
    with pytest.raises(LocalProtocolError):
        pair.i.send(Transfer(apdu=b"\xa0\x00"))
    with pytest.raises(LocalProtocolError):
        pair.r.send(Open(bind_argument=BIND))
    with pytest.raises(LocalProtocolError):
        pair.i.send(Released())  # received only
    pair.open()
    with pytest.raises(LocalProtocolError):
        pair.r.send(Transfer(apdu=b"\xa0\x00"))  # monologue
    with pytest.raises(LocalProtocolError):
        pair.r.send(ConfirmTransfer())
    pair.i.send(Transfer(apdu=b"\xa0\x00"))
    with pytest.raises(LocalProtocolError):
        pair.i.send(Transfer(apdu=b"\xa0\x00"))  # one at a time
    with pytest.raises(LocalProtocolError):
        pair.i.send(Release())  # during a transfer


def test_empty_apdu_x410_refused_locally() -> None:
    pair = ConnectionPair(Mode.X410)
    pair.open()
    with pytest.raises(LocalProtocolError):
        pair.i.send(Transfer(apdu=b""))


@pytest.mark.parametrize("mode", MODES)
def test_two_way_alternate(mode: Mode) -> None:
    twa = AssociationSettings(checkpoint_size=1, window_size=2, two_way_alternate=True)
    pair = ConnectionPair(mode, twa, AssociationSettings(checkpoint_size=1, window_size=2))
    ievs, revs = pair.send(pair.i, Open(bind_argument=BIND))
    (req,) = revs
    assert isinstance(req, OpenRequest) and req.dialogue_mode is r.DialogueMode.TWO_WAY_ALTERNATE
    pair.send(pair.r, Accept(bind_result=RESULT))
    assert pair.i.has_turn and not pair.r.has_turn
    with pytest.raises(LocalProtocolError):
        pair.r.send(Transfer(apdu=b"\xa0\x00"))  # no turn
    with pytest.raises(LocalProtocolError):
        pair.r.send(GiveTurn())
    pair.transfer(apdu_of(3000))
    ievs, revs = pair.send(pair.r, RequestTurn(priority=1))
    assert ievs == [TurnRequested(priority=1)] and revs == []
    ievs, revs = pair.send(pair.i, GiveTurn())
    assert revs == [TurnGiven()] and ievs == []
    assert pair.r.has_turn and not pair.i.has_turn
    for size in (10, 5000):
        apdu = apdu_of(size)
        ievs, revs = pair.send(pair.r, Transfer(apdu=apdu))
        assert ievs == [TransferReceived(apdu=apdu)] and revs == []
        ievs, revs = pair.send(pair.i, ConfirmTransfer())
        assert revs == [TransferConfirmed()] and ievs == []
    with pytest.raises(LocalProtocolError):
        pair.i.send(Release())  # the initiator needs the turn back first
    pair.send(pair.i, RequestTurn())
    ievs, _ = pair.send(pair.r, GiveTurn())
    assert ievs == [TurnGiven()]
    pair.release()


@pytest.mark.parametrize("mode", MODES)
def test_turns_refused_in_monologue(mode: Mode) -> None:
    pair = ConnectionPair(mode)
    pair.open()
    with pytest.raises(LocalProtocolError):
        pair.i.send(GiveTurn())
    with pytest.raises(LocalProtocolError):
        pair.r.send(RequestTurn())


# ----------------------------------------------------------------------------- garbage


def _to_phase(mode: Mode, phase: str) -> tuple[ConnectionPair, Association]:
    """A pair brought to `phase`; returns it and the side that will receive garbage."""
    pair = ConnectionPair(mode, AssociationSettings(checkpoint_size=1, window_size=2))
    if phase == "connect":
        pair.r.receive_data(pair.i.send(Open(bind_argument=BIND)))
        drain(pair.r)  # CR seen, CC queued
        pair.i.receive_data(pair.r.data_to_send())
        drain(pair.i)
        pair.i.data_to_send()  # the CN never arrives: garbage instead
        return pair, pair.r
    if phase == "accept":
        pair.send(pair.i, Open(bind_argument=BIND))
        return pair, pair.i
    pair.open()
    if phase == "transfer":
        pair.r.receive_data(pair.i.send(Transfer(apdu=apdu_of(5000))))
        drain(pair.r)
        pair.r.data_to_send()
    return pair, pair.r


def _tsdu_with(payload: bytes) -> bytes:
    """A DT TPDU in a TPKT carrying `payload` as one TSDU."""
    body = b"\x02\xf0\x80" + payload
    return b"\x03\x00" + (len(body) + 4).to_bytes(2, "big") + body


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("phase", ["connect", "accept", "open", "transfer"])
@pytest.mark.parametrize(
    ("garbage", "layer"),
    [
        (b"\x04\x00\x00\x07\x02\xf0\x80", Layer.TRANSPORT),  # bad TPKT version
        (_tsdu_with(b"\xff\x00"), Layer.SESSION),  # unknown SPDU
        (_tsdu_with(b"\x01\x00\x01\x03\xc1\x01\x00"), None),  # DT with junk user data
    ],
)
def test_garbage_aborts_at_the_right_layer(
    mode: Mode, phase: str, garbage: bytes, layer: Layer | None
) -> None:
    _, victim = _to_phase(mode, phase)
    victim.receive_data(garbage)
    events = drain(victim)
    if mode is Mode.X410 and phase == "transfer" and layer is None:
        assert events == []  # in X.410 mode any DT octets are a valid segment
        return
    assert len(events) == 1 and isinstance(events[0], Aborted), events
    assert not events[0].by_peer
    if layer is not None:
        assert events[0].layer is layer
    assert victim.state is State.ERROR
    assert drain(victim) == []


@pytest.mark.parametrize(
    ("mode", "phase", "layers"),
    [
        (Mode.NORMAL_1988, "transfer", {Layer.PRESENTATION}),  # P-DATA that is no PDV list
        (Mode.NORMAL_1988, "open", {Layer.PRESENTATION}),
        (Mode.X410, "open", {Layer.RTSE}),  # data outside an activity
    ],
)
def test_bad_data_in_data_phase(mode: Mode, phase: str, layers: set[Layer]) -> None:
    pair, victim = _to_phase(mode, phase)
    victim.receive_data(_tsdu_with(b"\x01\x00\x01\x04\xc1\x02\x30\x00"))
    (ev,) = drain(victim)
    assert isinstance(ev, Aborted) and ev.layer in layers, ev
    abort = victim.data_to_send()
    assert abort  # an AB goes to the peer, which sees the same layer abort
    peer = pair.other(victim)
    peer.receive_data(abort)
    (seen,) = drain(peer)
    assert isinstance(seen, Aborted) and seen.by_peer and seen.layer is ev.layer, seen


@pytest.mark.parametrize("mode", MODES)
def test_eof_mid_association(mode: Mode) -> None:
    pair = ConnectionPair(mode)
    pair.open()
    pair.r.receive_data(b"")
    assert drain(pair.r) == [
        Aborted(layer=Layer.TRANSPORT, reason="TCP closed before release"),
        ConnectionClosed(),
    ]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    mode=st.sampled_from(MODES),
    phase=st.sampled_from(["connect", "accept", "open", "transfer"]),
    garbage=st.binary(max_size=300),
    wrap=st.booleans(),
    eof=st.booleans(),
)
def test_fuzz_random_bytes_never_raise(
    mode: Mode, phase: str, garbage: bytes, wrap: bool, eof: bool
) -> None:
    _, victim = _to_phase(mode, phase)
    victim.receive_data(_tsdu_with(garbage) if wrap else garbage)
    if eof:
        victim.receive_data(b"")
    for ev in drain(victim):
        assert isinstance(ev, Aborted | ConnectionClosed | TransferReceived | Released), ev
    victim.data_to_send()


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    sizes=st.lists(st.integers(min_value=1, max_value=40_000), min_size=1, max_size=3),
    checkpoint=st.integers(min_value=0, max_value=8),
    window=st.integers(min_value=1, max_value=4),
    twa=st.booleans(),
)
def test_round_trip_sizes(
    mode: Mode, sizes: list[int], checkpoint: int, window: int, twa: bool
) -> None:
    cfg = AssociationSettings(checkpoint_size=checkpoint, window_size=window)
    first = AssociationSettings(
        checkpoint_size=checkpoint, window_size=window, two_way_alternate=twa
    )
    pair = ConnectionPair(mode, first, cfg)
    pair.open()
    for size in sizes:
        pair.transfer(apdu_of(size))
    if twa:
        assert pair.send(pair.i, GiveTurn()) == ([], [TurnGiven()])
        for size in sizes:
            apdu = apdu_of(size)
            assert pair.send(pair.r, Transfer(apdu=apdu)) == ([TransferReceived(apdu=apdu)], [])
            assert pair.send(pair.i, ConfirmTransfer()) == ([], [TransferConfirmed()])
        assert pair.send(pair.r, GiveTurn()) == ([TurnGiven()], [])
    pair.release()


# ----------------------------------------------------------------------------- PP replays


def _pp(name: str) -> tuple[bytes, bytes]:
    if not (PP / name).exists():
        pytest.skip("PP vectors not present")
    (stream,) = tcp_streams(PP / name)
    return stream.client_to_server, stream.server_to_client


def _client_reference(client_to_server: bytes) -> t.TransportSettings:
    """Transport settings whose SRC-REF is the one PP's client put in its CR."""
    assert client_to_server[5] == 0xE0  # TPKT, LI, CR
    return t.TransportSettings(local_reference=int.from_bytes(client_to_server[8:10], "big"))


def _server_bind_result(mode: Mode, to_server: bytes, server_to_client: bytes) -> bytes:
    """The bind result in the capture's AC, decoded with the lower layers alone."""
    tc = t.TransportConnection(role=t.Role.INITIATOR, settings=_client_reference(to_server))
    tc.send(t.ConnectRequest(max_tpdu_size=2048))
    tc.receive_data(server_to_client)
    while True:
        ev = tc.next_event()
        if isinstance(ev, t.Data):
            ac = decode_tsdu(ev.payload)[-1]
            if ac.type is SpduType.AC:
                break
    user_data = ac.user_data or b""
    if mode is Mode.X410:
        rtoac = r.decode_x410_accept(user_data)
        assert isinstance(rtoac.connection_data, r.Open)
        return rtoac.connection_data.value
    (pdv,) = decode_accept(user_data).user_data
    aare = a.decode_apdu(pdv.value)
    assert isinstance(aare, a.AARE)
    rtoac_apdu = r.decode_rtse_apdu(aare.user_information[0].value)
    assert isinstance(rtoac_apdu, r.RTOAC) and isinstance(rtoac_apdu.connection_data, r.Open)
    wrapped = ber.decode(rtoac_apdu.connection_data.value)
    assert wrapped.tag == ber.context(17, True)
    return bytes(wrapped.child(0).raw)


PP_CASES = [("msg88.pcap", Mode.NORMAL_1988), ("msgx410.pcap", Mode.X410)]


@pytest.mark.parametrize(("name", "mode"), PP_CASES)
def test_pp_replay_as_responder(name: str, mode: Mode) -> None:
    to_server, to_client = _pp(name)
    result = _server_bind_result(mode, to_server, to_client)
    assert b"PEERB-MTA" in result
    resp = Association(role=Role.RESPONDER, mode=mode)
    resp.receive_data(to_server)
    resp.receive_data(b"")
    (req,) = _until(resp, OpenRequest)
    assert isinstance(req, OpenRequest)
    assert b"PPTEST-MTA" in req.bind_argument
    assert req.checkpoint_size == 63 and req.window_size == 3
    resp.send(Accept(bind_result=result))
    (got,) = _until(resp, TransferReceived)
    assert isinstance(got, TransferReceived)
    assert got.apdu[0] == 0xA0 and SUBJECT in got.apdu
    resp.send(ConfirmTransfer())
    rest = drain(resp)
    assert rest == [Released(), ConnectionClosed()], rest


def _until(assoc: Association, kind: type) -> list[Event]:
    events: list[Event] = []
    while True:
        ev = assoc.next_event()
        assert ev is not NEED_DATA, f"no {kind.__name__}"
        assert not isinstance(ev, type(NEED_DATA))
        events.append(ev)
        if isinstance(ev, kind):
            return [ev]
        assert not isinstance(ev, Aborted), ev


def _capture_apdu(mode: Mode, to_server: bytes) -> bytes:
    resp = Association(role=Role.RESPONDER, mode=mode)
    resp.receive_data(to_server)
    _until(resp, OpenRequest)
    resp.send(Accept(bind_result=b"\x05\x00"))
    (got,) = _until(resp, TransferReceived)
    assert isinstance(got, TransferReceived)
    return got.apdu


@pytest.mark.parametrize(("name", "mode"), PP_CASES)
def test_pp_replay_as_initiator(name: str, mode: Mode) -> None:
    """PP's server answers fed to our initiator: Accepted, then (our segmentation of the
    same APDU at PP's checkpoint size matching PP's) TransferConfirmed and Released."""
    to_server, to_client = _pp(name)
    apdu = _capture_apdu(mode, to_server)
    init = Association(
        role=Role.INITIATOR,
        mode=mode,
        settings=AssociationSettings(
            checkpoint_size=63, transport=_client_reference(to_server), max_tpdu_size=2048
        ),
    )
    init.send(Open(bind_argument=BIND))
    init.receive_data(to_client)
    (acc,) = _until(init, Accepted)
    assert isinstance(acc, Accepted) and b"PEERB-MTA" in acc.bind_result
    assert (acc.checkpoint_size, acc.window_size) == (1, 3)
    init.send(Transfer(apdu=apdu))
    _until(init, TransferConfirmed)
    init.send(Release())
    (rel,) = _until(init, Released)
    assert rel == Released()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(PP_CASES),
    data=st.data(),
)
def test_fuzz_mutated_pp_stream(case: tuple[str, Mode], data: st.DataObject) -> None:
    """One octet of PP's client stream changed: nothing raises (a bug of ours would: only
    the peer's protocol errors become an abort), and the association ends either closed
    by the EOF or in ERROR with the fault reported as ours to tell the peer."""
    name, mode = case
    to_server, _ = _pp(name)
    where = data.draw(st.integers(min_value=0, max_value=len(to_server) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    stream = to_server[:where] + bytes([value]) + to_server[where + 1 :]
    resp = Association(role=Role.RESPONDER, mode=mode)
    resp.receive_data(stream)
    resp.receive_data(b"")
    events = []
    for _ in range(10_000):
        ev = resp.next_event()
        if ev is NEED_DATA:
            break
        events.append(ev)
        if isinstance(ev, OpenRequest):
            resp.send(Accept(bind_result=b"\x05\x00"))
        elif isinstance(ev, TransferReceived):
            resp.send(ConfirmTransfer())
    resp.data_to_send()
    _assert_ended(resp, events)


def _assert_ended(assoc: Association, events: list[object]) -> None:
    """After the whole stream and its EOF: ERROR with our abort reported, or closed."""
    assert events, "no event at all"
    if assoc.state is State.ERROR:
        assert isinstance(events[-1], Aborted) and not events[-1].by_peer, events[-1]
    else:
        assert (assoc.state, events[-1]) == (State.CLOSED, ConnectionClosed()), events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(PP_CASES), data=st.data())
def test_fuzz_mutated_pp_stream_initiator(case: tuple[str, Mode], data: st.DataObject) -> None:
    """One octet of PP's server stream changed, fed to our initiator: nothing raises,
    and the association ends closed or in ERROR (as above)."""
    name, mode = case
    to_server, to_client = _pp(name)
    where = data.draw(st.integers(min_value=0, max_value=len(to_client) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    stream = to_client[:where] + bytes([value]) + to_client[where + 1 :]
    cfg = AssociationSettings(checkpoint_size=63, transport=_client_reference(to_server))
    init = Association(role=Role.INITIATOR, mode=mode, settings=cfg)
    init.send(Open(bind_argument=BIND))
    init.receive_data(stream)
    init.receive_data(b"")
    events = []
    for _ in range(10_000):
        ev = init.next_event()
        if ev is NEED_DATA:
            break
        events.append(ev)
        if isinstance(ev, Accepted):
            init.send(Transfer(apdu=apdu_of(3000)))
        elif isinstance(ev, TransferConfirmed):
            init.send(Release())
    init.data_to_send()
    _assert_ended(init, events)
