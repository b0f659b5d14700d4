"""tshark decodes Waypost's own P1 traffic: no malformed packets, the fields that were sent.

Two Waypost services transfer a P22 message in process (as in test_x400_association.py),
A's association running through a small recording TCP relay. The recorded byte streams
become a libpcap file (tests/pcap_writer.py) that tshark, an independent decoder, reads
with `-o tpkt.tcp.ports:102,<B's port>`:

- 1988 normal mode: no frame matches `_ws.malformed`; the bind names, the MTS identifier,
  originator, recipient and content type it decodes are the ones sent.
- X.410 mode: the only malformed mark is `pres.invalid_offset`, which tshark puts on every
  X.410-mode transfer (it hands the session data to its presentation dissector; PP's
  capture in /work/shared/vectors/pp/msgx410.pcap gets the same mark); the bind names and
  the RTSE application protocol it decodes are the ones sent (tshark cannot decode the
  message itself there).
- Reports and probes (1988 mode): nothing malformed; the report's destination, subject
  identifier, actual recipient, reason and diagnostic codes and supplementary information,
  and the probe's identifier, originator, recipient, content type and length, as sent.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from helpers import free_port
from interop_helpers import require_tool
from pcap import tcp_streams
from pcap_writer import TcpCapture
from test_x400_association import MTS_ID, message, start, wait_for_file

from waypost.message import ContentType, Envelope, Message, ObjectKind, Recipient
from waypost.service import Service
from waypost.x400.report_maker import RecipientFate, build_report

pytestmark = pytest.mark.interop

# What message() sends (see test_x400_association.py), as tshark shows it.
SENT_LOCAL_ID = MTS_ID.rpartition(";")[2]  # "local-1"
SENT_ORIGINATOR_SURNAME = "Smith"
SENT_RECIPIENT_SURNAMES = ["Jones"]
P22_1988 = "22"  # content type interpersonal-messaging-1988
MTS_TRANSFER_PROTOCOL = "12"  # RTSE application protocol of X.410-mode P1
ID_AC_MTS_TRANSFER = "2.6.0.1.6"  # the 1988 application context
PRESENTATION_MODE = {"1988": "1", "x410": "0"}  # normal-mode, x410-1984-mode
X410_NOISE = "pres.invalid_offset"
LOOPBACK_MSS = 65495  # chunks as the relay read them (they are shorter)
SMALL_MSS = 64  # every TPKT spans several segments: tshark must reassemble them


# --- a recording relay -----------------------------------------------------------------


@dataclass(slots=True)
class Connection:
    """One relayed TCP connection: what each side sent, in order, with a timestamp."""

    client_port: int
    start: float
    # (time, from_client, data); data b"" means that side closed its direction (FIN).
    events: list[tuple[float, bool, bytes]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def capture(self, server_port: int, max_segment: int) -> TcpCapture:
        """The connection as frames; a chunk longer than `max_segment` is split."""
        cap = TcpCapture(
            client_port=self.client_port, server_port=server_port, max_segment=max_segment
        )
        cap.handshake(self.start)
        for t, from_client, data in self.events:
            if data:
                cap.send(t, from_client=from_client, data=data)
            else:
                cap.fin(t, from_client=from_client)
        return cap


class RecordingRelay:
    """Listens on a loopback port and relays every connection to `target_port`, recording."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections: list[Connection] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        conn = Connection(client_port=c_writer.get_extra_info("peername")[1], start=time.time())
        self.connections.append(conn)
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(
                self._pump(conn, c_reader, s_writer, from_client=True),
                self._pump(conn, s_reader, c_writer, from_client=False),
            )
            for writer in (c_writer, s_writer):
                writer.close()
        finally:
            conn.done.set()

    @staticmethod
    async def _pump(
        conn: Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        from_client: bool,
    ) -> None:
        while True:
            try:
                data = await reader.read(1 << 16)
            except OSError:
                data = b""  # a reset: the capture shows it as a close
            conn.events.append((time.time(), from_client, data))
            try:
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
            except OSError:  # the other side is gone already
                return


