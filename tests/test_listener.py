"""The listener survives accept() failures (EMFILE) and enforces its connection limits."""

from __future__ import annotations

import asyncio
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from waypost.net.listener import Admission, ConnectionLimits, Listener, client_network

HERE = Path(__file__).parent


def greeting(port: int, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        return sock.recv(100)


def test_accept_emfile_is_an_event_and_the_listener_recovers() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "listener_server.py"), "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        assert greeting(port) == b"220 hello\r\n"
        # Hold more connections than the server has file descriptors.
        held = []
        for _ in range(60):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(1.0)
        greeted = 0
        for sock in held:
            sock.settimeout(0.2)
            try:
                if sock.recv(100).startswith(b"220"):
                    greeted += 1
            except TimeoutError:
                pass
        assert 10 < greeted < 60, greeted  # some were served, the rest wait in the backlog
        # Connections already open keep working while accept() fails.
        held[0].sendall(b"ping\r\n")
        held[0].settimeout(5)
        assert held[0].recv(100) == b"ping\r\n"
        for sock in held:
            sock.close()
        # Once descriptors are free again, the listener serves new connections.
        deadline = time.monotonic() + 20
        while True:
            try:
                if greeting(port, timeout=1) == b"220 hello\r\n":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "listener did not recover"
        assert proc.poll() is None, "the server process died"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "1600 interface: accept() on test 127.0.0.1" in err and "EMFILE" in err
    assert "Traceback" not in err


class Recorder(asyncio.Protocol):
    def __init__(self, admission: Admission, release: Callable[[], None]) -> None:
        self.admission = admission
        self.release = release

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"refused\r\n" if self.admission.refused else b"ok\r\n")
        if self.admission.refused:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.release()


async def test_connection_limits_total_and_per_client() -> None:
    listener = Listener(
        "limits",
        [("127.0.0.1", 0)],
        Recorder,
        limits=ConnectionLimits(max_total=3, max_per_client=2),
    )
    await listener.start()
    port = listener.bound[0][1]

    async def connect(host: str = "127.0.0.1") -> tuple[bytes, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port)
        return await reader.readline(), writer

    first, w1 = await connect()
    second, w2 = await connect()
    third, w3 = await connect()  # the third from one client: over the per-client limit
    assert (first, second, third) == (b"ok\r\n", b"ok\r\n", b"refused\r\n")
    w1.close()
    await w1.wait_closed()
    await asyncio.sleep(0.1)
    fourth, w4 = await connect()  # a slot came free
    assert fourth == b"ok\r\n"
    assert listener.open_connections == 2
    for w in (w2, w3, w4):
        w.close()
    await listener.close()


def test_waypost_smtp_survives_descriptor_exhaustion(tmp_path: Path) -> None:
    """`waypost serve` with few file descriptors: accept() fails, the SMTP server carries on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "waypost.toml"
    config.write_text(
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
        "[x400]\nlisten = []\n"
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nmax_connections_per_client = 1000\n'
        f"[queue]\npoll_interval = 0.2\n"
    )

    # Lower the limit in the child itself (preexec_fn is unsafe beside threads), then exec.
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
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert greeting(port, timeout=1).startswith(b"220 mx.test")
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        early = smtplib.SMTP("127.0.0.1", port, timeout=10)
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        time.sleep(1.0)
        # A session opened before the exhaustion still completes a transaction meanwhile.
        assert early.sendmail("a@x.example", ["carol@localhost"], b"x\r\n") == {}
        early.quit()
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                    assert client.sendmail("a@x.example", ["bob@localhost"], b"x\r\n") == {}
                break
            except (OSError, smtplib.SMTPException):
                assert time.monotonic() < deadline, "the server did not recover"
                time.sleep(0.2)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "1600 interface: accept() on smtp 127.0.0.1" in err and "EMFILE" in err
    assert "Traceback" not in err


async def test_one_network_cannot_take_every_slot() -> None:
    # Three addresses of 127.0.0.0/24 share the network's two slots; another /24 still
    # gets in, though each client is far under its own limit.
    listener = Listener(
        "networks",
        [("127.0.0.1", 0)],
        Recorder,
        limits=ConnectionLimits(max_total=10, max_per_client=5, max_per_network=2),
    )
    await listener.start()
    port = listener.bound[0][1]

    async def connect(source: str) -> tuple[bytes, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        return await reader.readline(), writer

    answers = [await connect(source) for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4")]
    assert [a for a, _ in answers] == [b"ok\r\n", b"ok\r\n", b"refused\r\n"]
    other, w_other = await connect("127.0.1.2")
    assert other == b"ok\r\n"
    for _, w in [*answers, (other, w_other)]:
        w.close()
    await listener.close()


def test_client_network_is_a_slash_24_or_a_slash_64() -> None:
    assert client_network("192.0.2.77") == "192.0.2.0/24"
    assert client_network("::ffff:192.0.2.77") == "192.0.2.0/24"
    assert client_network("2001:db8:1:2:3::4") == "2001:db8:1:2::/64"
    assert client_network("fe80::1%eth0") == "fe80::/64"
    assert client_network("not an address") == "not an address"
