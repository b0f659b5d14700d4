"""MIXER gateway throughput: messages arrive at Waypost A, which converts them and relays
them to Waypost B, beside A relaying the same messages to B without conversion.

    .venv/bin/python bench/gateway.py                           # every case, 2 rounds
    .venv/bin/python bench/gateway.py --only to-x400-1k --rounds 3
    .venv/bin/python bench/gateway.py --messages 1000 --large-messages 200
    .venv/bin/python bench/gateway.py --preloaded               # A's delivery half alone
    .venv/bin/python bench/gateway.py --profile DIR             # py-spy --gil of S, A and B
    .venv/bin/python bench/gateway.py --in-process              # the conversions alone
    .venv/bin/python bench/gateway.py --instructions --rounds 1 # A's instructions, callgrind

Two directions, each at two sizes (1 KiB of text; 100 KiB: a text part and a 100 KiB
application/pdf attachment on the mail side, an ia5-text body part and an FTBP with the
same file on the X.400 side). Every run starts from fresh data directories and loopback
ports, each Waypost a separate `waypost serve` process (log level warning); A has
`[mixer] enabled = true` in every run.

Wire mode (the default) measures A end to end, reception included. A third process, S,
holds the N messages in its MTA database (enqueued before it starts) and relays them to
A: mail over SMTP to A's SMTP listener (127.0.0.1 is in A's relay_networks), X.400 over
P1 (1988 mode, passwords) to A's X.400 listener. A receives each (SMTP session or P1
association, intake, the durable store write), converts or not, and relays it to B:

* to-x400 gateway: S sends RFC 5322 messages for `Jones@b.example` over SMTP; A's
  [[mixer.mapping]] maps b.example to B's O/R prefix and routes it to `gateway:mixer`;
  A's gateway converts each into a P22 IPM for an O/R address under that prefix (the
  one-word mailbox in an RFC-822 domain-defined attribute, RFC 2156 §4.3.5), which A
  relays over P1 to B's X.400 store. Plain: S sends the same messages; A routes b.example
  to B's SMTP listener and relays them, unconverted, into B's Maildir.
* to-mail gateway: S sends P22 IPMs over P1 for an O/R address under A's mixer.oraddress
  with an RFC-822 domain-defined attribute (`jones(a)b.example`); A's gateway converts
  each into MIME mail, which A relays over SMTP to B's Maildir. Plain: S sends the same
  IPMs for `/C=GB/ADMD= /PRMD=B/S=Jones/` instead; A relays them over P1 into B's X.400
  store.

A's configuration is the same for both modes of to-mail; for to-x400 only b.example's
route differs (the gateway, or B's SMTP listener).

The clock starts when S's listener answers (S starts its queue manager right after its
listeners) and stops when B's store holds all N. CPU (user + system) of S, A and B over
that interval; S's is not A's.

--preloaded measures A's delivery half only: the N messages are enqueued into A's MTA
database before A starts, already routed (the gateway run's to `gateway:mixer`), and the
clock starts when A's listener answers. to-x400: A holds the RFC 5322 messages; plain, A
holds P22 IPMs of the same size, heading and body parts for B's O/R address and relays
them over P1. to-mail: A holds the P22 IPMs for the mail user; plain, A holds the RFC
5322 messages of the to-x400 case and relays them over SMTP.

Printed per run: messages/s end to end, CPU seconds of A and B (and S) per 1,000
messages; per case, A's CPU per message of the gateway run over the plain run's (in each
round, of the least and of the median of each mode) and the best rate of each. Plain and
gateway runs alternate (plain first in even rounds, gateway first in odd ones) so that a
ratio compares runs seconds apart. Each run reads one message back at B: a P22 IPM with
the FTBP, or MIME with the attachment. --profile writes py-spy's collapsed stacks
(`--gil`) of A, B and S for each run into DIR. --in-process times only the conversion the
gateway's delivery agent makes (waypost.mixer.crossing.to_x400 / to_mail, the report and
notification checks included), in this process, on the same messages and mappings: CPU
microseconds per message.

--instructions runs A under valgrind's callgrind (wire mode) and counts the instructions
A executes in user space from S's start to B holding all N, every thread included:
unlike CPU seconds, the same count for the same work however busy the machine is, so one
round is enough and a change of a few per cent shows. The ratio is then of instructions
per message; system calls are not counted, and A's CPU seconds (some fifty times the
usual under callgrind) mean nothing in those runs.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import instructions
import psutil
from x400_relay import (
    Ports,
    config_b,
    cpu,
    delivered,
    enqueue,
    free_port,
    measure,
    profile,
    serve,
    stop,
    wait_port,
)

from waypost.address import parse_oraddress
from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.mixer.address_map import AddressMapper, Gateway, MappingEntry
from waypost.mixer.convert import GatewaySide
from waypost.mixer.crossing import to_mail, to_x400
from waypost.nexthop import parse_next_hop
from waypost.store import NewMessage
from waypost.x400.ipm_bodies import BodyPart, FileTransfer, IA5Text
from waypost.x400.ipm_codec import InterpersonalMessage, decode_ipm, encode_ipm
from waypost.x400.ipm_heading import IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu

ORIGINATOR = "/C=GB/ADMD= /PRMD=A/S=Sender/"
B_PREFIX = "/C=GB/ADMD= /PRMD=B/"
B_JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
GATEWAY_OR = "/C=GB/ADMD= /PRMD=A/O=Gateway/"
# An O/R address for a mail user: the gateway's own, with the mailbox in an RFC-822
# domain-defined attribute (RFC 2156 §4.3.5's fallback form).
MAIL_JONES_OR = f"{GATEWAY_OR}DDA:RFC-822=jones(a)b.example/"
MAIL_SENDER = "sender@a.example"
MAIL_JONES = "Jones@b.example"
SMALL = 1024
ATTACHMENT = 100 * 1024
TIMEOUT = 900.0
# A run whose count at B has not moved for this long has stalled (a refusal, a retry
# waiting for its next attempt): it stops with the logs kept, not after TIMEOUT.
STALL = 120.0
LINE = "The quarterly figures are attached; the totals are on the last page.  "
TEXT = "Dear Jones,\n\nthe figures of the quarter are attached.\n\nRegards,\nSender\n"


@dataclass(frozen=True)
class Case:
    direction: str  # "to-x400" or "to-mail"
    size: str  # "1k" or "100k"

    @property
    def name(self) -> str:
        return f"{self.direction}-{self.size}"


CASES = [Case(d, s) for d in ("to-x400", "to-mail") for s in ("1k", "100k")]


@dataclass(frozen=True)
class Result:
    case: str
    mode: str
    round_: int
    messages: int
    seconds: float
    cpu_a: float
    cpu_b: float
    cpu_s: float | None = None  # the sender's, in wire mode
    instructions_a: int | None = None  # with --instructions: A's, counted by callgrind

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def per_1000(self, cpu: float) -> float:
        return cpu * 1000 / self.messages


# -- the messages ------------------------------------------------------------------------


def attachment() -> bytes:
    """100 KiB that do not compress (nothing compresses on the way, but no shortcut
    either): a PDF signature and pseudo-random octets, the same in every run."""
    head = b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n"
    return head + random.Random(2156).randbytes(ATTACHMENT - len(head))


def mail_content(i: int, size: str) -> bytes:
    """An RFC 5322 message of 1 KiB (text/plain) or with a 100 KiB PDF attachment."""
    mail = EmailMessage(policy=email.policy.default.clone(linesep="\r\n"))
    # Names that differ from message to message, as in real traffic: no cache of the
    # conversion sees the same From: twice.
    mail["From"] = f"Sender {i} <{MAIL_SENDER}>"
    mail["To"] = f"Jones {i} <{MAIL_JONES}>"
    mail["Subject"] = f"bench {i}"
    mail["Date"] = "Thu, 03 Dec 2026 10:00:00 +0000"
    mail["Message-ID"] = f"<bench-{i}@a.example>"
    if size == "100k":
        mail.set_content(TEXT, charset="us-ascii", cte="7bit")
        mail.add_attachment(attachment(), "application", "pdf", filename="figures.pdf")
        return mail.as_bytes()
    head = len(mail.as_bytes()) + 80  # the Content-* fields set_content adds
    body = TEXT + (LINE + "\n") * ((SMALL - head - len(TEXT)) // (len(LINE) + 2))
    mail.set_content(body, charset="us-ascii", cte="7bit")
    data = mail.as_bytes()
    # Pad the last line so that the message is 1 KiB.
    return data[:-2] + b"x" * max(0, SMALL - len(data)) + b"\r\n"


def ipm_content(i: int, size: str, recipient: str) -> bytes:
    """A P22 IPM of 1 KiB (ia5-text) or with the 100 KiB PDF as an FTBP."""
    heading = IPMHeading(
        this_ipm=IPMIdentifier(user=ORIGINATOR, local=f"bench-{i}"),
        originator=ORDescriptor(address=ORIGINATOR, free_form_name=f"Sender {i}"),
        primary_recipients=(ORDescriptor(address=recipient, free_form_name=f"Jones {i}"),),
        subject=f"bench {i}",
    )

    def ipm(body: list[BodyPart]) -> bytes:
        return encode_ipm(InterpersonalMessage(heading=heading, body=tuple(body)))

    if size == "100k":
        pdf = FileTransfer(
            data=attachment(), filename="figures.pdf", content_type="application/pdf"
        )
        return ipm([IA5Text(text=TEXT), pdf])
    body = TEXT + (LINE + "\n") * 10
    content = ipm([IA5Text(text=body)])
    # Pad the text so that the P22 content is 1 KiB.
    body += "x" * max(0, SMALL - len(content))
    return ipm([IA5Text(text=body)])


def mail_message(i: int, size: str, content: bytes, hop: str, arrival: float = 0.0) -> NewMessage:
    envelope = Envelope(
        mts_id=f"<bench-{i}@a.example>",
        originator=MAIL_SENDER,
        recipients=[Recipient(address=MAIL_JONES)],
        arrival=arrival,
    )
    return NewMessage(
        message=Message(envelope=envelope, content=content), next_hops=[parse_next_hop(hop)]
    )


def x400_message(
    i: int, recipient: str, content: bytes, hop: str, arrival: float = 0.0
) -> NewMessage:
    envelope = Envelope(
        mts_id=f"/C=GB/ADMD= /PRMD=A/;bench-{i}",
        originator=ORIGINATOR,
        recipients=[Recipient(address=recipient, originally_specified_number=1)],
        content_type=ContentType.P22,
        arrival=arrival,
    )
    return NewMessage(
        message=Message(envelope=envelope, content=content), next_hops=[parse_next_hop(hop)]
    )


def preloaded_messages(case: Case, mode: str, n: int, b_smtp: int) -> list[NewMessage]:
    """What A holds with --preloaded: the gateway run's messages are the other world's form
    of the ones the plain run relays."""
    smtp_hop = f"smtp:[127.0.0.1]:{b_smtp}"
    size = case.size
    if case.direction == "to-x400":
        if mode == "gateway":
            return [mail_message(i, size, mail_content(i, size), "gateway:mixer") for i in range(n)]
        return [
            x400_message(i, B_JONES, ipm_content(i, size, B_JONES), "x400:B-MTA") for i in range(n)
        ]
    if mode == "gateway":
        return [
            x400_message(i, MAIL_JONES_OR, ipm_content(i, size, MAIL_JONES_OR), "gateway:mixer")
            for i in range(n)
        ]
    return [mail_message(i, size, mail_content(i, size), smtp_hop) for i in range(n)]


def sent_messages(case: Case, mode: str, n: int, a_smtp: int) -> list[NewMessage]:
    """What S holds and sends to A: to-x400, the same mail in both modes; to-mail, the same
    IPMs, for the mail user behind A's gateway or for B's X.400 user. Submitted now: the
    trace element S writes has a real arrival time."""
    size = case.size
    now = time.time()
    if case.direction == "to-x400":
        hop = f"smtp:[127.0.0.1]:{a_smtp}"
        return [mail_message(i, size, mail_content(i, size), hop, now) for i in range(n)]
    recipient = MAIL_JONES_OR if mode == "gateway" else B_JONES
    return [
        x400_message(i, recipient, ipm_content(i, size, recipient), "x400:A-MTA", now)
        for i in range(n)
    ]


def reaches_b_as_x400(case: Case, mode: str, preloaded: bool) -> bool:
    """Whether B receives X.400 (into its X.400 store) rather than mail (its Maildir)."""
    if preloaded:
        return case.direction == "to-x400"
    # The gateway turns the message into the other world's; a plain relay keeps its world.
    return (case.direction == "to-x400") == (mode == "gateway")


# -- the instances -------------------------------------------------------------------


@dataclass(frozen=True)
class WirePorts(Ports):
    """x400_relay's ports, with A's SMTP listener and S's X.400 listener."""

    a_smtp: int
    s_x400: int


