"""The MIXER gateway end to end, between real processes: Postfix's smtp-source and
smtp-sink on the mail side, two `waypost serve` processes over P1 on the X.400 side, and
tshark decoding the P1 traffic that leaves the gateway.

A is the gateway (global domain /C=GB/ADMD= /PRMD=A/): its mail users live in a.example
(local Maildirs, reached from X.400 as /…/PRMD=A/O=Users/), B's X.400 users are
Given.Surname@b.example, and other mail domains are carried under the gateway's O/R
address (RFC 2156 §4.3.5's RFC-822 domain-defined attribute). B (/C=GB/ADMD= /PRMD=B/) is
an X.400 MTA with a store for Smith and Jones. Checked here:

- mail with a PDF and a PNG attached, sent by smtp-source to A, is a P22 IPM in B's store
  with the heading and body parts sent, and tshark decodes A's association to B with
  nothing malformed, the subject, the FTBPs' names, types and octets as sent; to a peer in
  X.410 (1984) mode it goes as P2 (content type 2) when P2 can carry it;
- an IPM with a file-transfer body part from B reaches a local Maildir and smtp-sink as
  MIME, the attachment's name and octets as sent, with the X400-* fields;
- an unknown recipient comes back across the gateway as the other world's report: B's
  X.411 non-delivery report as a DSN, smtp-sink's 550 as an X.411 report in B's store;
- a loop through the gateway ends as a non-delivery with loop-detected after a bounded
  number of crossings, whichever world closes it;
- mail to the gateway's own "/…/"@domain form with 8-bit UTF-8 text and a non-ASCII
  filename crosses octet for octet, and NOTIFY=SUCCESS comes back as a DSN "delivered";
  a probe from B for a mail recipient is answered by A's gateway.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port
from interop_helpers import (
    SMTP_SOURCE,
    SmtpSink,
    Waypost,
    require_tool,
    stop_all,
    wait_for,
)
from test_x400_tshark import (
    LOOPBACK_MSS,
    X410_NOISE,
    Captured,
    RecordingRelay,
    assert_bind_as_sent,
    descendants,
    pdml,
    shows,
    tshark,
)

from waypost.arrival import Arrival, Source
from waypost.clock import SystemClock
from waypost.config import load_config
from waypost.message import ContentType, Envelope, Message, ObjectKind, Recipient, ReportRequest
from waypost.setup.intake import build_intake, database_path
from waypost.store.database import Database
from waypost.x400.ipm_bodies import BilaterallyDefined, FileTransfer, IA5Text
from waypost.x400.ipm_codec import InterpersonalMessage, decode_ipm, encode_ipm
from waypost.x400.ipm_heading import IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu
from waypost.x400.p1_objects import decode_object
from waypost.x400.p1_report import ReportContent, decode_report_content

pytestmark = pytest.mark.interop

DOMAIN_A = "/C=GB/ADMD= /PRMD=A/"
DOMAIN_B = "/C=GB/ADMD= /PRMD=B/"
GATEWAY_OR = "/C=GB/ADMD= /PRMD=A/O=Gateway/"
A_USERS = "/C=GB/ADMD= /PRMD=A/O=Users/"  # ⇄ a.example: A's mailboxes, seen from X.400
LOOP = "/C=GB/ADMD= /PRMD=Loop/"  # ⇄ loop.example: routed in a circle on purpose
SMITH = "/C=GB/ADMD= /PRMD=B/S=Smith/G=Jo/"  # Jo.Smith@b.example
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/G=Al/"  # Al.Jones@b.example
BOB = "Bob.Brown@a.example"
BOB_OR = "/C=GB/ADMD= /PRMD=A/O=Users/S=Brown/G=Bob/"
PASSWORD = "pw"

# What the gateway decodes; tshark shows the FTBP's name, MIME type and octets.
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
# The CRLF before a boundary is the boundary's (RFC 2046 §5.1.1): the text ends without one.
TEXT = "The Q3 figures are attached,\r\nwith the chart."
TEXT_LF = TEXT.replace("\r\n", "\n")  # as the file smtp-source reads has it
SUBJECT = "Q3 figures with a chart"
THIS_IPM = "q3.figures(a)a.example"  # from Message-ID: <q3.figures@a.example>


# --- the two MTAs -----------------------------------------------------------------------


def peer(name: str, port: int, mode: str = "1988") -> str:
    # checkpoint_size and window_size as test_x400_tshark.py sets them, which
    # assert_bind_as_sent checks in the capture.
    return (
        f'[[x400.peer]]\nname = "{name}"\naddress = "127.0.0.1:{port}"\nmode = "{mode}"\n'
        f'our_password = "{PASSWORD}"\npeer_password = "{PASSWORD}"\n'
        "checkpoint_size = 1\nwindow_size = 3\n"
    )


def mapping(oraddress: str, domain: str) -> str:
    return f'[[mixer.mapping]]\noraddress = "{oraddress}"\ndomain = "{domain}"\n'


@dataclass
class Pair:
    """A, the gateway; B, the X.400 MTA; the sinks A relays remote mail to."""

    a: Waypost
    b: Waypost
    sink: SmtpSink  # remote.example: accepts everything
    rejecting: SmtpSink  # reject.example: 550 to every recipient
    relay: ThreadedRelay | None  # records A's associations to B when asked for


class ThreadedRelay:
    """test_x400_tshark.py's RecordingRelay on an event loop of its own, in a thread: the
    tests wait for the processes by polling, which would stall a relay on their loop."""

    def __init__(self, target_port: int) -> None:
        self.relay = RecordingRelay(target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self._run(self.relay.start())

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def capture(self, path: Path) -> Captured:
        """The one association relayed, once both sides have closed it, as a pcap."""
        assert len(self.relay.connections) == 1, "A should have opened exactly one association"
        conn = self.relay.connections[0]
        self._run(asyncio.wait_for(conn.done.wait(), 20))
        conn.capture(self.relay.target_port, LOOPBACK_MSS).write(path)
        return Captured(
            pcap=path,
            server_port=self.relay.target_port,
            client_to_server=b"".join(d for _, fc, d in conn.events if fc),
            server_to_client=b"".join(d for _, fc, d in conn.events if not fc),
            conn=conn,
        )

    def close(self) -> None:
        self._run(self.relay.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def relays() -> Iterator[Callable[[int], ThreadedRelay]]:
    made: list[ThreadedRelay] = []

    def make(target_port: int) -> ThreadedRelay:
        made.append(ThreadedRelay(target_port))
        return made[-1]

    yield make
    for relay in made:
        relay.close()


@pytest.fixture
def pair(
    tmp_path: Path,
    make_sink: Callable[..., SmtpSink],
    relays: Callable[[int], ThreadedRelay],
) -> Iterator[Callable[..., Pair]]:
    """`pair(mode=..., capture=...)`: B, then A, started, A's peer B in `mode`; with
    `capture`, A reaches B through a recording relay. Both are stopped (exit 0, no
    traceback) at teardown."""
    started: list[Waypost] = []

    def make(mode: str = "1988", *, capture: bool = False) -> Pair:
        sink = make_sink()
        rejecting = make_sink("-f", "RCPT", "-B", "550 5.1.1 no such user")
        a_port, b_port = free_port(), free_port()
        relay = relays(b_port) if capture else None
        b = Waypost(
            tmp_path / "b",
            settings={
                "x400": {
                    "listen": [f"127.0.0.1:{b_port}"],
                    "mta_name": "B-MTA",
                    "global_domain": DOMAIN_B,
                },
                "local": {"oraddresses": [DOMAIN_B], "x400_mailboxes": [SMITH, JONES]},
            },
            routes=[(DOMAIN_A, "x400:A-MTA"), (LOOP, "x400:A-MTA")],
            extra=peer("A-MTA", a_port),
        )
        a = Waypost(
            tmp_path / "a",
            settings={
                "local": {"domains": ["a.example"]},
                "x400": {
                    "listen": [f"127.0.0.1:{a_port}"],
                    "mta_name": "A-MTA",
                    "global_domain": DOMAIN_A,
                },
                "mixer": {"enabled": True, "domain": "gw.a.example", "oraddress": GATEWAY_OR},
            },
            routes=[
                # B's users and the loop's are X.400 users: their mail goes through the
                # gateway, their O/R addresses to B.
                ("b.example", "gateway:mixer"),
                ("loop.example", "gateway:mixer"),
                (DOMAIN_B, "x400:B-MTA"),
                (LOOP, "x400:B-MTA"),
                # A's own mailboxes read X.400 mail as MIME.
                (A_USERS, "gateway:mixer"),
                ("remote.example", sink.next_hop),
                ("reject.example", rejecting.next_hop),
            ],
            extra=mapping(DOMAIN_B, "b.example")
            + mapping(A_USERS, "a.example")
            + mapping(LOOP, "loop.example")
            + peer("B-MTA", relay.port if relay else b_port, mode),
        )
        for wp in (b, a):
            started.append(wp)
            wp.start()
        return Pair(a=a, b=b, sink=sink, rejecting=rejecting, relay=relay)

    yield make
    stop_all(started)


# --- what goes in, what comes out -----------------------------------------------------


def b64(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def mail_with_attachments(subject: str = SUBJECT) -> str:
    """multipart/mixed: a text part, a PDF and a PNG, each attachment with its filename."""
    return (
        f"From: Bob Brown <{BOB}>\n"
        "To: Jo Smith <Jo.Smith@b.example>\n"
        "Cc: Al Jones <Al.Jones@b.example>\n"
        f"Subject: {subject}\n"
        "Date: Thu, 03 Dec 2026 10:00:00 +0000\n"
        "Message-ID: <q3.figures@a.example>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="=-=figures=-="\n'
        "\n"
        "--=-=figures=-=\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        f"{TEXT_LF}\n"
        "--=-=figures=-=\n"
        "Content-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="q3.pdf"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{b64(PDF)}\n"
        "--=-=figures=-=\n"
        'Content-Type: image/png; name="chart.png"\n'
        'Content-Disposition: attachment; filename="chart.png"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{b64(PNG)}\n"
        "--=-=figures=-=--\n"
    )


def smtp_source(port: int, message: Path, sender: str, recipient: str) -> None:
    """Postfix's smtp-source sends the pre-formatted message as it is (-F)."""
    source = require_tool(SMTP_SOURCE)
    result = subprocess.run(
        [source, "-F", str(message), "-f", sender, "-t", recipient, f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def submit_x400(wp: Waypost, message: Message) -> None:
    """What `waypost submit` does, for an IPM built here: the process's own intake routes
    it and its database holds it, and the running `waypost serve` delivers it."""
    config = load_config(wp.config)
    new = build_intake(config, SystemClock()).admit(message, Arrival(source=Source.SUBMIT))
    assert new is not None
    db = Database.open(database_path(config))
    try:
        with db.transaction():
            db.enqueue(new, time.time(), config.queue.max_lifetime)
    finally:
        db.close()


def ipm_from_jones(local: str, recipients: list[str], subject: str, *body: Any) -> Message:
    heading = IPMHeading(
        this_ipm=IPMIdentifier(user=JONES, local=f"ipm-{local}"),
        originator=ORDescriptor(address=JONES),
        primary_recipients=tuple(ORDescriptor(address=r) for r in recipients),
        subject=subject,
    )
    envelope = Envelope(
        mts_id=f"{DOMAIN_B};{local}",
        originator=JONES,
        recipients=[
            Recipient(address=r, originally_specified_number=i + 1)
            for i, r in enumerate(recipients)
        ],
        content_type=ContentType.P22,
        arrival=time.time(),
    )
    content = encode_ipm(InterpersonalMessage(heading=heading, body=body))
    return Message(envelope=envelope, content=content)


def under_gateway(mailbox: str) -> str:
    """A mail address as X.400 names it: the gateway's O/R address and an RFC-822 DDA
    (RFC 2156 §4.3.5, `(a)` for `@`)."""
    return f"{GATEWAY_OR}DDA:RFC-822={mailbox.replace('@', '(a)')}/"


def store_files(wp: Waypost, n: int = 1, timeout: float = 30) -> list[Path]:
    root = wp.data / "x400store"
    return wait_for(
        lambda: len(found := sorted(root.glob("*/new/*.p1"))) >= n and found,
        timeout,
        f"{n} object(s) in {root}",
    )


def stored_message(path: Path) -> tuple[Envelope, bytes]:
    apdu = decode_mts_apdu(path.read_bytes())
    assert isinstance(apdu, P1Message), apdu
    return apdu.envelope.envelope, apdu.content


def stored_report(path: Path) -> tuple[Envelope, ReportContent]:
    envelope, content = decode_object(path.read_bytes())
    assert envelope.object_kind.value == "report", envelope
    return envelope, decode_report_content(content)


def maildir_message(wp: Waypost, mailbox: str, timeout: float = 30) -> EmailMessage:
    """The one message in the Maildir of `mailbox` (one per local part, in lower case)."""
    user = mailbox.partition("@")[0].lower()
    (path,) = wait_for(lambda: wp.maildir(user), timeout, f"mail in {user}'s Maildir")
    return wp.message(path)


def delivery_status(dsn: EmailMessage) -> list[dict[str, str]]:
    """The per-recipient blocks of an RFC 3464 report."""
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    status = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    blocks = [dict(block.items()) for block in status.get_payload()]
    return blocks[1:]


def hex_colons(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


# --- 1. mail with attachments → gateway → P1 → B ----------------------------------------


def assert_ipm_as_sent(envelope: Envelope, content: bytes) -> None:
    assert [r.address for r in envelope.recipients] == [SMITH]
    assert envelope.originator == BOB_OR
    ipm = decode_ipm(content)
    heading = ipm.heading
    assert heading.subject == SUBJECT
    # The Message-ID in a user-relative identifier, RFC 2156 §3.4's escapes for "@".
    assert heading.this_ipm.local == THIS_IPM
    assert heading.originator is not None and heading.originator.address == BOB_OR
    assert [d.address for d in heading.primary_recipients] == [SMITH]
    assert [d.address for d in heading.copy_recipients] == [JONES]
    text, pdf, png = ipm.body
    assert isinstance(text, IA5Text) and text.text == TEXT
    assert isinstance(pdf, FileTransfer) and isinstance(png, FileTransfer)
    assert (pdf.filename, pdf.content_type, pdf.data) == ("q3.pdf", "application/pdf", PDF)
    assert (png.filename, png.content_type, png.data) == ("chart.png", "image/png", PNG)
    assert png.parameters == (("name", "chart.png"),)


def test_mail_with_attachments_crosses_to_b_as_p22_that_tshark_decodes(
    tmp_path: Path, pair: Callable[..., Pair]
) -> None:
    p = pair(capture=True)
    message = tmp_path / "figures.eml"
    message.write_text(mail_with_attachments())
    smtp_source(p.a.port, message, BOB, "Jo.Smith@b.example")

    (file,) = store_files(p.b)
    envelope, content = stored_message(file)
    assert envelope.content_type == ContentType.P22
    assert_ipm_as_sent(envelope, content)
    assert len(p.a.events(1901)) == 0  # nothing failed to convert

    p.a.stop()  # A releases the association: the capture is complete
    assert p.relay is not None
    cap = p.relay.capture(tmp_path / "gateway-1988.pcap")
    assert tshark(cap, "-Y", "_ws.malformed") == ""
    root = pdml(cap)
    assert_bind_as_sent(root, "1988")
    (packet,) = (p for p in root.iter("packet") if any(descendants(p, "p1.message_element")))
    (p1_envelope,) = descendants(packet, "p1.envelope_element")
    (originator,) = descendants(p1_envelope, "p1.originator_name_element")
    assert shows(originator, "p1.surname") == ["Brown"]
    assert shows(originator, "p1.given_name") == ["Bob"]
    (recipient,) = descendants(p1_envelope, "p1.recipient_name_element")
    assert shows(recipient, "p1.surname") == ["Smith"]
    assert shows(p1_envelope, "p1.built_in") == ["22"]
    # The IPM as X.420 says it: the heading, the text, and each FTBP (X.420 §7.4.12) with
    # its name (an FTAM pathname), its MIME type and its octets.
    assert shows(packet, "p22.subject") == [SUBJECT]
    assert shows(packet, "p22.user_relative_identifier") == [THIS_IPM]
    assert shows(packet, "p22.body") == ["3"]
    # (XML attribute normalisation turns the CRLF in PDML's "show" into one space.)
    assert shows(packet, "p22.ia5text.data") == [TEXT.replace("\r\n", " ")]
    assert shows(packet, "ftam.Pathname_item") == ["q3.pdf", "chart.png"]
    # The MIME type and its parameters, as the FTBP records them (RFC 2157 §3.1.1).
    assert shows(packet, "p22.user_visible_string_item") == [
        "application/pdf",
        'image/png; name="chart.png"',
    ]
    assert shows(packet, "ftam.actual_values7") == [str(len(PDF)), str(len(PNG))]
    assert shows(packet, "ber.octet_aligned") == [hex_colons(PDF), hex_colons(PNG)]


def mail_p2_can_carry() -> str:
    """Text and an unnamed application/octet-stream: ia5-text and bilaterally-defined,
    body parts X.420 (1984) has (RFC 2157 §6.1, §6.3)."""
    return (
        f"From: Bob Brown <{BOB}>\n"
        "To: Jo Smith <Jo.Smith@b.example>\n"
        "Subject: for a 1984 MTA\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b84"\n'
        "\n"
        "--b84\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "Plain text and octets.\n"
        "--b84\n"
        "Content-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{b64(PDF)}\n"
        "--b84--\n"
    )


def test_mail_to_an_x410_peer_crosses_as_p2(tmp_path: Path, pair: Callable[..., Pair]) -> None:
    p = pair(mode="x410", capture=True)
    plain = tmp_path / "plain.eml"
    plain.write_text(mail_p2_can_carry())
    smtp_source(p.a.port, plain, BOB, "Jo.Smith@b.example")

    (file,) = store_files(p.b)
    envelope, content = stored_message(file)
    assert envelope.content_type == ContentType.P2
    ipm = decode_ipm(content)
    assert ipm.heading.subject == "for a 1984 MTA"
    assert [d.address for d in ipm.heading.primary_recipients] == [SMITH]
    text, octets = ipm.body
    assert isinstance(text, IA5Text) and text.text == "Plain text and octets."
    assert isinstance(octets, BilaterallyDefined) and octets.data == PDF

    # FTBPs are X.420 (1988) extended body parts: P2 has none, so the mail with the
    # attachments never reaches the 1984 MTA, and Bob is told so by a DSN.
    figures = tmp_path / "figures.eml"
    figures.write_text(mail_with_attachments())
    smtp_source(p.a.port, figures, BOB, "Jo.Smith@b.example")
    dsn = maildir_message(p.a, BOB)
    (block,) = delivery_status(dsn)
    assert block["Action"] == "failed"
    assert block["Status"] == "5.6.1"  # content-type-not-supported (X.411 diagnostic 15)
    assert block["Diagnostic-Code"].startswith("X-400; 1 15")
    assert len(store_files(p.b)) == 1

    p.a.stop()
    assert p.relay is not None
    cap = p.relay.capture(tmp_path / "gateway-x410.pcap")
    # tshark cannot decode X.410-mode content; it marks only its known limit there.
    assert tshark(cap, "-Y", f"_ws.malformed && !{X410_NOISE}") == ""
    assert_bind_as_sent(pdml(cap), "x410")


# --- 2. an IPM with an FTBP from B → gateway → MIME --------------------------------------


def test_x400_attachment_reaches_a_maildir_and_smtp_sink_as_mime(
    pair: Callable[..., Pair],
) -> None:
    p = pair()
    carol = under_gateway("carol@remote.example")
    sent = ipm_from_jones(
        "ftbp-1",
        [BOB_OR, carol],
        "the chart",
        IA5Text(text="Chart attached.\r\n"),
        FileTransfer(data=PNG, filename="chart.png", content_type="image/png"),
    )
    submit_x400(p.b, sent)

    local = maildir_message(p.a, BOB)
    assert local["Return-Path"] == "<Al.Jones@b.example>"
    dump = wait_for(p.sink.messages, 30, "the message at smtp-sink")[0]
    assert dump.mail_args.startswith("<Al.Jones@b.example>")
    assert [r.split()[0] for r in dump.rcpt_args] == ["<carol@remote.example>"]
    for mail in (local, dump.message()):
        assert mail["Subject"] == "the chart"
        assert mail["From"].addresses[0].addr_spec == "Al.Jones@b.example"
        assert [a.addr_spec for a in mail["To"].addresses] == [BOB, "carol@remote.example"]
        assert mail["X400-MTS-Identifier"] == f"[{DOMAIN_B};ftbp-1]"
        # The envelope as RFC 2156 §5.3.4's X400-* fields say it.
        assert mail["X400-Originator"] == "Al.Jones@b.example"
        assert mail["X400-Recipients"] == f"{BOB}, carol@remote.example"
        assert mail["X400-Content-Type"] == "P2-1988 (22)"
        # One X400-Received per trace element, the latest first, as Received: fields.
        received = [str(v).split(";")[:2] for v in mail.get_all("X400-Received", [])]
        assert received == [[f"by {DOMAIN_A}", " relayed"], [f"by {DOMAIN_B}", " relayed"]]
        assert mail.get_content_type() == "multipart/mixed"
        text, attachment = mail.iter_parts()
        assert text.get_content().replace("\r\n", "\n") == "Chart attached.\n"
        assert attachment.get_content_type() == "image/png"
        assert attachment.get_content_disposition() == "attachment"
        assert attachment.get_filename() == "chart.png"
        assert attachment.get_payload(decode=True) == PNG
    p.a.wait_queue_empty()
    p.b.wait_queue_empty()


# --- 3. unknown recipients come back as the other world's report --------------------------


def test_an_unknown_x400_recipient_comes_back_as_a_dsn(pair: Callable[..., Pair]) -> None:
    p = pair()
    with smtplib.SMTP("127.0.0.1", p.a.port, timeout=30) as client:
        client.sendmail(
            BOB,
            ["Ann.Nobody@b.example"],
            f"From: {BOB}\r\nTo: Ann.Nobody@b.example\r\nSubject: anyone?\r\n"
            "Message-ID: <anyone@a.example>\r\n\r\nhello\r\n",
        )
    # B has no mailbox for Ann: its X.411 report (unrecognised-OR-name) crosses to A's
    # gateway, addressed to Bob's O/R form, and reaches Bob as a DSN.
    dsn = maildir_message(p.a, BOB)
    assert [a.addr_spec for a in dsn["To"].addresses] == [BOB]
    (block,) = delivery_status(dsn)
    assert block["Action"] == "failed"
    assert block["Status"] == "5.1.1"
    assert block["Final-Recipient"].replace(" ", "") == "rfc822;Ann.Nobody@b.example"
    assert block["X400-Recipient"] == "/C=GB/ADMD= /PRMD=B/S=Nobody/G=Ann/"
    assert block["Diagnostic-Code"].startswith("X-400; 1 0")  # unable-to-transfer, unrecognised
    per_message = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    assert f"Reporting-MTA: x400; {DOMAIN_B}" in per_message.as_string()
    assert not list((p.b.data / "x400store").glob("*/new/*.p1"))
    p.a.wait_queue_empty()
    p.b.wait_queue_empty()


def test_a_refused_mail_recipient_comes_back_as_an_x411_report(
    pair: Callable[..., Pair],
) -> None:
    p = pair()
    carol = under_gateway("carol@remote.example")
    nobody = under_gateway("nobody@reject.example")
    sent = ipm_from_jones("refused-1", [carol, nobody], "to two", IA5Text(text="hello?\r\n"))
    submit_x400(p.b, sent)
    # smtp-sink answers 550 to nobody; A's DSN to Al.Jones@b.example crosses the gateway
    # as an X.411 non-delivery report, which B stores for Jones. Carol has her mail.
    (file,) = store_files(p.b)
    envelope, report = stored_report(file)
    assert [r.address for r in envelope.recipients] == [JONES]
    assert report.subject_id == f"{DOMAIN_B};refused-1"
    (reported,) = report.recipients
    assert reported.actual_recipient == nobody
    assert reported.originally_specified_number == 2  # as Jones numbered it
    assert reported.delivered_at is None
    assert (reported.reason, reported.diagnostic) == (1, 0)  # unable-to-transfer, unrecognised
    assert "no such user" in (reported.supplementary or "")
    assert p.rejecting.dumps() and not p.rejecting.messages()  # refused at RCPT
    (dump,) = wait_for(p.sink.messages, 30, "carol's mail at smtp-sink")
    assert [r.split()[0] for r in dump.rcpt_args] == ["<carol@remote.example>"]
    p.a.wait_queue_empty()
    p.b.wait_queue_empty()


def test_a_probe_for_a_mail_recipient_is_answered_by_the_gateway(
    pair: Callable[..., Pair],
) -> None:
    """A probe crosses nothing: A's gateway answers that it would convert the message
    (RFC 2156 §5.4), for an address it can map."""
    p = pair()
    carol = under_gateway("carol@remote.example")
    probe = Envelope(
        mts_id=f"{DOMAIN_B};probe-1",
        originator=JONES,
        recipients=[
            Recipient(
                address=carol, originally_specified_number=1, report_request=ReportRequest.ALWAYS
            )
        ],
        content_type=ContentType.P22,
        object_kind=ObjectKind.PROBE,
        content_length=100,
        arrival=time.time(),
    )
    submit_x400(p.b, Message(envelope=probe, content=b""))
    (file,) = store_files(p.b)
    _, report = stored_report(file)
    assert report.subject_id == f"{DOMAIN_B};probe-1"
    (reported,) = report.recipients
    assert reported.actual_recipient == carol
    assert reported.delivered_at is not None and reported.reason is None
    assert not p.sink.dumps()  # nothing reached the mail side
    p.a.wait_queue_empty()
    p.b.wait_queue_empty()


# --- 4. loops through the gateway --------------------------------------------------------


def test_x400_mail_routed_back_into_the_gateway_is_a_loop(pair: Callable[..., Pair]) -> None:
    p = pair()
    # loop.example routes to the gateway, which maps it to X.400 again: the mail the
    # gateway made from Jones's IPM comes straight back to it.
    looping = under_gateway("circle@loop.example")
    sent = ipm_from_jones("loop-1", [looping], "round and round", IA5Text(text="x\r\n"))
    submit_x400(p.b, sent)
    (file,) = store_files(p.b)
    envelope, report = stored_report(file)
    assert [r.address for r in envelope.recipients] == [JONES]
    assert report.subject_id == f"{DOMAIN_B};loop-1"
    (reported,) = report.recipients
    assert (reported.reason, reported.diagnostic) == (1, 3)  # unable-to-transfer, loop-detected
    (loop_event,) = p.a.events(1902)
    assert "circle@loop.example" in loop_event
    # It crossed twice (X.400 → mail, then caught on the way back), then stopped.
    p.a.wait_queue_empty()
    p.b.wait_queue_empty()
    assert len(store_files(p.b)) == 1
    assert len(p.a.events(1902)) == 1


def test_mail_that_x400_routes_back_to_the_gateway_is_a_loop(pair: Callable[..., Pair]) -> None:
    p = pair()
    # loop.example's O/R form is routed to B, and B routes it back to A: X.411's trace
    # check at A stops it, and the non-delivery report crosses the gateway as Bob's DSN.
    with smtplib.SMTP("127.0.0.1", p.a.port, timeout=30) as client:
        client.sendmail(
            BOB,
            ["circle@loop.example"],
            f"From: {BOB}\r\nTo: circle@loop.example\r\nSubject: round\r\n\r\nx\r\n",
        )
    dsn = maildir_message(p.a, BOB)
    (block,) = delivery_status(dsn)
    assert block["Action"] == "failed"
    assert block["Status"] == "5.4.6"
    p.a.wait_queue_empty()
    p.b.wait_queue_empty()
    assert len(p.a.maildir("bob.brown")) == 1
    assert not list((p.b.data / "x400store").glob("*/new/*.p1"))
    # A → B → A, caught by A's X.411 trace check (event 1820): the gateway never saw it
    # again.
    assert len(p.a.events(1820)) == 1
    assert not p.a.events(1902)


UTF8_TEXT = "Grüße aus Köln ☃"


def test_utf8_mail_to_the_gateways_own_form_crosses_without_loss(
    tmp_path: Path, pair: Callable[..., Pair]
) -> None:
    """An O/R address carried as the local part at the gateway's domain (RFC 2156 §4.3.4),
    8-bit UTF-8 text and an RFC 2231 non-ASCII filename: text with no X.400 repertoire
    crosses encapsulated in an FTBP (RFC 2157 §3.1.1), octet for octet."""
    p = pair()
    or_form = '"/G=Jo/S=Smith/PRMD=B/ADMD= /C=GB/"@gw.a.example'
    message = tmp_path / "utf8.eml"
    message.write_bytes(
        (
            f"From: Bob Brown <{BOB}>\n"
            f"To: {or_form}\n"
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n"
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="u8"\n'
            "\n"
            "--u8\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            "\n"
            f"{UTF8_TEXT}\n"
            "--u8\n"
            "Content-Type: application/pdf\n"
            "Content-Disposition: attachment; filename*=utf-8''Gr%C3%BC%C3%9Fe.pdf\n"
            "Content-Transfer-Encoding: base64\n"
            "\n"
            f"{b64(PDF)}\n"
            "--u8--\n"
        ).encode()
    )
    smtp_source(p.a.port, message, BOB, or_form)
    (file,) = store_files(p.b)
    envelope, content = stored_message(file)
    assert [r.address for r in envelope.recipients] == [SMITH]
    ipm = decode_ipm(content)
    assert ipm.heading.subject == "Grüße"
    assert [d.address for d in ipm.heading.primary_recipients] == [SMITH]
    text, pdf = ipm.body
    assert isinstance(text, FileTransfer)
    assert (text.content_type, text.parameters) == ("text/plain", (("charset", "utf-8"),))
    assert text.data == UTF8_TEXT.encode()
    assert isinstance(pdf, FileTransfer)
    assert (pdf.filename, pdf.data) == ("Grüße.pdf", PDF)


def test_a_delivery_report_asked_for_by_notify_comes_back_as_a_dsn(
    pair: Callable[..., Pair],
) -> None:
    """NOTIFY=SUCCESS becomes a per-recipient report request (RFC 2156 §5.3.4); B's X.411
    delivery report crosses back as a DSN that says delivered."""
    p = pair()
    with smtplib.SMTP("127.0.0.1", p.a.port, timeout=30) as client:
        client.ehlo("client.test")
        client.sendmail(
            BOB,
            ["Jo.Smith@b.example"],
            f"From: {BOB}\r\nTo: Jo.Smith@b.example\r\nSubject: tell me\r\n\r\nhi\r\n",
            rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
        )
    (file,) = store_files(p.b)
    envelope, _ = stored_message(file)
    (recipient,) = envelope.recipients
    assert recipient.report_request.name == "ALWAYS"
    dsn = maildir_message(p.a, BOB)
    (block,) = delivery_status(dsn)
    assert block["Action"] == "delivered"
    assert block["Status"].startswith("2.")
    assert block["Final-Recipient"].replace(" ", "") == "rfc822;Jo.Smith@b.example"
    p.a.wait_queue_empty()
    p.b.wait_queue_empty()