# --- the association and its capture ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Captured:
    """A libpcap file of one association, B's port (the TPKT port) and what each side sent."""

    pcap: Path
    server_port: int
    client_to_server: bytes
    server_to_client: bytes
    conn: Connection

    def resegmented(self, max_segment: int) -> Captured:
        """The same association with no TCP segment longer than `max_segment` bytes."""
        pcap = self.pcap.with_name(f"{self.pcap.stem}-mss{max_segment}.pcap")
        self.conn.capture(self.server_port, max_segment).write(pcap)
        return replace(self, pcap=pcap)


async def capture_transfer(
    tmp_path: Path, mode: str, objects: list[Message] | None = None
) -> Captured:
    """A transfers message() (or `objects`) to B through a recording relay; the capture of
    that association.

    The set-up is pair() of test_x400_association.py with A's peer address at the relay.
    """
    b_port = free_port()
    relay = RecordingRelay(b_port)
    relay_port = await relay.start()
    services: list[Service] = []
    try:
        b = await start(
            tmp_path,
            "b",
            b_port,
            '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:1"\n'
            'peer_password = "secret-a"\nour_password = "secret-b"\n',
            local='oraddresses = ["/C=GB/ADMD= /PRMD=B/"]\n',
        )
        services.append(b)
        a = await start(
            tmp_path,
            "a",
            free_port(),
            '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=B/"\nnext_hop = "x400:B-MTA"\n'
            f'[[x400.peer]]\nname = "B-MTA"\naddress = "127.0.0.1:{relay_port}"\n'
            f'mode = "{mode}"\nour_name = "A-MTA"\nour_password = "secret-a"\n'
            'peer_password = "secret-b"\ncheckpoint_size = 1\nwindow_size = 3\n',
        )
        services.insert(0, a)
        if objects is None:
            await a.submit(message())
            await wait_for_file(Path(b.config.local.x400_store))
        else:
            for obj in objects:
                await a.submit(obj)
            await wait_for_transfers(a, len(objects))
        while services:  # A releases its parked association as it stops
            await services.pop(0).stop()
        assert len(relay.connections) == 1, "A should have opened exactly one association"
        conn = relay.connections[0]
        await asyncio.wait_for(conn.done.wait(), 10)
    finally:
        for svc in services:
            await svc.stop()
        await relay.close()
    sent_c = b"".join(d for _, fc, d in conn.events if fc)
    sent_s = b"".join(d for _, fc, d in conn.events if not fc)
    name = "objects" if objects is not None else "message"
    pcap = conn.capture(b_port, LOOPBACK_MSS).write(tmp_path / f"p1-{mode}-{name}.pcap")
    return Captured(
        pcap=pcap, server_port=b_port, client_to_server=sent_c, server_to_client=sent_s, conn=conn
    )


async def wait_for_transfers(svc: Service, count: int) -> None:
    """Until `count` recipients have been transferred (delivered) by `svc`."""
    for _ in range(200):
        if svc.manager.counters["delivered"] >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{svc.manager.counters['delivered']} of {count} transferred")


# --- tshark ---------------------------------------------------------------------------