def config_a(data: Path, ports: Ports, case: Case, mode: str, args: argparse.Namespace) -> str:
    """A: with WirePorts, it listens for S over SMTP and P1 too."""
    wire = isinstance(ports, WirePorts)
    if case.direction == "to-x400" and (mode == "gateway" or not wire):
        # B's users are X.400 users: their mail domain maps to B's O/R prefix (RFC 2156
        # table 1) and routes to the gateway; the prefix routes to B over P1.
        routes = f"""\
[[mixer.mapping]]
oraddress = "{B_PREFIX}"
domain = "b.example"
[[route]]
match = "b.example"
next_hop = "gateway:mixer"
"""
    else:
        # The to-x400 plain run over the wire: the same mail, relayed to B's Maildir.
        routes = f"""\
[[route]]
match = "b.example"
next_hop = "smtp:[127.0.0.1]:{ports.b_smtp}"
"""
    smtp_listen = ""
    s_peer = ""
    if isinstance(ports, WirePorts):
        # 127.0.0.1 is in smtp.relay_networks by default: S may relay through A.
        smtp_listen = f'"127.0.0.1:{ports.a_smtp}"'
        s_peer = _peer("S-MTA", ports.s_x400, "secret-a", "secret-s")
    head = _sender_config("a", data, smtp_listen, ports.a_x400, "/C=GB/ADMD= /PRMD=A/", args)
    return f"""\
{head}{_peer("B-MTA", ports.b_x400, "secret-a", "secret-b", args.associations)}\
{s_peer}[mixer]
enabled = true
domain = "gw.a.example"
oraddress = "{GATEWAY_OR}"
{routes}[[route]]
match = "{B_PREFIX}"
next_hop = "x400:B-MTA"
"""


