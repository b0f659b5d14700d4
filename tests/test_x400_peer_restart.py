"""An adjacent MTA that restarts between two transfers: the association it no longer knows is
replaced at once, and the message sent next is not charged for it (no attempt counted, no
`transfer_interval` wait)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import free_port
from test_delivery_x400 import (
    B_CONFIG,
    JONES,
    ORIGINATOR,
    a_config,
    delivered_at,
    fake_peer,
    message,
    rows,
    start,
    until,
)

from waypost import events
from waypost.osi.stack import (
    NEED_DATA,
    Accept,
    Association,
    ConfirmTransfer,
    Mode,
    OpenRequest,
    Role,
    TransferReceived,
)
from waypost.service import Service
from waypost.x400.p1_bind import MTABind, encode_bind
from waypost.x400.p1_objects import decode_object

# A wait for the transfer interval (or the queue's back-off) would outlast `until`'s patience.
NEVER = 3600


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_second_message_after_the_peer_restarts_is_delivered_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    b_port = free_port()
    parameters = f"transfer_interval = {NEVER}\nopen_interval = {NEVER}\n"
    b = await start(tmp_path, "b", b_port, B_CONFIG)
    a = await start(tmp_path, "a", free_port(), a_config(f"127.0.0.1:{b_port}", parameters))
    try:
        await a.submit(message(1))
        await until(lambda: _equals(delivered_at(b), 1), "the first message at B")
        assert a.x400_deliverer is not None
        pool = a.x400_deliverer._pools["B-MTA"]
        assert pool.opened == 1  # the association stays open, idle, for the next message

        await b.stop()
        # B's abort (or its FIN) is read at once: the dead association leaves the pool.
        await until(lambda: _true(pool.opened == 0), "the idle association dropped")
        b = await start(tmp_path, "b", b_port, B_CONFIG)

        await a.submit(message(2))
        await until(lambda: _equals(delivered_at(b), 2), "the second message at B (restarted)")
        assert await asyncio.to_thread(rows, a.store.path) == []
        failed = [
            r
            for r in caplog.records
            if getattr(r, "waypost_event", None) is events.X400_TRANSFER_FAILED
        ]
        assert failed == []
    finally:
        await a.stop()
        await b.stop()


def _confirms_one_then_drops() -> tuple[
    Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], list[int]
]:
    """A peer whose first association confirms one transfer, then (its host restarted, no
    FIN ever came) resets the connection at the next bytes; later associations are fine."""
    confirmed: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = not confirmed
        assoc = Association(role=Role.RESPONDER, mode=Mode.NORMAL_1988)
        while data := await reader.read(65536):
            if first and confirmed:
                writer.transport.abort()  # a reset: the association is unknown here now
                return
            assoc.receive_data(data)
            while (event := assoc.next_event()) is not NEED_DATA:
                if isinstance(event, OpenRequest):
                    result = encode_bind(MTABind(name="B-MTA", password="secret-b"))
                    writer.write(assoc.send(Accept(bind_result=result)))
                elif isinstance(event, TransferReceived):
                    writer.write(assoc.send(ConfirmTransfer()))
                    confirmed.append(len(event.apdu))
            writer.write(assoc.data_to_send())

    return handler, confirmed


async def test_idle_association_reset_at_its_next_use_is_replaced_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    parameters = f"transfer_interval = {NEVER}\nopen_interval = {NEVER}\n"
    handler, confirmed = _confirms_one_then_drops()
    async with fake_peer(handler) as (address, connections):
        a = await start(tmp_path, "a", free_port(), a_config(address, parameters))
        try:
            await a.submit(message(1))
            await until(lambda: _true(len(confirmed) == 1), "the first transfer confirmed")
            await until(lambda: _rows_empty(a), "the first message delivered")
            await a.submit(message(2))
            await until(lambda: _true(len(confirmed) == 2), "the second transfer confirmed")
            await until(lambda: _rows_empty(a), "the second message delivered, not deferred")
            assert connections[0] == 2
            names = [getattr(r, "waypost_event", None) for r in caplog.records]
            assert events.X400_IDLE_ASSOCIATION_LOST in names
            assert events.X400_TRANSFER_FAILED not in names
        finally:
            await a.stop()


async def _true(value: bool) -> bool:
    return value


async def _rows_empty(a: Service) -> bool:
    return await asyncio.to_thread(rows, a.store.path) == []


# ----------------------------------------------------------------------------- B a process


@contextmanager
def waypost_process(root: Path, port: int, config: str) -> Iterator[subprocess.Popen[bytes]]:
    """`waypost serve` in its own process, with `config`; stopped (or already killed) after."""
    path = root / "b-process.toml"
    path.write_text(config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(path)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "WAYPOST_CONFIG": ""},
    )
    try:
        _wait_for_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        assert proc.poll() is None, f"waypost serve exited with {proc.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _b_process_config(root: Path, port: int) -> str:
    return (
        f'[server]\nhostname = "b.test"\ndata_dir = "{root / "b-data"}"\n'
        f'[log]\njson_file = "{root / "b-events.jsonl"}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f'[local]\nx400_store = "{root / "b-x400"}"\noraddresses = ["/C=GB/ADMD= /PRMD=B/"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{port}"]\nmta_name = "B-MTA"\n' + B_CONFIG
    )


def _delivered(root: Path, n: int) -> bool:
    """Whether message `n` is in B's X.400 store (B, killed, may deliver one twice)."""
    wanted = message(n).envelope.mts_id
    return any(
        decode_object(f.read_bytes())[0].mts_id == wanted
        for f in (root / "b-x400").glob("*/new/*.p1")
    )


