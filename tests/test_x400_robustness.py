"""The P1 listener under abuse: timeouts, mutated PP streams and out-of-place PDUs over real
sockets, and a Hypothesis state machine driving two sans-I/O associations back to back."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers import free_port, running_service
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from p1_client import P1Client
from pcap import tcp_streams

from waypost import asn1 as ber
from waypost import events
from waypost.message import ContentType, Envelope, Recipient
from waypost.osi import acse as a
from waypost.osi import rtse as r
from waypost.osi import session as s
from waypost.osi.presentation import P1_CONTEXTS, PresentationConnection
from waypost.osi.presentation_ppdu import PDV
from waypost.osi.rtse_transfer import TransferState
from waypost.osi.session_spdu import Spdu, SpduType, encode_tsdu
from waypost.osi.stack import (
    NEED_DATA,
    Abort,
    Aborted,
    Accept,
    Association,
    AssociationSettings,
    ConfirmTransfer,
    Event,
    GiveTurn,
    Layer,
    LocalProtocolError,
    Mode,
    Open,
    OpenRequest,
    Refuse,
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
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_objects import encode_stored

PP = Path("/work/shared/vectors/pp")
PP_CASES = [("msg88.pcap", Mode.NORMAL_1988), ("msgx410.pcap", Mode.X410)]
MODES = [Mode.NORMAL_1988, Mode.X410]
PEER, PASSWORD = "PPTEST-MTA", "pppass"  # the MTA bind in the PP captures
BIND_TIMEOUT, IDLE_TIMEOUT, PEER_LIFETIME = 0.5, 0.6, 0.8
WAIT = 10.0  # generous: how long a client waits for the server to close
LAYERS = {layer.value for layer in Layer} | {"p1"}
T = TypeVar("T")


# ----------------------------------------------------------------------------- a live server


class LiveServer:
    """A Waypost Service with an X.400 listener, on its own event loop in a thread, so that
    plain blocking sockets (and Hypothesis) can talk to one server across many examples."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.loop_errors.append(context))
        self.events: list[tuple[events.EventDefinition, dict[str, Any]]] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = free_port()

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(WAIT)

    def sync(self) -> None:
        """Wait until the loop has run what was ready (events of a closed connection)."""
        self.call(asyncio.sleep(0.01))

    def start(self) -> None:
        toml = (
            f'[server]\nhostname = "robust.test"\ndata_dir = "robust"\n'
            f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
            f'[local]\nx400_store = "robust-x400"\n'
            f'[x400]\nlisten = ["127.0.0.1:{self.port}"]\nmta_name = "PEERB-MTA"\n'
            f"bind_timeout = {BIND_TIMEOUT}\nidle_timeout = {IDLE_TIMEOUT}\n"
            f'[[x400.peer]]\nname = "{PEER}"\naddress = "127.0.0.1:1"\n'
            f'peer_password = "{PASSWORD}"\nassociation_lifetime = {PEER_LIFETIME}\n'
        )
        self.thread.start()

        # No queue manager: what arrives stays queued.
        self.service = self.call(running_service(self.root, toml, name="robust", background=False))

    def stop(self) -> None:
        self.call(self.service.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()

    def events_for(self, port: int) -> list[tuple[str, dict[str, Any]]]:
        """The events naming the client at local `port`."""
        who = f"127.0.0.1:{port}"
        return [
            (event.name, fields)
            for event, fields in list(self.events)
            if any(who in str(fields.get(key, "")) for key in ("peer", "client", "address"))
        ]

    def assert_healthy(self) -> None:
        """Nothing escaped: no exception reached asyncio, no unexpected-error event."""
        assert self.loop_errors == []
        unexpected = [f for e, f in self.events if e is events.UNEXPECTED_ERROR]
        assert unexpected == []


class _Capture(logging.Handler):
    def __init__(self, server: LiveServer) -> None:
        super().__init__(logging.INFO)
        self.server = server

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "waypost_event", None)
        if event is not None:
            self.server.events.append((event, dict(getattr(record, "waypost_fields", {}))))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("robust"))
    logger = logging.getLogger("waypost")
    level = logger.level
    handler = _Capture(live)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    live.start()
    try:
        yield live
    finally:
        live.stop()
        logger.removeHandler(handler)
        logger.setLevel(level)


# ----------------------------------------------------------------------------- clients