def config_s(data: Path, ports: WirePorts, args: argparse.Namespace) -> str:
    """S: sends what it holds to A, mail over SMTP, X.400 over P1 as A's peer; its own
    global domain, so that A's loop check sees a trace of another domain."""
    head = _sender_config("s", data, "", ports.s_x400, "/C=GB/ADMD= /PRMD=S/", args)
    return head + _peer("A-MTA", ports.a_x400, "secret-s", "secret-a", args.associations)


def _sender_config(
    name: str,
    data: Path,
    smtp_listen: str,
    x400_port: int,
    global_domain: str,
    args: argparse.Namespace,
) -> str:
    """The sections A and S share: a sending MTA named `name` (its host `name.example`,
    its MTA `NAME-MTA`), log level warning, the bench's queue settings, no TLS."""
    return f"""\
[server]
hostname = "{name}.example"
data_dir = "{data}"
[log]
level = "warning"
[queue]
poll_interval = 0.05
delivery_concurrency = {max(64, args.concurrency * 2)}
destination_concurrency = {args.concurrency}
[smtp]
listen = [{smtp_listen}]
[smtp_client]
tls = "none"
[local]
domains = ["{name}.example"]
[x400]
listen = ["127.0.0.1:{x400_port}"]
mta_name = "{name.upper()}-MTA"
global_domain = "{global_domain}"
"""