def tshark(cap: Captured, *args: str) -> str:
    tool = require_tool("tshark")
    result = subprocess.run(
        [tool, "-n", "-r", str(cap.pcap), "-o", f"tpkt.tcp.ports:102,{cap.server_port}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def descendants(node: ET.Element, name: str) -> Iterator[ET.Element]:
    return (f for f in node.iter("field") if f.get("name") == name)


def shows(node: ET.Element, name: str) -> list[str]:
    return [f.get("show", "") for f in descendants(node, name)]


def pdml(cap: Captured) -> ET.Element:
    return ET.fromstring(tshark(cap, "-T", "pdml"))


@pytest.fixture(scope="module")
def tshark_path() -> str:
    return require_tool("tshark")


# --- the tests --------------------------------------------------------------------------


async def test_the_capture_holds_the_bytes_each_side_sent(tmp_path: Path) -> None:
    """The synthetic pcap reassembles to the recorded streams (checked by tests/pcap.py)."""
    cap = await capture_transfer(tmp_path, "1988")
    (stream,) = tcp_streams(cap.pcap)
    assert stream.server_port == cap.server_port
    assert stream.client_to_server == cap.client_to_server
    assert stream.server_to_client == cap.server_to_client
    assert cap.client_to_server[:2] == b"\x03\x00"  # TPKT version 3: a CR TPDU opens it
    assert len(cap.client_to_server) > 300 and len(cap.server_to_client) > 50


async def test_tshark_finds_no_malformed_packet_in_1988_mode(
    tmp_path: Path, tshark_path: str
) -> None:
    cap = await capture_transfer(tmp_path, "1988")
    assert tshark(cap, "-Y", "_ws.malformed") == ""
    # ... and it did decode the association as P1, not just as bytes on TCP.
    summary = tshark(cap)
    assert "Bind-Argument A-MTA" in summary and "Bind-Result B-MTA" in summary, summary
    assert "P22" in summary, summary


def assert_bind_as_sent(root: ET.Element, mode: str) -> None:
    """The bind both sides sent: names, presentation mode, RTSE parameters (request, answer)."""
    assert shows(root, "p1.authenticated.initiator-name") == ["A-MTA"]
    assert shows(root, "p1.authenticated.responder-name") == ["B-MTA"]
    assert shows(root, "pres.mode_value") == [PRESENTATION_MODE[mode]] * 2
    assert shows(root, "rtse.checkpointSize") == ["1", "1"]  # A's checkpoint_size = 1
    assert shows(root, "rtse.windowSize") == ["3", "3"]  # A's window_size = 3
    if mode == "1988":  # AARQ and AARE name the application context
        assert shows(root, "acse.aSO_context_name") == [ID_AC_MTS_TRANSFER] * 2
        assert shows(root, "rtse.applicationProtocol") == []
    else:  # X.410 mode has no ACSE; RTORQ names the application protocol
        assert shows(root, "acse.aSO_context_name") == []
        assert shows(root, "rtse.applicationProtocol") == [MTS_TRANSFER_PROTOCOL]


def assert_decodes_what_was_sent(cap: Captured) -> None:
    root = pdml(cap)
    assert_bind_as_sent(root, "1988")
    (packet,) = (p for p in root.iter("packet") if any(descendants(p, "p1.message_element")))
    (envelope,) = descendants(packet, "p1.envelope_element")
    (mts_id,) = descendants(envelope, "p1.message_identifier_element")
    assert shows(mts_id, "p1.local_identifier") == [SENT_LOCAL_ID]
    assert shows(mts_id, "p1.iso_3166_alpha2_code") == ["GB"]
    assert shows(mts_id, "p1.printable") == [" ", "A"]  # ADMD " ", PRMD A
    (originator,) = descendants(envelope, "p1.originator_name_element")
    assert shows(originator, "p1.surname") == [SENT_ORIGINATOR_SURNAME]
    recipients = list(descendants(envelope, "p1.recipient_name_element"))
    assert [s for r in recipients for s in shows(r, "p1.surname")] == SENT_RECIPIENT_SURNAMES
    assert [s for r in recipients for s in shows(r, "p1.printable")] == [" ", "B"]
    assert shows(envelope, "p1.built_in") == [P22_1988]
    # The content, dissected as P22 in the same frame, is the IPM message() built.
    assert shows(packet, "p22.subject") == ["Hello"]


async def test_tshark_decodes_what_was_sent_in_1988_mode(tmp_path: Path, tshark_path: str) -> None:
    cap = await capture_transfer(tmp_path, "1988")
    assert_decodes_what_was_sent(cap)
    # Cut into small TCP segments, the same bytes decode the same, with nothing malformed.
    small = cap.resegmented(SMALL_MSS)
    assert tshark(small, "-Y", "_ws.malformed") == ""
    assert_decodes_what_was_sent(small)
    assert max(map(int, tshark(small, "-T", "fields", "-e", "tcp.len").split())) == SMALL_MSS


async def test_tshark_flags_only_its_x410_limit_in_x410_mode(
    tmp_path: Path, tshark_path: str
) -> None:
    cap = await capture_transfer(tmp_path, "x410")
    assert tshark(cap, "-Y", f"_ws.malformed && !{X410_NOISE}") == ""
    # The noise is where PP's X.410 capture has it: on the frame carrying the message.
    noisy = tshark(cap, "-Y", X410_NOISE, "-T", "fields", "-e", "frame.number").split()
    lines = tshark(
        cap,
        "-Y",
        f"tcp.dstport == {cap.server_port}",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "tcp.len",
    ).splitlines()
    from_a = {int(n): int(size) for n, size in (line.split() for line in lines)}
    assert noisy == [str(max(from_a, key=from_a.__getitem__))], (noisy, from_a)


async def test_tshark_decodes_the_bind_in_x410_mode(tmp_path: Path, tshark_path: str) -> None:
    cap = await capture_transfer(tmp_path, "x410")
    assert_bind_as_sent(pdml(cap), "x410")


# --- reports and probes --------------------------------------------------------------

JONES_AT_B = "/C=GB/ADMD= /PRMD=B/S=Jones/"
SMITH_AT_B = "/C=GB/ADMD= /PRMD=B/S=Smith/"


def report_and_probe() -> list[Message]:
    """A non-delivery report to a B originator about its message, and a probe to B."""
    subject = Envelope(
        mts_id="/C=GB/ADMD= /PRMD=B/;subject-1",
        originator=SMITH_AT_B,
        recipients=[Recipient(address="/C=GB/ADMD= /PRMD=A/S=Nobody/")],
        content_type=ContentType.P22,
    )
    report = build_report(
        subject=subject,
        content=b"",
        outcomes=[RecipientFate(rcpt_index=0, delivered=False, detail="5.1.1 unknown", when=1e9)],
        received_at=1e9,
        domain="/C=GB/ADMD= /PRMD=A/",
        now=1e9,
    )
    sent = message()
    probe = Envelope(
        mts_id="/C=GB/ADMD= /PRMD=A/;probe-1",
        originator=sent.envelope.originator,
        recipients=[Recipient(address=JONES_AT_B, originally_specified_number=1)],
        content_type=ContentType.P22,
        object_kind=ObjectKind.PROBE,
        content_length=1024,
    )
    return [report, Message(envelope=probe, content=b"")]


async def test_tshark_decodes_reports_and_probes_as_sent(tmp_path: Path, tshark_path: str) -> None:
    cap = await capture_transfer(tmp_path, "1988", report_and_probe())
    assert tshark(cap, "-Y", "_ws.malformed") == ""
    root = pdml(cap)
    (report,) = (p for p in root.iter("packet") if any(descendants(p, "p1.report_element")))
    (destination,) = descendants(report, "p1.report_destination_name_element")
    assert shows(destination, "p1.surname") == ["Smith"]
    (subject,) = descendants(report, "p1.subject_identifier_element")
    assert shows(subject, "p1.local_identifier") == ["subject-1"]
    (fate,) = descendants(report, "p1.PerRecipientReportTransferFields_element")
    (actual,) = descendants(fate, "p1.actual_recipient_name_element")
    assert shows(actual, "p1.surname") == ["Nobody"]
    assert shows(fate, "p1.non_delivery_reason_code") == ["1"]  # unable-to-transfer
    assert shows(fate, "p1.non_delivery_diagnostic_code") == ["0"]  # unrecognised-OR-name
    assert shows(fate, "p1.supplementary_information") == ["5.1.1 unknown"]
    (probe,) = (p for p in root.iter("packet") if any(descendants(p, "p1.probe_element")))
    (probe_id,) = descendants(probe, "p1.probe_identifier_element")
    assert shows(probe_id, "p1.local_identifier") == ["probe-1"]
    assert shows(probe, "p1.content_length") == ["1024"]
    (originator,) = descendants(probe, "p1.originator_name_element")
    assert shows(originator, "p1.surname") == ["Smith"]
    assert shows(probe, "p1.built_in") == [P22_1988]
    (recipient,) = descendants(probe, "p1.PerRecipientProbeTransferFields_element")
    assert shows(recipient, "p1.surname") == ["Jones"]