@pytest.mark.parametrize("how", ["terminated", "killed"])
async def test_peer_process_restart_then_next_message_is_delivered_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """B is a `waypost serve` process: stopped cleanly (it aborts its associations) or
    killed (only the kernel's FIN arrives), then started again between two messages."""
    caplog.set_level(logging.INFO, logger="waypost")
    b_port = free_port()
    parameters = f"transfer_interval = {NEVER}\nopen_interval = {NEVER}\n"
    b_config = _b_process_config(tmp_path, b_port)
    a = await start(tmp_path, "a", free_port(), a_config(f"127.0.0.1:{b_port}", parameters))
    try:
        with waypost_process(tmp_path, b_port, b_config) as b:
            await a.submit(message(1))
            await until(lambda: _true(_delivered(tmp_path, 1)), "message 1 at B")
            if how == "killed":
                b.kill()
            else:
                b.terminate()
            await asyncio.to_thread(b.wait, 20)
        with waypost_process(tmp_path, b_port, b_config):
            await a.submit(message(2))
            await until(lambda: _true(_delivered(tmp_path, 2)), "message 2 at B")
            await until(lambda: _rows_empty(a), "message 2 delivered, not deferred")
        names = [getattr(r, "waypost_event", None) for r in caplog.records]
        assert events.X400_TRANSFER_FAILED not in names
    finally:
        await a.stop()


# ------------------------------------------------------- an operator's retry, peer back up


def _a_process_config(root: Path, a_port: int, b_port: int) -> str:
    """A as a process: the peer B behind a long open interval and a long queue back-off, so
    that only the operator's retry can bring the message to B within the test's patience."""
    peer = a_config(
        f"127.0.0.1:{b_port}", f"transfer_interval = {NEVER}\nopen_interval = {NEVER}\n"
    )
    route, _, peer_table = peer.partition("[[x400.peer]]")
    return (
        f'[server]\nhostname = "a.test"\ndata_dir = "{root / "a-data"}"\n'
        f'[log]\njson_file = "{root / "a-events.jsonl"}"\n'
        f"[queue]\nmin_backoff = {NEVER}\nmax_backoff = {NEVER}\n"
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f'[local]\noraddresses = ["/C=GB/ADMD= /PRMD=A/"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{a_port}"]\nmta_name = "A-MTA"\n'
        f"{route}[[x400.peer]]{peer_table}"
    )


def _cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waypost.cli.main", *args, "-c", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "WAYPOST_CONFIG": ""},
    )


def _queue_rows(root: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(root / "a-data" / "mta.db") as conn:
        return list(conn.execute("SELECT state, last_error, attempts FROM recipients"))


async def test_queue_retry_opens_to_a_peer_back_up_at_once(tmp_path: Path) -> None:
    """The peer was down when the message came (its open failed: hop down, open interval
    running); once it is back, `waypost queue retry` makes the running MTA open to it now,
    not after `open_interval`, and the refused open was the message's only attempt."""
    a_port, b_port = free_port(), free_port()
    a_toml = tmp_path / "a.toml"
    a_toml.write_text(_a_process_config(tmp_path, a_port, b_port))
    with waypost_process(tmp_path, a_port, a_toml.read_text()) as a:
        submitted = _cli(
            a_toml, "submit", "--from", ORIGINATOR, "--to", JONES, stdin="Subject: x\n\nHello\n"
        )
        assert submitted.returncode == 0, submitted.stderr
        await until(
            lambda: _true([r[0] for r in _queue_rows(tmp_path)] == ["deferred"]), "the deferral"
        )
        with waypost_process(tmp_path, b_port, _b_process_config(tmp_path, b_port)):
            retried = _cli(a_toml, "queue", "retry", "--all")
            assert retried.returncode == 0, retried.stderr
            assert f"the running MTA (pid {a.pid}) tries them now" in retried.stdout
            await until(lambda: _true(_queue_rows(tmp_path) == []), "delivery after the retry")
            await until(lambda: _true(any((tmp_path / "b-x400").glob("*/new/*.p1"))), "at B")
    logged = (tmp_path / "a-events.jsonl").read_text()
    assert '"id": 1407' in logged, logged[-2000:]