def _peer(name: str, port: int, ours: str, theirs: str, associations: int | None = None) -> str:
    """An [[x400.peer]] in 1988 mode with passwords; with `associations`, an outbound pool
    of that many that opens at the first message (threshold 1)."""
    pool = "" if associations is None else f"max_associations = {associations}\nthreshold = 1\n"
    return f"""\
[[x400.peer]]
name = "{name}"
address = "127.0.0.1:{port}"
mode = "1988"
our_password = "{ours}"
peer_password = "{theirs}"
{pool}"""


def check_delivered(case: Case, mode: str, target: Path, x400: bool) -> None:
    """One message at B, read back: the run measured what it meant to (a P22 IPM with the
    FTBP, or MIME with the attachment), not a report or a half-converted message."""
    box = next(p for p in sorted(target.iterdir()) if (p / "new").is_dir())
    data = next((box / "new").iterdir()).read_bytes()
    large = case.size == "100k"
    if x400:
        apdu = decode_mts_apdu(data)
        assert isinstance(apdu, P1Message), f"{case.name} {mode}: not a P1 message at B"
        assert apdu.envelope.envelope.content_type == ContentType.P22
        body = decode_ipm(apdu.content).body
        kinds = [type(p).__name__ for p in body]
        want = ["IA5Text", "FileTransfer"] if large else ["IA5Text"]
        assert kinds == want, f"{case.name} {mode}: body parts {kinds} at B"
        if large:
            assert isinstance(body[1], FileTransfer) and body[1].filename == "figures.pdf"
            assert body[1].data == attachment(), f"{case.name} {mode}: the attachment changed"
        return
    mail = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert str(mail["Subject"]).startswith("bench "), f"{case.name} {mode}: not a bench message"
    if large:
        parts = list(mail.iter_attachments())
        assert [p.get_filename() for p in parts] == ["figures.pdf"], f"{case.name} {mode}"
        assert parts[0].get_content_type() == "application/pdf"
        assert parts[0].get_payload(decode=True) == attachment()