def exchange(server: LiveServer, data: bytes, *, eof: bool) -> tuple[bytes, int]:
    """Connect, write `data` (then EOF if `eof`), read until the server closes; the server's
    bytes and our port. The server must close: on its own, at a timeout at the latest."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        port = sock.getsockname()[1]
        try:
            sock.sendall(data)
            if eof:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed already (and said so with a reset)
        reply = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError(f"the server kept the connection open: {data.hex()}") from None
            if not chunk:
                break
            reply += chunk
    server.sync()
    return bytes(reply), port


class Client(P1Client):
    """The well-formed peer: small checkpoints, so transfers cross minor syncs."""

    def __init__(self, server: LiveServer, mode: Mode) -> None:
        settings = AssociationSettings(checkpoint_size=1, window_size=2)
        super().__init__(server.port, mode, settings, name=PEER, password=PASSWORD, timeout=WAIT)


def p1_message() -> bytes:
    jones = "/C=GB/ADMD= /PRMD=B/S=Jones/"
    smith = "/C=GB/ADMD= /PRMD=A/S=Smith/"
    envelope = Envelope(
        mts_id="/C=GB/ADMD= /PRMD=A/;robust-1",
        originator=smith,
        recipients=[Recipient(address=jones, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    content = build_ipm(
        originator=smith, recipients=[jones], subject="still up", text="Hi", ipm_id="ipm-r"
    )
    return encode_stored(envelope, content)


def assert_transfers(server: LiveServer, mode: Mode) -> None:
    """A well-formed association binds, transfers a message (stored) and releases."""
    client = Client(server, mode)
    try:
        client.open()
        client.send(Transfer(apdu=p1_message()))
        client.until(TransferConfirmed)
        client.send(Release())
        client.until(Released)
        client.until(None)
    finally:
        client.close()
    server.sync()
    names = [name for name, _ in server.events_for(client.port)]
    assert "x400-association-opened" in names and "x400-message-received" in names, names
    assert "x400-association-aborted" not in names, server.events_for(client.port)


def pp_stream(name: str) -> bytes:
    if not (PP / name).exists():
        pytest.skip("PP vectors not present")
    (stream,) = tcp_streams(PP / name)
    return stream.client_to_server


def tpkt(tpdu: bytes) -> bytes:
    return b"\x03\x00" + (len(tpdu) + 4).to_bytes(2, "big") + tpdu


def dt(tsdu: bytes) -> bytes:
    """One DT TPDU (end of TSDU) carrying `tsdu`, in a TPKT."""
    return tpkt(b"\x02\xf0\x80" + tsdu)


def tpkts(stream: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(stream):
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        out.append(stream[pos : pos + length])
        pos += length
    return out


# ----------------------------------------------------------------------------- part 1: timers


@pytest.mark.timeout(60)
def test_silent_client_is_closed_after_the_bind_timeout(server: LiveServer) -> None:
    reply, port = exchange(server, b"", eof=False)
    assert reply == b""
    timeouts = [f for n, f in server.events_for(port) if n == "x400-timeout"]
    assert timeouts == [{"peer": f"127.0.0.1:{port}", "seconds": f"{BIND_TIMEOUT:g}"}]
    server.assert_healthy()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cut", [1, 3, 10])
def test_partial_tpkt_then_stall_is_closed_after_the_bind_timeout(
    server: LiveServer, cut: int
) -> None:
    cr = tpkts(pp_stream("msg88.pcap"))[0]
    reply, port = exchange(server, cr[:cut], eof=False)
    assert reply == b""
    assert [n for n, _ in server.events_for(port)] == ["x400-timeout"]
    server.assert_healthy()


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed `sock`, without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


@pytest.mark.timeout(60)
def test_trickling_client_is_closed_at_the_bind_deadline(server: LiveServer) -> None:
    """Traffic does not move the bind deadline: an octet at a time, never a CN."""
    cr = tpkts(pp_stream("msg88.pcap"))[0]
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        port = sock.getsockname()[1]
        sock.sendall(cr)
        assert sock.recv(1024)  # the CC
        for _ in range(int(WAIT / 0.05)):
            try:
                sock.sendall(b"\x03")  # a TPKT that never completes
            except OSError:
                break
            if _closed(sock):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the server kept a trickling client")
    server.sync()
    timeouts = [f for n, f in server.events_for(port) if n == "x400-timeout"]
    assert timeouts == [{"peer": f"127.0.0.1:{port}", "seconds": f"{BIND_TIMEOUT:g}"}]
    server.assert_healthy()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_bound_association_gone_silent_is_closed(server: LiveServer, mode: Mode) -> None:
    client = Client(server, mode)
    try:
        client.open()
        got = client.until(None)  # the server aborts and closes
    finally:
        client.close()
    assert any(isinstance(ev, Aborted) for ev in got), got
    server.sync()
    timeouts = [f for n, f in server.events_for(client.port) if n == "x400-timeout"]
    # The peer's association_lifetime is longer than idle_timeout, so it applies.
    seconds = f"{max(IDLE_TIMEOUT, PEER_LIFETIME):g}"
    assert timeouts == [{"peer": f"{PEER} (127.0.0.1:{client.port})", "seconds": seconds}]
    server.assert_healthy()


# ----------------------------------------------------------------------------- part 2a: mutations


@dataclass(frozen=True)
class Node:
    """One PDU (or PDU field) in a client stream: where it is, where its length field is."""

    layer: str
    start: int
    end: int
    length_at: int
    length_size: int


def _ber_nodes(data: bytes, base: int, depth: int, out: list[Node]) -> None:
    pos = 0
    while pos < len(data) and depth < 12:
        start = pos
        first = data[pos]
        pos += 1
        if first & 0x1F == 0x1F:
            while pos < len(data) and data[pos] & 0x80:
                pos += 1
            pos += 1
        if pos >= len(data):
            return
        length_at, lead = pos, data[pos]
        size = 1 + (lead & 0x7F if lead & 0x80 else 0)
        if lead == 0x80 or size > 4 or pos + size > len(data):
            return  # indefinite or broken: stop here
        length = lead if size == 1 else int.from_bytes(data[pos + 1 : pos + size], "big")
        pos += size
        end = min(pos + length, len(data))
        layer = f"ber-{depth}" if depth < 4 else "ber-deep"
        out.append(Node(layer, base + start, base + end, base + length_at, size))
        if first & 0x20:
            _ber_nodes(data[pos:end], base + pos, depth + 1, out)
        pos = end


def _spdu_length(data: bytes, pos: int) -> tuple[int, int]:
    """A session LI at `pos`: (value, size)."""
    if data[pos] == 0xFF:
        return int.from_bytes(data[pos + 1 : pos + 3], "big"), 3
    return data[pos], 1


def _spdu_params(data: bytes, base: int, start: int, end: int, out: list[Node]) -> None:
    pos = start
    while pos + 1 < end:
        code = data[pos]
        length, size = _spdu_length(data, pos + 1)
        value = pos + 1 + size
        out.append(Node("spdu-param", base + pos, base + value + length, base + pos + 1, size))
        if code in (0x01, 0x05):
            _spdu_params(data, base, value, value + length, out)
        elif code in (0xC1, 0xC2):
            _ber_nodes(data[value : value + length], base + value, 0, out)
        pos = value + length


def pdu_map(stream: bytes) -> list[Node]:
    """Every TPKT, TPDU, SPDU, SPDU parameter and BER element of a client stream."""
    out: list[Node] = []
    for offset, packet in _offsets(tpkts(stream)):
        out.append(Node("tpkt", offset, offset + len(packet), offset + 2, 2))
        out.append(Node("tpdu", offset + 4, offset + len(packet), offset + 4, 1))
        if packet[5] != 0xF0:
            continue
        base = offset + 4 + packet[4] + 1
        tsdu = packet[base - offset :]
        pos = 0
        while pos + 1 < len(tsdu):
            code = tsdu[pos]
            length, size = _spdu_length(tsdu, pos + 1)
            params = pos + 1 + size
            out.append(Node("spdu", base + pos, base + params + length, base + pos + 1, size))
            _spdu_params(tsdu, base, params, params + length, out)
            pos = params + length
            if code in (0x01, 0x02) and pos == 2:
                continue  # a GT/PT: the category 2 SPDU follows
            if code == 0x01:  # DT: the rest is user information
                _ber_nodes(tsdu[pos:], base + pos, 0, out)
            break
    return out


def _offsets(packets: list[bytes]) -> Iterator[tuple[int, bytes]]:
    offset = 0
    for packet in packets:
        yield offset, packet
        offset += len(packet)


@st.composite
def mutations(draw: st.DrawFn, stream: bytes) -> tuple[str, bytes]:
    """A stream with one mutation at one layer's PDU: (description, stream)."""
    nodes = pdu_map(stream)
    layer = draw(st.sampled_from(sorted({n.layer for n in nodes})))
    node = draw(st.sampled_from([n for n in nodes if n.layer == layer]))
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "length", "drop", "repeat"]))
    header = range(node.start, min(node.end, node.length_at + node.length_size + 4))
    if kind == "flip":
        at = draw(st.sampled_from(header))
        bit = draw(st.integers(min_value=0, max_value=7))
        out = stream[:at] + bytes([stream[at] ^ (1 << bit)]) + stream[at + 1 :]
        return f"{layer}: flip bit {bit} at {at}", out
    if kind == "truncate":
        at = draw(st.integers(min_value=node.start, max_value=max(node.start, node.end - 1)))
        return f"{layer}: truncate at {at}", stream[:at]
    if kind == "insert":
        at = draw(st.sampled_from([*header, node.end]))
        junk = draw(st.binary(min_size=1, max_size=8))
        return f"{layer}: insert {junk.hex()} at {at}", stream[:at] + junk + stream[at:]
    if kind == "length":
        at, size = node.length_at, node.length_size
        old = int.from_bytes(stream[at : at + size], "big")
        new = draw(
            st.one_of(
                st.sampled_from([old - 1, old + 1, 0, (1 << (8 * size)) - 1]),
                st.integers(min_value=0, max_value=(1 << (8 * size)) - 1),
            ).filter(lambda v: v != old and 0 <= v < 1 << (8 * size))
        )
        out = stream[:at] + new.to_bytes(size, "big") + stream[at + size :]
        return f"{layer}: length {old} -> {new} at {at}", out
    if kind == "drop":
        return f"{layer}: drop {node.start}:{node.end}", stream[: node.start] + stream[node.end :]
    piece = stream[node.start : node.end]
    return f"{layer}: repeat {node.start}:{node.end}", stream[: node.end] + piece + stream[
        node.end :
    ]


