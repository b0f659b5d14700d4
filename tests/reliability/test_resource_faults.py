"""Resource faults: descriptors exhausted, disk full, next hops that stall or reset,
slow-loris clients and connection floods. Waypost must refuse with a temporary error,
lose nothing it acknowledged, log an event and carry on serving the others."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port, make_message, running_service

from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.osi.stack import Association, Mode, Open, Role
from waypost.service import Service
from waypost.store.base import StoreError
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu

SMITH = "/C=GB/ADMD= /PRMD=A/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
FAST_QUEUE = "[queue]\npoll_interval = 0.1\nmin_backoff = 0.5\nmax_backoff = 1\n"


# --- helpers -------------------------------------------------------------------------------


async def start(
    tmp_path: Path, name: str, toml: str, *, data_dir: Path | None = None, client: str = ""
) -> Service:
    """An in-process Waypost named `name` (hostname NAME.test, MTA NAME-MTA)."""
    return await running_service(
        tmp_path,
        f'[server]\nhostname = "{name}.test"\ndata_dir = "{data_dir or tmp_path / name}"\n'
        f'[local]\nx400_store = "{tmp_path / name}-x400"\n'
        'oraddresses = ["/C=GB/ADMD= /PRMD=' + name.upper() + '/"]\n'
        '[smtp_client]\ntls = "none"\n' + client + toml,
        name=name,
    )


def x400_pair_config(b_port: int) -> tuple[str, str]:
    """The configuration of A (routes PRMD=B to B-MTA at `b_port`) and of B (knows A-MTA)."""
    a = (
        FAST_QUEUE + f'[x400]\nlisten = ["127.0.0.1:{free_port()}"]\nmta_name = "A-MTA"\n'
        'global_domain = "/C=GB/ADMD= /PRMD=A/"\n'
        f'[[x400.peer]]\nname = "B-MTA"\naddress = "127.0.0.1:{b_port}"\n'
        'our_name = "A-MTA"\nour_password = "secret-a"\npeer_password = "secret-b"\n'
        "checkpoint_size = 1\nwindow_size = 3\ntransfer_interval = 0.3\nopen_interval = 1\n"
        "max_transfer_retries = 100\nanswer_timeout = 1\nconnect_timeout = 2\n"
        "disconnect_timeout = 1\n"
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=B/"\nnext_hop = "x400:B-MTA"\n'
    )
    b = (
        f'[x400]\nlisten = ["127.0.0.1:{b_port}"]\nmta_name = "B-MTA"\n'
        'global_domain = "/C=GB/ADMD= /PRMD=B/"\n'
        '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:1"\n'
        'peer_password = "secret-a"\nour_password = "secret-b"\n'
    )
    return a, b


def x400_message(size: int, ipm_id: str) -> Message:
    text = "".join(f"line {i:06d} of a long report\n" for i in range(max(1, size // 28)))
    content = build_ipm(
        originator=SMITH, recipients=[JONES], subject=ipm_id, text=text, ipm_id=ipm_id
    )
    envelope = Envelope(
        mts_id=f"/C=GB/ADMD= /PRMD=A/;{ipm_id}",
        originator=SMITH,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    return Message(envelope=envelope, content=content)


def x400_delivered(svc: Service) -> list[Path]:
    return sorted(Path(svc.config.local.x400_store).glob("*/new/*.p1"))


async def wait_until(predicate: object, what: str, timeout: float = 30) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def event_ids(caplog: pytest.LogCaptureFixture) -> set[int]:
    found = (getattr(r, "waypost_event", None) for r in caplog.records)
    return {e.id for e in found if e is not None}


def assert_no_traceback(caplog: pytest.LogCaptureFixture, *, disk_full: bool = False) -> None:
    """No traceback and no unexpected-error event, full disk or not (`disk_full` is kept
    for the callers' readability)."""
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    unexpected = [
        r.getMessage()
        for r in caplog.records
        if getattr(getattr(r, "waypost_event", None), "id", None) == 1003
    ]
    assert unexpected == [], unexpected


def smtp_send(port: int, rcpts: list[str], body: bytes) -> tuple[int, str]:
    """One SMTP transaction; the reply that ended it (250 after DATA, or the refusal)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.ehlo("client.test")
        code, text = client.mail("sender@client.test")
        if code != 250:
            return code, text.decode()
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code not in (250, 251):
                return code, text.decode()
        code, text = client.data(body)
        return code, text.decode()


def smtp_body(marker: str, size: int = 0) -> bytes:
    filler = b"".join(b"%06d padding padding padding padding\r\n" % i for i in range(size // 40))
    return f"Subject: {marker}\r\nX-Marker: {marker}\r\n\r\nhello\r\n".encode() + filler


class FakeHop:
    """A tiny SMTP next hop. At the end of DATA it answers 250 (`mode` "ok"), never answers
    ("stall"), or resets the connection halfway through the content ("reset")."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.accepted: list[bytes] = []  # contents answered with 250
        self.broken = 0  # transactions stalled or reset
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()

    def count(self, marker: str) -> int:
        return sum(f"X-Marker: {marker}\r\n".encode() in data for data in self.accepted)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"220 hop.test ESMTP fake\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-hop.test\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    mode = self.mode
                    if mode == "reset":
                        await reader.readline()  # some of the content, then a reset
                        self.broken += 1
                        writer.transport.abort()
                        return
                    data = await reader.readuntil(b"\r\n.\r\n")
                    if mode == "stall":
                        self.broken += 1
                        await reader.read()  # no answer ever: wait for the client to give up
                        return
                    self.accepted.append(data)
                    writer.write(b"250 2.0.0 accepted\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        writer.close()


class FaultyRelay:
    """Relays TCP to `target`. The first connection misbehaves once the client has sent
    `after` octets: "cut" resets both sides, "stall" stops forwarding and holds them open."""

    def __init__(self, target: int, after: int, fault: str) -> None:
        self.target = target
        self.after = after
        self.fault = fault
        self.carried: list[int] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        index = len(self.carried)
        self.carried.append(0)
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [c_writer, s_writer]
        faulted = asyncio.Event()

        async def upstream() -> None:
            while data := await c_reader.read(4096):
                if index == 0 and self.carried[0] + len(data) > self.after:
                    faulted.set()
                    return
                self.carried[index] += len(data)
                s_writer.write(data)
                await s_writer.drain()

        async def downstream() -> None:
            while (data := await s_reader.read(4096)) and not faulted.is_set():
                c_writer.write(data)
                await c_writer.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(ConnectionError):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if faulted.is_set() and self.fault == "stall":
            # Hold both connections open and silent until the client gives up.
            tasks[1].cancel()
            with contextlib.suppress(ConnectionError):
                await c_reader.read()
        for task in tasks:
            task.cancel()
        for writer in (c_writer, s_writer):
            writer.transport.abort()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at `path` (needs root); unmounted afterwards."""
    path.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        done = subprocess.CompletedProcess([], 1, "", str(exc))
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a {size} tmpfs at {path} (needs root or CAP_SYS_ADMIN): "
            f"{done.stderr.strip()}; the disk-full test needs a small file system"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write `path` until the file system is full; the octets written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 4096, 512):
            block = b"\0" * chunk
            while True:
                try:
                    written += os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return written


# --- descriptors exhausted: the X.400 listener ---------------------------------------------


def test_x400_listener_survives_descriptor_exhaustion(tmp_path: Path) -> None:
    """`waypost serve` with few file descriptors: accept() on the P1 listener fails with
    EMFILE, an event is logged, and the listener serves again once descriptors are free.
    (tests/test_listener.py covers the SMTP listener the same way.)"""
    port = free_port()
    config = tmp_path / "waypost.toml"
    config.write_text(
        '[server]\nhostname = "mx.test"\ndata_dir = "data"\n[smtp]\nlisten = []\n'
        f'[x400]\nlisten = ["127.0.0.1:{port}"]\nbind_timeout = 0.5\n'
    )
    few_descriptors = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'waypost.cli.main', *sys.argv[1:]])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", few_descriptors, "serve", "-c", str(config)],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )

    def served(timeout: float) -> bool:
        """Accepted: without a bind, the listener closes the connection after bind_timeout."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
                return sock.recv(100) == b""
        except OSError:  # a timeout (waiting in the backlog) or a reset
            return False

    try:
        deadline = time.monotonic() + 20
        while not served(2):
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        held = []
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"\x03")  # keep it from looking idle; the bind timer closes it anyway
            held.append(sock)
        time.sleep(1.0)
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 20
        while not served(3):
            assert time.monotonic() < deadline, "the X.400 listener did not recover"
        assert proc.poll() is None, "the server process died"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "1600 interface: accept() on x400 127.0.0.1" in err and "EMFILE" in err
    assert "Traceback" not in err


# --- disk full -----------------------------------------------------------------------------


@pytest.mark.interop
async def test_disk_full_refuses_new_mail_and_loses_nothing_accepted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """M's data directory is an 8 MiB tmpfs. Filled up: SMTP answers 452 4.3.1 (the free
    space guard) or 451 (the store write failed), X.400 transfers are aborted unconfirmed;
    what was acknowledged before stays queued and is delivered, once, when space returns."""
    caplog.set_level(logging.INFO, logger="waypost")
    hop = FakeHop()
    hop_port = free_port()  # nobody listens yet: M defers its remote mail
    m_port, smtp_port = free_port(), free_port()
    a_toml, m_x400 = x400_pair_config(m_port)
    services: list[Service] = []
    with tmpfs(tmp_path / "mdata", "8m") as mdata:
        filler = mdata / "filler"
        try:
            m = await start(
                tmp_path,
                "b",
                FAST_QUEUE + "[store]\nlease_seconds = 3\n"
                f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\nmin_free_space = 1048576\n'
                f'[[route]]\nmatch = "remote.test"\nnext_hop = "smtp:[127.0.0.1]:{hop_port}"\n'
                + m_x400,
                data_dir=mdata,
            )
            services.append(m)
            a = await start(tmp_path, "a", "[smtp]\nlisten = []\n" + a_toml)
            services.append(a)
            assert m.smtp is not None

            # Before: three messages acknowledged with 250 (the hop is down: deferred).
            for n in range(3):
                code, text = await asyncio.to_thread(
                    smtp_send, smtp_port, ["user@remote.test"], smtp_body(f"before-{n}")
                )
                assert code == 250, (code, text)
            await wait_until(lambda: 1400 in event_ids(caplog), "the deferral of the three")

            await asyncio.to_thread(fill, filler)
            await asyncio.sleep(1.2)  # the free-space guard looks at most once a second

            # The guard: MAIL FROM refused with 452 4.3.1.
            code, text = await asyncio.to_thread(
                smtp_send, smtp_port, ["user@remote.test"], smtp_body("guarded")
            )
            assert (code, text[:5]) == (452, "4.3.1"), (code, text)
            assert 1705 in event_ids(caplog)

            # Without the guard, the write itself fails: 451 after DATA, never 250.
            m.smtp.config.disk.min_free = 0
            code, text = await asyncio.to_thread(
                smtp_send, smtp_port, ["user@remote.test"], smtp_body("unstored", 600_000)
            )
            assert code == 451, (code, text)
            assert {1202, 1707} <= event_ids(caplog)

            # X.400 from A: M cannot store it, aborts without confirming; A keeps it.
            await a.submit(x400_message(600_000, "x400-full"))
            await wait_until(lambda: 1804 in event_ids(caplog), "M's x400-store-failed event")
            await wait_until(
                lambda: any("Adjacent MTA B-MTA" in t for t in texts(caplog)),
                "A's transfer-failed event",
            )
            assert x400_delivered(m) == []
            a_messages, a_recipients = await a.store.counts()
            assert (a_messages, a_recipients) == (1, 1)

            # Everything acknowledged is still in M's database.
            m_messages, m_recipients = await m.store.counts()
            assert (m_messages, m_recipients) == (3, 3)

            # Space returns and the hop comes up: all delivered, once each.
            filler.unlink()
            m.smtp.config.disk.min_free = 1048576
            await hop.start(hop_port)
            await wait_until(
                lambda: all(hop.count(f"before-{n}") for n in range(3)), "the three delivered"
            )
            await wait_until(lambda: x400_delivered(m) != [], "the X.400 message delivered")
            await asyncio.sleep(1.5)  # the guard sees the space again; any duplicate shows
            code, text = await asyncio.to_thread(
                smtp_send, smtp_port, ["user@remote.test"], smtp_body("after")
            )
            assert code == 250, (code, text)
            await wait_until(lambda: hop.count("after") == 1, "the new message delivered")
            assert [hop.count(f"before-{n}") for n in range(3)] == [1, 1, 1]
            assert hop.count("guarded") == hop.count("unstored") == 0
            (file,) = x400_delivered(m)
            got = decode_mts_apdu(file.read_bytes())
            assert isinstance(got, P1Message)
            assert got.envelope.envelope.mts_id == "/C=GB/ADMD= /PRMD=A/;x400-full"
            assert_no_traceback(caplog, disk_full=True)
        finally:
            for svc in services:
                await svc.stop()
            await hop.close()


async def test_queue_manager_store_error_is_not_unexpected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    m = await start(tmp_path, "m", FAST_QUEUE + "[smtp]\nlisten = []\n[x400]\nlisten = []\n")
    try:

        async def full(*args: object, **kwargs: object) -> object:
            raise StoreError("database or disk is full")

        m.manager.store.claim = full  # type: ignore[method-assign,assignment]
        m.manager.wake()
        await asyncio.sleep(0.5)
    finally:
        await m.stop()
    assert_no_traceback(caplog)
    # Said as what it is (the store cannot be written), not as a bug to report.
    texts = [r.getMessage() for r in caplog.records]
    assert any("queue manager could not claim work" in t for t in texts), texts


# --- next hops that stall or reset ---------------------------------------------------------


@pytest.mark.parametrize("fault", ["stall", "reset"])
async def test_smtp_next_hop_that_stalls_or_resets_in_data(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The hop stalls after the content (no final reply) or resets in the middle of it:
    the recipient is deferred, not lost, and delivered once the hop behaves."""
    caplog.set_level(logging.INFO, logger="waypost")
    hop = FakeHop(fault)
    hop_port = await hop.start()
    m: Service | None = None
    try:
        m = await start(
            tmp_path,
            "m",
            FAST_QUEUE + "[smtp]\nlisten = []\n[x400]\nlisten = []\n"
            f'[[route]]\nmatch = "remote.test"\nnext_hop = "smtp:[127.0.0.1]:{hop_port}"\n',
            client="connect_timeout = 2\ncommand_timeout = 1\ndata_timeout = 1\n",
        )
        body = smtp_body(f"hop-{fault}", 20_000)
        await m.submit(make_message(("user@remote.test",), body=body))
        await wait_until(lambda: hop.broken >= 1, f"the hop to {fault}")
        await wait_until(lambda: 1400 in event_ids(caplog), "the deferral")
        assert hop.accepted == []
        messages, recipients = await m.store.counts()
        assert (messages, recipients) == (1, 1)
        hop.mode = "ok"
        await wait_until(lambda: hop.count(f"hop-{fault}") == 1, "the delivery")
        await wait_until(lambda: 1500 in event_ids(caplog), "the delivered event")
        await asyncio.sleep(1.5)  # a second delivery would show by now
        assert hop.count(f"hop-{fault}") == 1
        assert await m.store.counts() == (0, 0)
        deferred = [t for t in texts(caplog) if "deferred until" in t]
        assert deferred and "user@remote.test" in deferred[0]
        assert_no_traceback(caplog)
    finally:
        if m is not None:
            await m.stop()
        await hop.close()


@pytest.mark.parametrize("fault", ["stall", "cut"])
async def test_x400_next_hop_that_stalls_or_resets_mid_activity(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay in front of B binds, then stalls or resets halfway through the RTSE activity
    carrying the message: A defers it, and B ends up with it exactly once."""
    caplog.set_level(logging.INFO, logger="waypost")
    size = 64 * 1024
    b_port = free_port()
    relay = FaultyRelay(b_port, size // 2, fault)
    relay_port = await relay.start()
    a_toml, b_toml = x400_pair_config(relay_port)
    b_toml = b_toml.replace(f"127.0.0.1:{relay_port}", f"127.0.0.1:{b_port}")
    services: list[Service] = []
    try:
        b = await start(tmp_path, "b", FAST_QUEUE + "[smtp]\nlisten = []\n" + b_toml)
        services.append(b)
        a = await start(tmp_path, "a", "[smtp]\nlisten = []\n" + a_toml)
        services.append(a)
        sent = x400_message(size, f"x400-{fault}")
        await a.submit(sent)
        await wait_until(lambda: x400_delivered(b) != [], "the delivery in B", timeout=40)
        await asyncio.sleep(1.0)  # a duplicate would show by now
        (file,) = x400_delivered(b)
        got = decode_mts_apdu(file.read_bytes())
        assert isinstance(got, P1Message) and got.content == sent.content
        assert len(relay.carried) >= 2 and relay.carried[0] <= size // 2
        logged = texts(caplog)
        assert any("Adjacent MTA B-MTA" in t and "deferred" in t for t in logged), logged
        assert any("deferred until" in t for t in logged)
        assert await a.store.counts() == (0, 0)
        assert_no_traceback(caplog)
    finally:
        for svc in services:
            await svc.stop()
        await relay.close()


# --- slow-loris clients --------------------------------------------------------------------


async def trickle(port: int, data: bytes, interval: float, limit: float) -> str:
    """Send `data` one octet every `interval` seconds; how it ended: "closed" by the
    server, or "open" still after `limit` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    deadline = time.monotonic() + limit
    try:
        for octet in data:
            if time.monotonic() > deadline:
                return "open"
            writer.write(bytes([octet]))
            try:
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        while await reader.read(4096):
                            pass
                        return "closed"
            except ConnectionError:
                return "closed"
        return "open"
    finally:
        writer.transport.abort()


async def test_slow_loris_clients_are_closed_and_others_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    smtp_port, b_port = free_port(), free_port()
    a_toml, b_toml = x400_pair_config(b_port)
    b_toml = b_toml.replace(
        'mta_name = "B-MTA"\n', 'mta_name = "B-MTA"\nbind_timeout = 1\nidle_timeout = 1\n'
    )
    services: list[Service] = []
    try:
        b = await start(
            tmp_path,
            "b",
            FAST_QUEUE + f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\nidle_timeout = 1\n'
            "data_timeout = 2\nmin_free_space = 0\n" + b_toml,
        )
        services.append(b)
        a = await start(tmp_path, "a", "[smtp]\nlisten = []\n" + a_toml)
        services.append(a)
        # An SMTP command line, and a transport connect request, each dribbled out.
        smtp_loris = b"EHLO " + b"x" * 200 + b"\r\n"
        x400_loris = bytes.fromhex("0300001611e00000000100c0010ac1020001c2020001")
        lorises = [
            asyncio.ensure_future(trickle(smtp_port, smtp_loris, 0.3, 12)) for _ in range(20)
        ] + [asyncio.ensure_future(trickle(b_port, x400_loris, 0.3, 12)) for _ in range(20)]
        await asyncio.sleep(0.5)
        # Meanwhile a normal SMTP client and an X.400 association are served.
        code, text = await asyncio.to_thread(
            smtp_send, smtp_port, ["bob@localhost"], smtp_body("normal")
        )
        assert code == 250, (code, text)
        await a.submit(x400_message(2000, "x400-loris"))
        await wait_until(lambda: x400_delivered(b) != [], "the X.400 delivery")
        outcomes = await asyncio.gather(*lorises)
        assert outcomes[20:] == ["closed"] * 20, outcomes[20:]
        assert outcomes[:20] == ["closed"] * 20, outcomes[:20]
        ids = event_ids(caplog)
        assert 1704 in ids and 1807 in ids
        assert_no_traceback(caplog)
    finally:
        for svc in services:
            await svc.stop()


# --- a flood of connections ----------------------------------------------------------------


async def test_connection_flood_is_refused_with_421_and_service_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    port = free_port()
    m: Service | None = None
    held: list[socket.socket] = []
    try:
        m = await start(
            tmp_path,
            "m",
            FAST_QUEUE + f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nmax_connections = 8\n'
            "max_connections_per_client = 5\nmin_free_space = 0\n[x400]\nlisten = []\n",
        )

        def connect(source: str) -> tuple[socket.socket, bytes]:
            sock = socket.create_connection(
                ("127.0.0.1", port), timeout=10, source_address=(source, 0)
            )
            held.append(sock)
            return sock, sock.recv(200)

        def flood() -> tuple[list[bytes], list[bytes], list[bytes]]:
            first = [connect("127.0.0.1")[1] for _ in range(12)]
            second = [connect("127.0.0.2")[1] for _ in range(3)]
            third = [connect("127.0.0.3")[1] for _ in range(3)]
            return first, second, third

        first, second, third = await asyncio.to_thread(flood)
        # Per client: five served, the rest refused; in all: eight, then refused.
        assert [g[:3] for g in first] == [b"220"] * 5 + [b"421"] * 7, first
        assert [g[:3] for g in second] == [b"220"] * 3, second
        assert [g[:3] for g in third] == [b"421"] * 3, third
        assert b"421 4.7.0" in first[-1] and b"too many connections" in third[0]
        logged = texts(caplog)
        assert any("Connection from 127.0.0.1 refused" in t for t in logged)
        assert any("Connection from 127.0.0.3 refused" in t for t in logged)
        # A session opened before the flood still works.
        sock = held[0]
        sock.settimeout(5)
        await asyncio.to_thread(sock.sendall, b"NOOP\r\n")
        assert (await asyncio.to_thread(sock.recv, 100)).startswith(b"250")
        for s in held:
            s.close()
        held.clear()
        await asyncio.sleep(0.3)
        code, text = await asyncio.to_thread(smtp_send, port, ["bob@localhost"], smtp_body("after"))
        assert code == 250, (code, text)
        assert m.smtp is not None
        assert_no_traceback(caplog)
    finally:
        for s in held:
            s.close()
        if m is not None:
            await m.stop()


async def test_x400_connection_flood_is_refused_and_service_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """More inbound connections than `[x400] max_connections` / per client: the extra ones
    are closed at once with an event, the others stay, and the listener serves afterwards."""
    caplog.set_level(logging.INFO, logger="waypost")
    port = free_port()
    m: Service | None = None
    held: list[socket.socket] = []
    try:
        m = await start(
            tmp_path,
            "m",
            FAST_QUEUE + "[smtp]\nlisten = []\n"
            f'[x400]\nlisten = ["127.0.0.1:{port}"]\nmax_connections = 6\n'
            "max_connections_per_client = 3\n",
        )

        def connect(source: str) -> bool:
            """True when the connection is kept (silent), False when closed at once."""
            sock = socket.create_connection(
                ("127.0.0.1", port), timeout=10, source_address=(source, 0)
            )
            held.append(sock)
            sock.settimeout(0.5)
            try:
                return sock.recv(10) != b""
            except TimeoutError:
                return True

        def flood() -> list[list[bool]]:
            return [[connect(f"127.0.0.{n}") for _ in range(5)] for n in (1, 2, 3)]

        first, second, third = await asyncio.to_thread(flood)
        assert first == [True] * 3 + [False] * 2, first  # three per client
        assert second == [True] * 3 + [False] * 2, second
        assert third == [False] * 5, third  # six in all
        logged = texts(caplog)
        assert any("127.0.0.3" in t and "aborted" in t for t in logged), logged
        for s in held:
            s.close()
        held.clear()
        await asyncio.sleep(0.3)

        def transport_connect() -> bytes:
            initiator = Association(role=Role.INITIATOR, mode=Mode.NORMAL_1988)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(initiator.send(Open(bind_argument=b"\x05\x00")))
                return sock.recv(100)

        answer = await asyncio.to_thread(transport_connect)
        assert answer[:2] == b"\x03\x00" and answer[5] == 0xD0, answer  # TPKT, TP0 CC
        assert_no_traceback(caplog)
    finally:
        for s in held:
            s.close()
        if m is not None:
            await m.stop()
