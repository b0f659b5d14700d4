"""Bad input on every interface, over real sockets against a running `waypost serve`.

(a) Oversized and hostile inputs (a 2 GB declared BER length, 10,000 nested constructed
elements, an envelope with a million recipients, a million pipelined RCPT TO lines, 10 MB
lines without CRLF): each is refused with its protocol error (a P1 abort with an
x400-association-aborted event naming the BER limit; SMTP 452/500/552 replies, which emit
no event yet: see the xfail), the server's RSS stays within a bound while it happens, and
the server then serves a normal client.
(b) Hypothesis: random and mutated SMTP command streams always end with a reply or a close.
(c) Bad configuration files and bad command lines: a clear message and a non-zero exit.

The server is a subprocess so that its RSS is its own (the client's buffers are not counted)
and its events are read from its JSON log. Unit-level fuzzing lives beside each decoder's
tests (test_ber.py, test_p1*.py, test_ipm.py, test_osi_*.py, test_smtp_server_protocol.py)
and the X.400 listener's mutations in test_x400_robustness.py; `make fuzz` runs atheris.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p1_client import P1Client

from waypost import asn1 as ber
from waypost.message import ContentType, Envelope, Recipient
from waypost.osi.stack import (
    AssociationSettings,
    Mode,
    Release,
    Released,
    Transfer,
    TransferConfirmed,
)
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_objects import encode_stored

PEER, PASSWORD = "BADPEER-MTA", "badpass"
SMITH = "/C=GB/ADMD= /PRMD=A/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
WAIT = 30.0
MB = 1024 * 1024
#: How much the server's RSS may grow (peak, sampled every 5 ms) while it refuses one input.
RSS_BOUND = 100 * MB
#: An envelope with a million recipients is ~38 MB on the wire; the stack reassembles an APDU
#: (up to its 64 MB max_apdu_size) before P1 decodes it, so the bound for an APDU is
#: RSS_BOUND + twice its size (measured: +108..114 MB in 1988 mode, +36..37 MB in X.410).
APDU_COPIES = 2
#: The server's smtp.max_message_size here, so that a 10 MB DATA line is too big.
MAX_MESSAGE_SIZE = 5 * MB


# ----------------------------------------------------------------------------- the server


@dataclass
class Server:
    root: Path
    smtp_port: int
    x400_port: int
    log: Path
    proc: subprocess.Popen[bytes]
    ps: psutil.Process
    seen: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    started_rss: int = 0

    def read_events(self) -> list[dict[str, Any]]:
        """Every event logged so far (appended to `events`)."""
        if self.log.exists():
            lines = self.log.read_bytes().split(b"\n")
            complete = lines[:-1]  # the last may be half written
            for line in complete[self.seen :]:
                if line.strip():
                    self.events.append(json.loads(line))
            self.seen = len(complete)
        return self.events

    def events_for(self, port: int, *, settle: float = 0.3) -> list[tuple[str, dict[str, Any]]]:
        """The events naming the client at local `port` (waiting `settle` for late ones)."""
        who = f"127.0.0.1:{port}"
        deadline = time.monotonic() + settle
        while True:
            found = [
                (e["name"], e.get("fields", {}))
                for e in self.read_events()
                if "name" in e and any(who in str(v) for v in e.get("fields", {}).values())
            ]
            if time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def assert_healthy(self) -> None:
        assert self.proc.poll() is None, "the server died"
        bad = [
            e
            for e in self.read_events()
            if e.get("name") == "unexpected-error" or "exception" in e or "Traceback" in str(e)
        ]
        assert bad == []

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def peak_rss(self) -> int:
        """The process's high-water RSS (VmHWM), since it started."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"waypost serve exited: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("bad-input")
    smtp_port, x400_port = free_port(), free_port()
    log = root / "events.jsonl"
    config = root / "waypost.toml"
    config.write_text(
        f'[server]\nhostname = "bad.test"\ndata_dir = "{root / "data"}"\n'
        f'[log]\njson_file = "{log}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\nmax_message_size = {MAX_MESSAGE_SIZE}\n'
        "idle_timeout = 10\ndata_timeout = 20\nmin_free_space = 0\n"
        # Hypothesis sends many unknown commands from one address: not a harvesting ban here.
        "max_connections_per_client = 1000\n"
        '[local]\ndomains = ["localhost", "bad.test"]\n'
        'oraddresses = ["/C=GB/ADMD= /PRMD=B/"]\n'
        f'x400_store = "{root / "x400"}"\n'
        f'[x400]\nlisten = ["127.0.0.1:{x400_port}"]\nmta_name = "BAD-MTA"\n'
        'global_domain = "/C=GB/ADMD= /PRMD=B/"\nbind_timeout = 10\nidle_timeout = 20\n'
        f'[[x400.peer]]\nname = "{PEER}"\naddress = "127.0.0.1:1"\n'
        f'peer_password = "{PASSWORD}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(config)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "WAYPOST_CONFIG": ""},
    )
    try:
        _wait_for_port(smtp_port, proc)
        _wait_for_port(x400_port, proc)
        live = Server(root, smtp_port, x400_port, log, proc, psutil.Process(proc.pid))
        live.started_rss = live.rss()
        yield live
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        assert b"Traceback" not in err, err.decode(errors="replace")