def test_pdu_map_finds_every_layer() -> None:
    layers = {n.layer for n in pdu_map(pp_stream("msg88.pcap"))}
    assert {"tpkt", "tpdu", "spdu", "spdu-param", "ber-0", "ber-3", "ber-deep"} <= layers
    assert {"tpkt", "spdu", "ber-0"} <= {n.layer for n in pdu_map(pp_stream("msgx410.pcap"))}


def _released(reply: bytes) -> bool:
    """Whether the server answered a release: a DT TPDU carrying a session DN."""
    return any(p[4:7] == b"\x02\xf0\x80" and p[7:8] == b"\x0a" for p in tpkts(reply))


def _check_ending(server: LiveServer, what: str, data: bytes, reply: bytes, port: int) -> None:
    """However the association ended, it ended alone and said why."""
    seen = server.events_for(port)
    for name, fields in seen:
        if name == "x400-association-aborted":
            assert fields["layer"] in LAYERS and f"127.0.0.1:{port}" in fields["peer"], fields
    names = {name for name, _ in seen}
    said = names & {"x400-association-aborted", "x400-timeout", "x400-bind-refused"}
    if "x400-association-opened" in names:
        assert said or _released(reply), (what, seen, reply.hex())
    server.assert_healthy()


@pytest.mark.timeout(240)
def test_mutated_pp_streams_abort_only_that_association(server: LiveServer) -> None:
    streams = {name: pp_stream(name) for name, _ in PP_CASES}

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(name=st.sampled_from(sorted(streams)), eof=st.booleans(), data=st.data())
    def one(name: str, eof: bool, data: st.DataObject) -> None:
        what, mutated = data.draw(mutations(streams[name]))
        reply, port = exchange(server, mutated, eof=eof)
        _check_ending(server, f"{name} {what}", mutated, reply, port)
        for n, fields in server.events_for(port):
            event(f"{n} {fields.get('layer', '')}".strip())
            seen.add(f"{n} {fields.get('layer', '')}".strip())

    seen: set[str] = set()

    one()
    # The mutations reached every layer: each aborts on its own (names as in events.py).
    layers = {name.rpartition(" ")[2] for name in seen if name.startswith("x400-association-ab")}
    assert {"transport", "session"} <= layers, seen
    assert layers & {"presentation", "acse", "rtse", "p1"}, seen
    for _, mode in PP_CASES:
        assert_transfers(server, mode)
    server.assert_healthy()