def measure_wire(
    run_dir: Path,
    ports: WirePorts,
    target: Path,
    n: int,
    label: str,
    profile_dir: str | None,
    count_instructions: bool = False,
) -> tuple[float, float, float, float, int | None]:
    """Start B, A, then S (configured in run_dir as b.toml, a.toml and s.toml); (seconds,
    CPU of A, of B, of S, and with `count_instructions` A's instructions) from S's
    listener answering to `target` holding n messages. With `profile_dir`, py-spy records
    all three. The logs' warnings are pointed out."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    spies: list[subprocess.Popen[bytes]] = []
    counted = run_dir / "a.callgrind"
    counter: instructions.Counter | None = None
    counted_a: int | None = None

    def start(name: str, *listeners: int, prefix: list[str] | None = None) -> psutil.Process:
        conf, log = run_dir / f"{name}.toml", run_dir / f"{name}.log"
        proc = procs[name] = serve(conf, log, prefix or ())
        for port in listeners:
            wait_port(port, proc, instructions.CALLGRIND_START_TIMEOUT if prefix else 30.0)
        return psutil.Process(proc.pid)

    try:
        b = start("b", ports.b_x400, ports.b_smtp)
        prefix = instructions.command(counted) if count_instructions else None
        a = start("a", ports.a_x400, ports.a_smtp, prefix=prefix)
        if count_instructions:
            counter = instructions.Counter(a.pid, counted)
            counter.start()
        # S starts its queue manager right after its listeners: it starts sending now.
        s = start("s", ports.s_x400)
        t0 = time.perf_counter()
        a0, b0, s0 = cpu(a), cpu(b), cpu(s)
        if profile_dir:
            for name, proc in procs.items():
                spy = profile(proc.pid, Path(profile_dir) / f"{label}-{name}.txt")
                spies += [spy] if spy else []
        moved, last = t0, 0
        while (count := delivered(target)) < n:
            now = time.perf_counter()
            if count > last:
                moved, last = now, count
            if now - t0 > TIMEOUT or now - moved > STALL:
                raise SystemExit(
                    f"{label}: only {count} of {n} messages at B after {now - t0:.0f} s "
                    f"({now - moved:.0f} s without one more); logs in {run_dir}"
                )
            if any(proc.poll() is not None for proc in procs.values()):
                raise SystemExit(f"{label}: a Waypost process exited; logs in {run_dir}")
            time.sleep(0.05)  # listing a directory of thousands costs: not too often
        t1 = time.perf_counter()
        a1, b1, s1 = cpu(a), cpu(b), cpu(s)
        if counter is not None:
            counted_a = counter.stop()
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        for proc in reversed(procs.values()):
            stop(proc)
    for name in procs:
        text = (run_dir / f"{name}.log").read_text(errors="replace")
        if " WARNING " in text or " ERROR " in text or "Traceback" in text:
            print(f"  ({label}: {name}.log has warnings or errors: {run_dir})", file=sys.stderr)
    return t1 - t0, a1 - a0, b1 - b0, s1 - s0, counted_a


def run(work: Path, case: Case, mode: str, round_: int, n: int, args: argparse.Namespace) -> Result:
    run_dir = work / f"{case.name}-{mode}.{round_}"
    a_data, b_data, s_data = run_dir / "a", run_dir / "b", run_dir / "s"
    for d in (a_data, b_data) if args.preloaded else (a_data, b_data, s_data):
        d.mkdir(parents=True, mode=0o700)
    x400 = reaches_b_as_x400(case, mode, args.preloaded)
    target = b_data / ("x400store" if x400 else "maildir")
    label = f"{case.name}-{mode}.{round_}"
    cpu_s: float | None = None
    counted: int | None = None
    if args.preloaded:
        ports = Ports(a_x400=free_port(), b_x400=free_port(), b_smtp=free_port())
        (run_dir / "a.toml").write_text(config_a(a_data, ports, case, mode, args))
        (run_dir / "b.toml").write_text(config_b(b_data, ports))
        held = preloaded_messages(case, mode, n, ports.b_smtp)
        asyncio.run(enqueue(str(a_data / "mta.db"), held))
        seconds, cpu_a, cpu_b = measure(run_dir, ports, target, n, label, args.profile, TIMEOUT)
    else:
        wire = WirePorts(
            a_x400=free_port(),
            b_x400=free_port(),
            b_smtp=free_port(),
            a_smtp=free_port(),
            s_x400=free_port(),
        )
        (run_dir / "a.toml").write_text(config_a(a_data, wire, case, mode, args))
        (run_dir / "b.toml").write_text(config_b(b_data, wire))
        (run_dir / "s.toml").write_text(config_s(s_data, wire, args))
        asyncio.run(enqueue(str(s_data / "mta.db"), sent_messages(case, mode, n, wire.a_smtp)))
        seconds, cpu_a, cpu_b, cpu_s, counted = measure_wire(
            run_dir, wire, target, n, label, args.profile, args.instructions
        )
    check_delivered(case, mode, target, x400)
    if not (args.keep or args.dir):
        shutil.rmtree(run_dir, ignore_errors=True)  # 100 KiB runs fill the disk otherwise
    return Result(case.name, mode, round_, n, seconds, cpu_a, cpu_b, cpu_s, counted)


def in_process(case: Case, n: int) -> float:
    """CPU microseconds per message of the conversion alone, as A's gateway makes it."""
    gateway = Gateway("gw.a.example", parse_oraddress(GATEWAY_OR))
    if case.direction == "to-x400":
        mapper = AddressMapper.symmetric(gateway, [MappingEntry.parse(B_PREFIX, "b.example")])
    else:
        mapper = AddressMapper(gateway)
    side = GatewaySide(mapper=mapper, x400_domain="/C=GB/ADMD= /PRMD=A/", hostname="a.example")
    convert = to_x400 if case.direction == "to-x400" else to_mail
    held = [new.message for new in preloaded_messages(case, "gateway", n, 0)]
    for message in held[:10]:  # warm: imports, the header classes
        kind, _ = convert(message.envelope, message.content, [0], side)
        # A message, not a report or a notification: what the gateway runs convert.
        assert kind in ("Internet mail → X.400", "X.400 → Internet mail"), kind
    start = time.process_time()
    for message in held:
        convert(message.envelope, message.content, [0], side)
    return (time.process_time() - start) * 1e6 / n