class PeakRSS:
    """Samples a process's RSS in a thread: `growth` is the peak above the baseline."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.baseline = server.rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.server.rss())
            except psutil.Error:
                return
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


# ----------------------------------------------------------------------------- SMTP


class SmtpConn:
    """A blocking SMTP client socket with a reader thread, so that a big write never
    deadlocks against the server's replies."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.smtp_port), timeout=WAIT)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.closed = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
        except OSError:
            pass
        self.closed.set()

    def write(self, data: bytes) -> bool:
        """Send `data`; False if the server closed first."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def wait_for(self, text: bytes, timeout: float = WAIT) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.received:
            if self.closed.is_set() or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in {bytes(self.received[-2000:])!r}")
            time.sleep(0.01)
        return bytes(self.received)

    def wait_closed(self, timeout: float = WAIT) -> bytes:
        assert self.closed.wait(timeout), f"still open: {bytes(self.received[-500:])!r}"
        return bytes(self.received)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.reader.join(WAIT)


def reply_codes(data: bytes) -> list[int]:
    """The codes of the final lines of the replies in `data`."""
    return [int(line[:3]) for line in data.split(b"\r\n") if line[3:4] == b" "]


def assert_smtp_transaction(server: Server) -> None:
    conn = SmtpConn(server)
    try:
        conn.wait_for(b"220 ")
        conn.write(b"EHLO ok.test\r\nMAIL FROM:<a@ok.test>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        conn.wait_for(b"354 ")
        conn.write(b"Subject: still up\r\n\r\nhello\r\n.\r\nQUIT\r\n")
        data = conn.wait_closed()
    finally:
        conn.close()
    assert reply_codes(data) == [220, 250, 250, 250, 354, 250, 221], data
    time.sleep(0.2)
    assert "smtp-accepted" in [e.get("name") for e in server.read_events()[-5:]]


def _smtp_case(
    server: Server, stream: Callable[[SmtpConn], None]
) -> tuple[bytes, list[str], PeakRSS]:
    """Run `stream` on a new session: the server's bytes, the events since, the RSS peak.
    (SMTP events name the client's host only: the tests run one session at a time.)"""
    mark = len(server.read_events())
    conn = SmtpConn(server)
    try:
        conn.wait_for(b"220 ")
        with PeakRSS(server) as rss:
            stream(conn)
            data = conn.wait_closed()
    finally:
        conn.close()
    time.sleep(0.3)
    return data, [e.get("name", "") for e in server.read_events()[mark:]], rss


def test_a_million_pipelined_recipients(server: Server) -> None:
    rcpts = b"".join(b"RCPT TO:<user%d@localhost>\r\n" % i for i in range(1_000_000))

    def stream(conn: SmtpConn) -> None:
        conn.write(b"EHLO big.test\r\nMAIL FROM:<a@big.test>\r\n")
        conn.wait_for(b"250 2.1.0")
        conn.write(rcpts + b"QUIT\r\n")

    data, names, rss = _smtp_case(server, stream)
    print(f"1,000,000 RCPT ({len(rcpts) / MB:.0f} MB): RSS +{rss.growth / MB:.1f} MB")
    assert rss.growth < RSS_BOUND
    codes = reply_codes(data)
    # Every line is answered, in order: max_recipients (1000) are taken, the rest get
    # 452 4.5.3 (not counted as errors, by design: a long pipelined list is legitimate).
    assert codes[:3] == [220, 250, 250], codes[:10]
    assert codes[3:1003] == [250] * 1000
    assert codes[1003:-1] == [452] * 999_000, sorted(set(codes[1003:-1]))
    assert codes[-1] == 221
    assert "unexpected-error" not in names and len(names) < 20, names  # no event flood
    server.assert_healthy()
    assert_smtp_transaction(server)


LIMIT_CASES = {
    # (the stream after EHLO and MAIL, the reply code it must get)
    "max-recipients": (
        b"".join(b"RCPT TO:<user%d@localhost>\r\n" % i for i in range(1001)),
        452,
    ),
    "command-line-too-long": (b"RCPT TO:<" + b"a" * 3000 + b"@localhost>\r\n", 500),
    "message-too-big": (
        b"RCPT TO:<bob@localhost>\r\nDATA\r\n" + b"x" * (MAX_MESSAGE_SIZE + 10) + b"\r\n.\r\n",
        552,
    ),
}


@pytest.mark.parametrize("case", sorted(LIMIT_CASES))
def test_smtp_limit_refusal_is_an_event(server: Server, case: str) -> None:
    stream_bytes, code = LIMIT_CASES[case]

    def stream(conn: SmtpConn) -> None:
        conn.write(b"EHLO big.test\r\nMAIL FROM:<a@big.test>\r\n" + stream_bytes + b"QUIT\r\n")

    data, names, _ = _smtp_case(server, stream)
    assert reply_codes(data)[-2:] == [code, 221]
    assert "smtp-violation" in names, names


def test_ten_megabyte_command_line_without_crlf(server: Server) -> None:
    def stream(conn: SmtpConn) -> None:
        conn.write(b"EHLO big.test\r\nMAIL FROM:<" + b"a" * (10 * MB))
        conn.write(b">\r\nQUIT\r\n")

    data, names, rss = _smtp_case(server, stream)
    print(f"10 MB command line: RSS +{rss.growth / MB:.1f} MB, events {names}")
    assert rss.growth < RSS_BOUND
    codes = reply_codes(data)
    assert codes[:2] == [220, 250] and codes[2] == 500, data[-500:]
    assert b"too long" in data.lower(), data
    server.assert_healthy()
    assert_smtp_transaction(server)


def test_ten_megabyte_data_line_without_crlf(server: Server) -> None:
    """Over max_message_size (5 MB here): refused with 552 once the end marker comes."""

    def stream(conn: SmtpConn) -> None:
        conn.write(
            b"EHLO big.test\r\nMAIL FROM:<a@big.test>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"
        )
        conn.wait_for(b"354 ")
        conn.write(b"Subject: long\r\n\r\n" + b"x" * (10 * MB))
        conn.write(b"\r\n.\r\nQUIT\r\n")

    data, names, rss = _smtp_case(server, stream)
    print(f"10 MB DATA line: RSS +{rss.growth / MB:.1f} MB, events {names}")
    assert rss.growth < RSS_BOUND
    codes = reply_codes(data)
    assert codes == [220, 250, 250, 250, 354, 552, 221], codes
    assert "smtp-accepted" not in names
    server.assert_healthy()
    assert_smtp_transaction(server)


# ----------------------------------------------------------------------------- X.400 client


class Client(P1Client):
    """Checkpoints every 30 KB (the Exchange default): a big APDU goes in segments."""

    def __init__(self, server: Server, mode: Mode = Mode.NORMAL_1988) -> None:
        settings = AssociationSettings(checkpoint_size=30, window_size=5)
        super().__init__(
            server.x400_port, mode, settings, name=PEER, password=PASSWORD, timeout=WAIT
        )


def p1_message(recipients: int = 1) -> bytes:
    envelope = Envelope(
        mts_id=f"/C=GB/ADMD= /PRMD=A/;bad-{time.monotonic_ns()}",
        originator=SMITH,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    content = build_ipm(originator=SMITH, recipients=[JONES], subject="ok", text="Hi", ipm_id="i")
    apdu = encode_stored(envelope, content)
    if recipients == 1:
        return apdu
    # Splice: the per-recipient field ([2], the last of the envelope SET) repeated.
    root = ber.decode(apdu)
    env, body = root.child(0), root.child(1)
    fields = list(env)
    per_recipient = fields[-1]
    assert per_recipient.tag == ber.context(2, True), per_recipient
    (one,) = list(per_recipient)
    many = ber.constructed(per_recipient.tag, bytes(one.raw) * recipients)
    env_bytes = ber.constructed(env.tag, *(bytes(f.raw) for f in fields[:-1]), many)
    return ber.constructed(root.tag, env_bytes, bytes(body.raw))


def assert_p1_transfers(server: Server, mode: Mode = Mode.NORMAL_1988) -> None:
    client = Client(server, mode)
    try:
        client.open()
        client.send(Transfer(apdu=p1_message()))
        client.until(TransferConfirmed)
        client.send(Release())
        client.until(Released)
    finally:
        client.close()
    names = [n for n, _ in server.events_for(client.port, settle=0.5)]
    assert "x400-message-received" in names, names


def two_gb_length() -> bytes:
    """An MTS-APDU (a P1 message, [0]) whose envelope SET declares 2 GB; 60 octets follow."""
    return b"\xa0\x84\x80\x00\x00\x10" + b"\x31\x84\x80\x00\x00\x00" + b"\x00" * 60


def nested(depth: int) -> bytes:
    """`depth` nested constructed elements with definite lengths, innermost empty."""
    out = b""
    for _ in range(depth):
        out = ber.constructed(ber.context(0, True), out)
    return out


P1_CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "2GB-declared-length": (two_gb_length, "max_length"),
    "10000-nested-elements": (lambda: nested(10_000), "max_depth"),
    "1000000-recipients": (lambda: p1_message(1_000_000), "max_elements"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [Mode.NORMAL_1988, Mode.X410])
@pytest.mark.parametrize("case", list(P1_CASES))  # the biggest last
def test_hostile_mts_apdu_is_refused_in_bounded_memory(
    server: Server, case: str, mode: Mode, record_property: Callable[[str, object], None]
) -> None:
    make, limit = P1_CASES[case]
    apdu = make()
    client = Client(server, mode)
    try:
        client.open()
        with PeakRSS(server) as rss:
            client.send(Transfer(apdu=apdu))
            got = client.until(None)  # the server aborts and closes
    finally:
        client.close()
    bound = RSS_BOUND + APDU_COPIES * len(apdu)
    record_property("rss_growth_mb", rss.growth / MB)
    print(f"{case} {mode.value}: {len(apdu)} octets, RSS +{rss.growth / MB:.1f} MB")
    assert rss.growth < bound, f"RSS grew {rss.growth / MB:.1f} MB (bound {bound / MB:.0f})"
    # The server's abort reaches the client unless the client was still writing (a reset).
    assert not [ev for ev in got if type(ev).__name__ not in ("Aborted", "ConnectionClosed")], got
    assert not any(isinstance(ev, TransferConfirmed) for ev in got), got
    aborts = [f for n, f in server.events_for(client.port) if n == "x400-association-aborted"]
    assert len(aborts) == 1, server.events_for(client.port)
    assert aborts[0]["layer"] == "p1" and limit in aborts[0]["reason"], aborts
    assert aborts[0]["peer"] == f"{PEER} (127.0.0.1:{client.port})"
    server.assert_healthy()
    assert_p1_transfers(server, mode)


def test_peak_rss_over_all_the_abuse(server: Server) -> None:
    """Whatever ran before against this server (measured each with PeakRSS), its RSS never
    went higher than this above what it started with (the reassembled 38 MB APDU of a
    million recipients, held twice, is the most)."""
    peak = server.peak_rss() - server.started_rss
    print(f"server RSS: started {server.started_rss / MB:.0f} MB, peak +{peak / MB:.0f} MB")
    assert peak < 200 * MB


# ----------------------------------------------------------------------------- (b) Hypothesis

COMMANDS = [
    b"EHLO fuzz.test",
    b"HELO fuzz.test",
    b"MAIL FROM:<a@fuzz.test>",
    b"MAIL FROM:<a@fuzz.test> SIZE=100 BODY=8BITMIME",
    b"RCPT TO:<bob@localhost>",
    b"RCPT TO:<bob@localhost> NOTIFY=SUCCESS ORCPT=rfc822;bob@localhost",
    b"RCPT TO:<x@nowhere.example>",
    b"DATA",
    b"BDAT 5",
    b"BDAT 0 LAST",
    b"RSET",
    b"NOOP",
    b"VRFY bob",
    b"HELP",
    b"STARTTLS",
    b"AUTH PLAIN AGFAYg==",
    b"AUTH LOGIN",
    b"QUIT",
    b".",
    b"",
]

lines = st.one_of(
    st.sampled_from(COMMANDS),
    st.binary(max_size=80),
    st.tuples(st.sampled_from(COMMANDS), st.binary(max_size=20)).map(lambda t: t[0] + t[1]),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
endings = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"", b"\r\r\n"])


@st.composite
def smtp_streams(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A command stream (each line with a possibly wrong ending) and whether it ends there
    (else an end-of-data marker and QUIT follow); EOF is sent either way."""
    parts = draw(st.lists(st.tuples(lines, endings), max_size=25))
    return b"".join(a + b for a, b in parts), draw(st.booleans())


@pytest.mark.timeout(240)
def test_random_smtp_streams_end_with_a_reply_or_a_close(server: Server) -> None:
    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(smtp_streams())
    def one(case: tuple[bytes, bool]) -> None:
        stream, eof = case
        with socket.create_connection(("127.0.0.1", server.smtp_port), timeout=WAIT) as sock:
            with contextlib.suppress(OSError):  # the server may close first
                sock.sendall(stream + (b"" if eof else b"\r\n.\r\nQUIT\r\n"))
                sock.shutdown(socket.SHUT_WR)
            reply = bytearray()
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                except TimeoutError:
                    raise AssertionError(f"the server hung on {stream!r}") from None
                if not chunk:
                    break
                reply += chunk
        # Every reply line is well formed: three digits then a space or a hyphen.
        assert reply.startswith(b"220 "), reply
        assert reply.endswith(b"\r\n"), reply
        for line in bytes(reply).split(b"\r\n")[:-1]:
            assert line[:3].isdigit() and line[3:4] in (b" ", b"-"), (line, stream)
        server.assert_healthy()

    one()
    assert_smtp_transaction(server)


# ----------------------------------------------------------------------------- (c) config and CLI


def waypost(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - callers assert on the exit code
        [sys.executable, "-m", "waypost.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "WAYPOST_CONFIG": ""},
        stdin=subprocess.DEVNULL,
    )


def assert_clear_failure(result: subprocess.CompletedProcess[str], *names: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out, out
    assert result.stderr.strip(), "no message"
    assert len(result.stderr.splitlines()) <= 40, result.stderr
    for name in names:
        assert name in result.stderr, (name, result.stderr)


PEER_OK = '[[x400.peer]]\nname = "P-MTA"\naddress = "127.0.0.1:1102"\n'

#: (id, file content, names the message must contain). Content None: made below.
BAD_CONFIGS: list[tuple[str, str | bytes | None, tuple[str, ...]]] = [
    ("unknown-key", '[smtp]\nlisen = ["127.0.0.1:25"]\n', ("smtp.lisen", "listen")),
    ("wrong-type", '[smtp]\nmax_recipients = "many"\n', ("smtp.max_recipients",)),
    ("out-of-range", "[smtp]\nmax_recipients = -5\n", ("smtp.max_recipients",)),
    ("float-for-int", "[queue]\nbatch_size = 1.5\n", ("queue.batch_size",)),
    ("bad-listen-address", '[smtp]\nlisten = ["nowhere:99999"]\n', ("smtp.listen",)),
    ("bad-domain", '[local]\ndomains = ["not a domain"]\n', ("local.domains",)),
    ("bad-oraddress", '[local]\noraddresses = ["/C=GB/BOGUS=1/"]\n', ("local.oraddresses",)),
    ("bad-global-domain", '[x400]\nglobal_domain = "no slashes"\n', ("x400.global_domain",)),
    ("duplicate-peer", PEER_OK + PEER_OK, ("P-MTA",)),
    (
        "route-to-unknown-peer",
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=Z/"\nnext_hop = "x400:NOBODY-MTA"\n',
        ("NOBODY-MTA",),
    ),
    ("peer-bad-mode", PEER_OK + 'mode = "1999"\n', ("mode",)),
    ("toml-syntax", "[smtp\nlisten = [\n", ("line 1",)),
    ("unterminated-string", '[server]\nhostname = "mx\n', ("line 2",)),
    ("binary-garbage", bytes(range(256)) * 4, ()),
    ("section-not-table", "smtp = 5\n", ("smtp",)),
    ("unreadable", None, ("unreadable.toml",)),  # mode 000 (skipped as root)
    ("read-error", None, ("/proc/self/mem",)),  # EIO on read, even for root
    ("directory", None, ("directory.toml",)),
]
#: Each case goes through one of these (in turn: a subprocess costs ~0.5 s of CPU); the
#: loader itself is tested case by case in tests/test_config.py.
CONFIG_VERBS = ["config check", "queue list -c", "serve -c"]

#: (id, arguments ({config}: a good file whose database exists), names the message must hold).
BAD_ARGS: list[tuple[str, str, tuple[str, ...]]] = [
    ("unknown-verb", "frobnicate", ("frobnicate",)),
    ("no-verb", "", ("COMMAND",)),
    ("unknown-queue-verb", "queue frobnicate", ("frobnicate",)),
    ("queue-show-abc", "queue show abc", ("ID", "abc")),
    ("queue-show-missing-id", "queue show", ("ID",)),
    ("queue-show-negative", "queue show -c {config} -- -5", ()),
    ("queue-show-unknown-id", "queue show -c {config} 999999", ("999999",)),
    ("queue-hold-abc", "queue hold x", ("x",)),
    ("unknown-option", "queue list --frob", ("--frob",)),
    ("nonexistent-config", "queue list -c /nonexistent/w.toml", ("/nonexistent/w.toml",)),
    ("config-check-nonexistent", "config check /nonexistent/w.toml", ("/nonexistent",)),
    ("check-db-nonexistent", "check --db /nonexistent/mta.db", ("/nonexistent",)),
    ("submit-no-recipient", "submit -c {config} --from a@b.test", ("--to",)),
    ("submit-bad-from", "submit -c {config} --from <<<@@ --to bob@localhost", ("<<<@@",)),
    ("submit-bad-to", "submit -c {config} --from a@b.test --to @@nope", ("@@nope",)),
    ("submit-bad-oraddress", "submit -c {config} --from a@b.test --to /C=GB/X=1/", ("/C=GB/X=1/",)),
    (
        "submit-missing-file",
        "submit -c {config} /nonexistent/msg --from a@b --to bob@localhost",
        ("/nonexistent/msg",),
    ),
    ("route-no-address", "route -c {config}", ("ADDRESS",)),
    ("password-hash-unknown-option", "password-hash --rounds x", ("--rounds",)),
]


SUBMIT_TO = ("--from", "a@b.test", "--to", "bob@localhost")


def _config_case(root: Path, name: str, content: str | bytes | None) -> Path | None:
    """The file for one BAD_CONFIGS case (None: it cannot be made here)."""
    if name == "read-error":
        return Path("/proc/self/mem")
    path = root / f"{name}.toml"
    if name == "directory":
        path.mkdir()
    elif name == "unreadable":
        path.write_text("[server]\n")
        path.chmod(0)
        if os.access(path, os.R_OK):
            return None  # running as root: every file is readable
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        assert content is not None
        path.write_text(content)
    return path


@pytest.fixture(scope="module")
def cli_results(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str] | None]:
    """Every bad configuration and bad command line, run at once (each is a subprocess)."""
    root = tmp_path_factory.mktemp("bad-cli")
    config = root / "good.toml"
    config.write_text(
        f'[server]\nhostname = "mx.test"\ndata_dir = "{root / "data"}"\n'
        '[local]\ndomains = ["localhost"]\n[smtp]\nlisten = []\n[x400]\nlisten = []\n'
    )
    made = subprocess.run(
        [
            *(sys.executable, "-m", "waypost.cli.main", "submit", "-c", str(config)),
            *("--create", *SUBMIT_TO),
        ],
        input=b"Subject: x\r\n\r\nx\r\n",
        capture_output=True,
        env={**os.environ, "WAYPOST_CONFIG": ""},
        check=False,
    )
    assert made.returncode == 0, made.stderr  # now the database exists
    runs: dict[str, list[str] | None] = {}
    for i, (name, content, _) in enumerate(BAD_CONFIGS):
        path = _config_case(root, name, content)
        verb = CONFIG_VERBS[i % len(CONFIG_VERBS)]
        runs[name] = None if path is None else [*verb.split(), str(path)]
    for name, args, _ in BAD_ARGS:
        runs[name] = [a.replace("{config}", str(config)) for a in args.split()]
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = {
            key: pool.submit(waypost, *argv, cwd=root) if argv is not None else None
            for key, argv in runs.items()
        }
        return {key: f.result() if f is not None else None for key, f in futures.items()}


@pytest.mark.parametrize(("name", "names"), [(c[0], c[2]) for c in BAD_CONFIGS])
def test_bad_config_is_a_clear_error(
    cli_results: dict[str, subprocess.CompletedProcess[str] | None],
    name: str,
    names: tuple[str, ...],
) -> None:
    result = cli_results[name]
    if result is None:
        pytest.skip("running as root: every file is readable")
    assert_clear_failure(result, *names)
    assert result.returncode == 78, (result.returncode, result.stderr)


@pytest.mark.parametrize(("name", "names"), [(a[0], a[2]) for a in BAD_ARGS])
def test_bad_cli_arguments_are_a_clear_error(
    cli_results: dict[str, subprocess.CompletedProcess[str] | None],
    name: str,
    names: tuple[str, ...],
) -> None:
    result = cli_results[name]
    assert result is not None
    assert_clear_failure(result, *names)