@pytest.mark.parametrize(("name", "mode"), PP_CASES)
def test_unmutated_pp_stream_is_stored(server: LiveServer, name: str, mode: Mode) -> None:
    reply, port = exchange(server, pp_stream(name), eof=False)
    names = [n for n, _ in server.events_for(port)]
    assert "x400-message-received" in names and "x400-association-aborted" not in names, names
    assert _released(reply)
    server.assert_healthy()


# ----------------------------------------------------------------------------- part 2b: misplaced


def _connect_tsdu(mode: Mode, rtse_apdu: bytes) -> bytes:
    """A session CN whose RTSE APDU is `rtse_apdu` (in an AARQ in 1988 mode)."""
    if mode is Mode.X410:
        user_data = rtse_apdu
    else:
        aarq = a.AARQ(
            application_context="2.6.0.1.6",
            user_information=(a.External(context_id=3, value=rtse_apdu),),
        )
        user_data = PresentationConnection().send_connect(
            [PDV(context_id=1, value=a.encode_apdu(aarq))], contexts=P1_CONTEXTS
        )
    session = s.SessionConnection(s.Role.INITIATOR)
    (tsdu,) = session.send(s.ConnectRequest(user_data=user_data))
    return tsdu


def _pdata(client: Client, context: int, value: bytes) -> bytes:
    """A session DT carrying `value` (in a P-DATA PDV in `context`, in 1988 mode)."""
    assoc = client.assoc
    payload = value if assoc.presentation is None else assoc.presentation.wrap([(context, value)])
    return dt(encode_tsdu(Spdu(type=SpduType.GT), Spdu(type=SpduType.DT, user_information=payload)))