# -- the report --------------------------------------------------------------------------


def print_row(res: Result) -> None:
    sender = "" if res.cpu_s is None else f" {res.per_1000(res.cpu_s):>6.2f}"
    counted = (
        "" if res.instructions_a is None else f" {res.instructions_a / res.messages / 1e6:>9.3f}"
    )
    print(
        f"{res.case:<13} {res.mode:<8} {res.round_:>5} {res.messages:>6} {res.seconds:>8.2f} "
        f"{res.rate:>8,.0f} {res.per_1000(res.cpu_a):>12.2f} {res.per_1000(res.cpu_b):>6.2f}"
        f"{sender}{counted}",
        flush=True,
    )


def summary(results: list[Result], measured: str) -> None:
    counted = all(r.instructions_a is not None for r in results)
    what = "instructions" if counted else "CPU"
    print(f"\nA's {what} per message, gateway / plain ({measured}; target <= 1.5):")
    print(
        f"  {'case':<13} {'per round':<22} {'least':>6} {'median':>7}   "
        f"{'msgs/s plain':>12} {'gateway':>8}"
    )
    for case in dict.fromkeys(r.case for r in results):
        rounds = sorted({r.round_ for r in results if r.case == case})
        pairs: list[float] = []
        for k in rounds:
            plain = [r for r in results if (r.case, r.mode, r.round_) == (case, "plain", k)]
            gateway = [r for r in results if (r.case, r.mode, r.round_) == (case, "gateway", k)]
            if plain and gateway:
                pairs.append(_cost(gateway[0], counted) / _cost(plain[0], counted))
        by_mode = {
            mode: [r for r in results if r.case == case and r.mode == mode]
            for mode in ("plain", "gateway")
        }
        if not all(by_mode.values()):
            continue
        least = {m: min(_cost(r, counted) for r in rs) for m, rs in by_mode.items()}
        median = {m: statistics.median(_cost(r, counted) for r in rs) for m, rs in by_mode.items()}
        best = {m: max(r.rate for r in rs) for m, rs in by_mode.items()}
        print(
            f"  {case:<13} {' '.join(f'{p:.2f}' for p in pairs):<22} "
            f"{least['gateway'] / least['plain']:>6.2f} {median['gateway'] / median['plain']:>7.2f}"
            f"   {best['plain']:>12,.0f} {best['gateway']:>8,.0f}"
        )