PRE_OPEN: list[tuple[str, Layer]] = [
    ("dt-before-cn", Layer.SESSION),
    ("ac-from-initiator", Layer.SESSION),
    ("rttr-before-rtorq", Layer.RTSE),
    ("second-cr", Layer.TRANSPORT),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("case", "layer"), PRE_OPEN)
def test_misplaced_pdu_before_the_bind(
    server: LiveServer, mode: Mode, case: str, layer: Layer
) -> None:
    cr = tpkts(pp_stream(PP_CASES[MODES.index(mode)][0]))[0]
    rttr = r.encode_rtse_apdu(r.RTTR(data=b"\x04\x01x"))
    bad = {
        "dt-before-cn": dt(b"\x01\x00\x01\x00\x04\x01x"),
        "ac-from-initiator": dt(encode_tsdu(Spdu(type=SpduType.AC))),
        "rttr-before-rtorq": dt(_connect_tsdu(mode, rttr)),
        "second-cr": cr,
    }[case]
    _, port = exchange(server, cr + bad, eof=False)
    aborts = [f for n, f in server.events_for(port) if n == "x400-association-aborted"]
    assert aborts and aborts[0]["layer"] == layer.value, aborts
    assert aborts[0]["peer"] == f"127.0.0.1:{port}"
    server.assert_healthy()


OPEN_CASES: list[tuple[str, Layer, list[Mode]]] = [
    ("second-cr", Layer.TRANSPORT, MODES),
    ("second-cn", Layer.SESSION, MODES),
    # ACSE APDUs never travel in P-DATA: a PDV outside the RTSE context is refused there.
    ("aarq-in-data-phase", Layer.PRESENTATION, [Mode.NORMAL_1988]),
    ("rtorq-in-data-phase", Layer.RTSE, MODES),
    ("data-after-dr", Layer.TRANSPORT, MODES),
    ("ab-with-garbage", Layer.SESSION, MODES),
]


@pytest.mark.parametrize(
    ("case", "layer", "mode"),
    [(c, layer, m) for c, layer, modes in OPEN_CASES for m in modes],
)
def test_misplaced_pdu_after_the_bind(
    server: LiveServer, case: str, layer: Layer, mode: Mode
) -> None:
    client = Client(server, mode)
    try:
        client.open()
        rtorq = r.RTORQ(connection_data=r.Open(value=b"\xa0\x00"))
        aarq = a.encode_apdu(a.AARQ(application_context="2.6.0.1.6"))
        bad = {
            "second-cr": tpkts(pp_stream(PP_CASES[MODES.index(mode)][0]))[0],
            "second-cn": dt(_connect_tsdu(mode, r.encode_rtse_apdu(rtorq))),
            "aarq-in-data-phase": _pdata(client, 1, aarq),
            "rtorq-in-data-phase": _pdata(client, 3, r.encode_rtse_apdu(rtorq)),
            "data-after-dr": tpkt(b"\x06\x80\x00\x00\x00\x00\x00") + dt(b"\x01\x00\x01\x00\x04"),
            "ab-with-garbage": dt(b"\x19\x05\x11\x01\x03\xc1\x00" + b"\xff" * 3),
        }[case]
        client.raw(bad)
        got = client.until(None)
    finally:
        client.close()
    server.sync()
    aborts = [f for n, f in server.events_for(client.port) if n == "x400-association-aborted"]
    assert aborts and aborts[0]["layer"] == layer.value, aborts
    assert aborts[0]["peer"] == f"{PEER} (127.0.0.1:{client.port})"
    # What the server wrote says the same to the peer (a transport error is a DR or an ER).
    seen = [ev for ev in got if isinstance(ev, Aborted)]
    assert seen and seen[0].layer is layer, got
    server.assert_healthy()


# ----------------------------------------------------------------------------- part 2c: a pair


def _events(assoc: Association, data: bytes) -> list[Event]:
    assoc.receive_data(data)
    got = []
    while (ev := assoc.next_event()) is not NEED_DATA:
        assert not isinstance(ev, type(NEED_DATA))
        got.append(ev)
    return got


def _open_pair(mode: Mode, twa: bool = False) -> tuple[Association, Association]:
    cfg = AssociationSettings(checkpoint_size=0, two_way_alternate=twa)
    i = Association(role=Role.INITIATOR, mode=mode, settings=cfg)
    r_ = Association(role=Role.RESPONDER, mode=mode)
    _events(r_, i.send(Open(bind_argument=b"\x05\x00")))
    _events(i, r_.data_to_send())
    _events(r_, i.data_to_send())
    if r_.state is State.AWAIT_ACCEPT:
        _events(i, r_.send(Accept(bind_result=b"\x05\x00")))
    return i, r_


@pytest.mark.parametrize("mode", MODES)
def test_abort_crossing_a_refusal_is_no_protocol_error(mode: Mode) -> None:
    """Found by the state machine: the RF and the initiator's AB cross."""
    i = Association(role=Role.INITIATOR, mode=mode)
    r_ = Association(role=Role.RESPONDER, mode=mode)
    _events(r_, i.send(Open(bind_argument=b"\x05\x00")))
    _events(i, r_.data_to_send())
    (req,) = _events(r_, i.data_to_send())
    assert isinstance(req, OpenRequest)
    refusal = r_.send(Refuse(bind_error=b"\x02\x01\x02"))
    abort = i.send(Abort())
    assert _events(r_, abort) == [] and r_.state is State.CLOSED
    assert _events(i, refusal) == [] and i.state is State.CLOSED


@pytest.mark.parametrize("mode", MODES)
def test_tpdus_after_our_dr_are_ignored(mode: Mode) -> None:
    """Found by the state machine: the responder aborts after its CC (a DR) while the
    initiator's CN is on its way; the CN must not be reported as a protocol error."""
    i = Association(role=Role.INITIATOR, mode=mode)
    r_ = Association(role=Role.RESPONDER, mode=mode)
    _events(r_, i.send(Open(bind_argument=b"\x05\x00")))
    cc_and_dr = r_.send(Abort())
    (got,) = _events(i, cc_and_dr)
    assert isinstance(got, Aborted) and got.layer is Layer.TRANSPORT
    assert _events(r_, i.data_to_send()) == []  # the CN, sent before the DR was seen
    assert r_.state is State.CLOSED


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("crossing", ["activity-end", "release"])
def test_turn_request_crossing_is_no_protocol_error(mode: Mode, crossing: str) -> None:
    """Found by the state machine: in two-way-alternate the responder asks for the turn
    while the initiator's activity end (or release) is on its way."""
    i, r_ = _open_pair(mode, twa=True)
    assert i.has_turn and not r_.has_turn
    first: Event = Transfer(apdu=apdu_of(100)) if crossing == "activity-end" else Release()
    ahead = i.send(first)
    please = r_.send(RequestTurn(priority=1))
    got = _events(i, please)
    assert got == ([TurnRequested(priority=1)] if crossing == "activity-end" else [])
    if crossing == "activity-end":
        assert _events(r_, ahead) == [TransferReceived(apdu=apdu_of(100))]
        assert _events(i, r_.send(ConfirmTransfer())) == [TransferConfirmed()]
        assert _events(r_, i.send(GiveTurn())) == [TurnGiven()]
    else:
        assert _events(r_, ahead) == [Released()]
        assert _events(i, r_.data_to_send()) == [Released()]
    assert State.ERROR not in (i.state, r_.state)


def apdu_of(size: int) -> bytes:
    if size == 0:
        return b""
    body = bytes((i * 7 + size) % 251 for i in range(size))
    return ber.constructed(ber.context(0), ber.encode_octets(body))


SIDES = ("i", "r")
#: The user's calls, most useful first (Hypothesis favours the first of a sampled_from).
USER_ACTIONS = ("transfer", "confirm", "turn", "misuse", "release", "abort", "open", "answer")
# Rare choices (aborts, refusals) take the largest value: Hypothesis favours small ones.
RARELY = st.integers(min_value=0, max_value=15)