def _cost(res: Result, counted: bool) -> float:
    """A's cost per message: instructions when counted, else CPU seconds."""
    return (res.instructions_a if counted and res.instructions_a else res.cpu_a) / res.messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="of 1 KiB, per run")
    parser.add_argument("--large-messages", type=int, default=300, help="of 100 KiB, per run")
    parser.add_argument("--rounds", type=int, default=2, help="plain/gateway pairs per case")
    parser.add_argument(
        "--only",
        help="comma-separated cases or parts of names: to-x400, to-mail, 1k, 100k, to-mail-1k…",
    )
    parser.add_argument("--mode", choices=("plain", "gateway"), help="one mode only")
    parser.add_argument(
        "--preloaded",
        action="store_true",
        help="enqueue the messages into A before it starts: A's delivery half only",
    )
    parser.add_argument("--associations", type=int, default=16, help="A's P1 associations to B")
    parser.add_argument("--concurrency", type=int, default=32, help="deliveries per next hop")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy raw profiles of A and B (and S) here"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="time the conversions alone, in this process"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count A's instructions under valgrind's callgrind (wire mode)",
    )
    parser.add_argument("--dir", help="work directory (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    cases = CASES
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        cases = [c for c in CASES if set(wanted) & {c.name, c.direction, c.size}]
        if not cases:
            parser.error(f"--only {args.only}: no case; the cases are {[c.name for c in CASES]}")
    if args.in_process:
        for r in range(args.rounds):
            for case in cases:
                n = args.messages if case.size == "1k" else args.large_messages
                print(f"{case.name:<13} round {r}: {in_process(case, n):8,.0f} µs per message")
        return 0
    if args.instructions:
        if args.preloaded or args.profile:
            parser.error("--instructions counts in wire mode, without --profile")
        if (why := instructions.available()) is not None:
            parser.error(f"--instructions: {why}")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    work = Path(args.dir or tempfile.mkdtemp(prefix="waypost-gateway."))
    work.mkdir(parents=True, exist_ok=True)
    if args.preloaded:
        measured = "preloaded: A's database -> A -> B"
    else:
        measured = "wire: S -> A over SMTP or P1 -> B"
    print(
        f"{measured}; {args.messages} messages of 1 KiB, {args.large_messages} with 100 KiB; "
        f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; "
        f"Python {sys.version.split()[0]}; load {os.getloadavg()[0]:.2f}"
    )
    sender = "" if args.preloaded else f" {'S':>6}"
    counted = f" {'M instr A':>9}" if args.instructions else ""
    print(
        f"{'case':<13} {'mode':<8} {'round':>5} {'msgs':>6} {'seconds':>8} {'msgs/s':>8} "
        f"{'CPU s/1000 A':>12} {'B':>6}{sender}{counted}"
    )
    results: list[Result] = []
    keep = bool(args.keep or args.dir)
    try:
        for case in cases:
            n = args.messages if case.size == "1k" else args.large_messages
            for r in range(args.rounds):
                modes = ("plain", "gateway") if r % 2 == 0 else ("gateway", "plain")
                for mode in modes:
                    if args.mode and mode != args.mode:
                        continue
                    res = run(work, case, mode, r, n, args)
                    results.append(res)
                    print_row(res)
    except BaseException:
        keep = True  # the logs of the run that failed
        raise
    finally:
        if keep:
            print(f"work directory: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load {os.getloadavg()[0]:.2f} at the end")
    summary(results, measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