class AssociationPair(RuleBasedStateMachine):
    """An initiator and a responder joined by two byte pipes delivered in random chunks.

    The user's calls are made when they are legal (the preconditions), so that runs get far;
    `misuse` makes the illegal ones, which must raise LocalProtocolError and change nothing.
    """

    @initialize(
        mode=st.sampled_from(MODES),
        checkpoint=st.integers(min_value=0, max_value=2),
        window=st.integers(min_value=1, max_value=3),
        twa=st.booleans(),
        fresh=st.booleans(),
    )
    def setup(self, mode: Mode, checkpoint: int, window: int, twa: bool, fresh: bool) -> None:
        cfg = AssociationSettings(checkpoint_size=checkpoint, window_size=window)
        first = AssociationSettings(
            checkpoint_size=checkpoint, window_size=window, two_way_alternate=twa
        )
        self.mode = mode
        self.assoc = {
            "i": Association(role=Role.INITIATOR, mode=mode, settings=first),
            "r": Association(role=Role.RESPONDER, mode=mode, settings=cfg),
        }
        self.pipe = {side: bytearray() for side in SIDES}  # bytes in flight from side
        self.tcp_closed = {side: False for side in SIDES}
        self.sent: dict[str, list[bytes]] = {side: [] for side in SIDES}
        self.received: dict[str, list[bytes]] = {side: [] for side in SIDES}
        self.confirmed = {side: 0 for side in SIDES}
        self.seen: dict[str, list[Event]] = {side: [] for side in SIDES}
        self.pending_open = False
        if not fresh:  # half the runs start in the data phase, to get further in their steps
            self.open()
            self.deliver_until_quiet(size=3000)
            self.answer()
            self.deliver_until_quiet(size=3000)
            assert self.assoc["i"].state is State.OPEN is self.assoc["r"].state

    @staticmethod
    def other(side: str) -> str:
        return "r" if side == "i" else "i"

    def act(self, side: str, event: Event) -> None:
        """`side` sends `event`, which must be legal now."""
        self.pipe[side] += self.assoc[side].send(event)
        if isinstance(event, Transfer):
            self.sent[side].append(event.apdu)

    def pump(self, side: str) -> None:
        assoc = self.assoc[side]
        while (ev := assoc.next_event()) is not NEED_DATA:
            assert not isinstance(ev, type(NEED_DATA))
            self.seen[side].append(ev)
            if isinstance(ev, OpenRequest):
                self.pending_open = True
            elif isinstance(ev, TransferReceived):
                self.received[side].append(ev.apdu)
            elif isinstance(ev, TransferConfirmed):
                self.confirmed[side] += 1
            elif isinstance(ev, Aborted):
                assert ev.by_peer, f"{side} saw a protocol error: {ev} after {self.seen}"
        self.pipe[side] += assoc.data_to_send()

    def live(self, side: str) -> bool:
        return not self.tcp_closed[side]

    def sending(self, side: str) -> bool:
        """`side` may start a transfer (or give the turn, or release)."""
        assoc = self.assoc[side]
        return (
            self.live(side)
            and assoc.has_turn
            and assoc.sender is not None
            and assoc.sender.state is TransferState.IDLE
        )

    def awaiting_confirm(self, side: str) -> bool:
        assoc = self.assoc[side]
        return assoc.state is State.OPEN and assoc.receiver.state is TransferState.AWAIT_CONFIRM

    def twa(self) -> bool:
        return self.assoc["i"].dialogue_mode is r.DialogueMode.TWO_WAY_ALTERNATE

    # -- the user's calls (one rule, so that Hypothesis picks among few)

    @rule(
        action=st.sampled_from(USER_ACTIONS),
        side=st.sampled_from(SIDES),
        size=st.integers(min_value=1, max_value=5000),
        rare=RARELY,
    )
    def user(self, action: str, side: str, size: int, rare: int) -> None:
        getattr(self, action)(side, size, rare)

    def open(self, *_: object) -> None:
        if self.assoc["i"].state is State.IDLE:
            self.act("i", Open(bind_argument=b"\xa1\x03\x80\x01A"))

    def answer(self, _side: str = "r", _size: int = 0, rare: int = 0) -> None:
        if self.assoc["r"].state is not State.AWAIT_ACCEPT or not self.live("r"):
            return
        if rare < 15:
            self.act("r", Accept(bind_result=b"\xa1\x03\x80\x01B"))
        else:
            self.act("r", Refuse(bind_error=b"\x02\x01\x02"))

    def transfer(self, side: str, size: int, rare: int) -> None:
        side = side if self.sending(side) else self.other(side)
        if not self.sending(side):
            return
        if self.mode is Mode.NORMAL_1988 and rare == 15:
            size = 0  # an empty APDU is legal in normal mode
        self.act(side, Transfer(apdu=apdu_of(size)))

    def confirm(self, side: str, *_: object) -> None:
        side = side if self.awaiting_confirm(side) else self.other(side)
        if self.awaiting_confirm(side) and self.live(side):
            self.act(side, ConfirmTransfer())

    def turn(self, side: str, *_: object) -> None:
        assoc = self.assoc[side]
        if not self.twa() or assoc.state is not State.OPEN or not self.live(side):
            return
        if self.sending(side):
            self.act(side, GiveTurn())
        elif not assoc.has_turn:
            try:
                self.act(side, RequestTurn(priority=1))
            except LocalProtocolError:
                # Not while a received transfer awaits its confirmation (a limitation).
                assert assoc.receiver.state is not TransferState.IDLE

    def release(self, _side: str, _size: int, rare: int) -> None:
        if self.sending("i") and rare >= 12:
            self.act("i", Release())

    def abort(self, side: str, _size: int, rare: int) -> None:
        assoc = self.assoc[side]
        if rare < 15 or not self.live(side) or assoc.state in (State.CLOSED, State.ERROR):
            return
        if assoc.state is State.IDLE and side == "i":
            return
        self.act(side, Abort())

    def misuse(self, side: str, _size: int, rare: int) -> None:
        """An illegal call raises LocalProtocolError and changes nothing."""
        assoc = self.assoc[side]
        which = rare % 7
        event: Event
        if which == 0:
            event = Released()  # received only
        elif which == 1 and (side == "r" or assoc.state is not State.IDLE):
            event = Open(bind_argument=b"\x05\x00")
        elif which == 2 and (side == "i" or assoc.state is not State.AWAIT_ACCEPT):
            event = Accept(bind_result=b"\x05\x00")
        elif which == 3 and not self.awaiting_confirm(side):
            event = ConfirmTransfer()
        elif which == 4 and not assoc.has_turn:
            event = Transfer(apdu=apdu_of(10))
        elif which == 5 and (side == "r" or assoc.state is not State.OPEN):
            event = Release()
        elif which == 6 and not self.twa():
            event = GiveTurn()
        else:
            return
        before = (assoc.state, assoc.has_turn, len(self.pipe[side]))
        with pytest.raises(LocalProtocolError):
            assoc.send(event)
        assert (assoc.state, assoc.has_turn, len(self.pipe[side])) == before
        assert assoc.data_to_send() == b""

    # -- the network

    @precondition(lambda self: any(self.pipe.values()))
    @rule(side=st.sampled_from(SIDES), size=st.integers(min_value=1, max_value=3000))
    def deliver(self, side: str, size: int) -> None:
        to = self.other(side)
        chunk = bytes(self.pipe[side][:size])
        del self.pipe[side][:size]
        if self.tcp_closed[to]:
            return  # the reader is gone: the bytes are lost
        self.assoc[to].receive_data(chunk)
        self.pump(to)

    @precondition(lambda self: any(self.pipe.values()))
    @rule(size=st.integers(min_value=1, max_value=3000))
    def deliver_until_quiet(self, size: int) -> None:
        for _ in range(10_000):
            if not any(self.pipe.values()):
                return
            for side in SIDES:
                if self.pipe[side]:
                    self.deliver(side, size)
        raise AssertionError("the two sides never went quiet")

    @precondition(
        lambda self: any(
            self.live(side)
            and not self.pipe[side]
            and self.assoc[side].state in (State.CLOSED, State.ERROR)
            for side in SIDES
        )
    )
    @rule()
    def close_tcp(self) -> None:
        """A side in CLOSED or ERROR closes TCP once its bytes are out (as the drivers do)."""
        for side in SIDES:
            assoc = self.assoc[side]
            if (
                self.live(side)
                and not self.pipe[side]
                and assoc.state in (State.CLOSED, State.ERROR)
            ):
                self.tcp_closed[side] = True
                to = self.other(side)
                if self.live(to):
                    self.assoc[to].receive_data(b"")
                    self.pump(to)
                return

    def teardown(self) -> None:
        if hasattr(self, "assoc"):
            event(f"states {self.assoc['i'].state.name}/{self.assoc['r'].state.name}")
            event(f"transfers received: {min(3, sum(map(len, self.received.values())))}")
            event(f"mode {self.mode.value} {'twa' if self.twa() else 'monologue'}")

    # -- what must always hold

    @invariant()
    def transfers_arrive_once_and_intact(self) -> None:
        for side in SIDES:
            to = self.other(side)
            got = self.received[to]
            assert got == self.sent[side][: len(got)], "a transfer was changed or duplicated"
            assert self.confirmed[side] <= len(got), "confirmed but never received"

    @invariant()
    def states_agree_when_quiet(self) -> None:
        if any(self.pipe.values()):
            return
        i, r_ = self.assoc["i"], self.assoc["r"]
        assert State.ERROR not in (i.state, r_.state)
        if any(isinstance(ev, Released) for ev in self.seen["i"] + self.seen["r"]):
            assert i.state is State.CLOSED and r_.state is State.CLOSED
        if i.state is State.OPEN and r_.state is State.OPEN:
            assert i.has_turn != r_.has_turn, "exactly one side holds the turn"
            assert (i.checkpoint_size, i.window_size) == (r_.checkpoint_size, r_.window_size)


AssociationPair.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_association_pair = AssociationPair.TestCase
