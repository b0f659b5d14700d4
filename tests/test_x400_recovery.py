"""RTSE recovery between two Waypost MTAs: a connection cut mid-transfer is resumed on the
next association after the last checkpoint, and the message arrives once, whole."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
import pytest
from helpers import free_port
from test_x400_association import ORIGINATOR, message, start, wait_for_file

from waypost.message import Message, Recipient
from waypost.service import Service
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu

JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"


class CuttingRelay:
    """Relays to `target`; the first connection is cut (reset, both sides) once the
    client has sent `cut_after` octets. Counts what each connection carried."""

    def __init__(self, target: int, cut_after: int) -> None:
        self.target = target
        self.cut_after = cut_after
        self.carried: list[int] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        index = len(self.carried)
        self.carried.append(0)
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target)
        cut = asyncio.Event()

        async def upstream() -> None:
            while not cut.is_set():
                data = await c_reader.read(4096)
                if not data:
                    break
                if index == 0 and self.carried[0] + len(data) > self.cut_after:
                    cut.set()
                    break
                self.carried[index] += len(data)
                s_writer.write(data)
                await s_writer.drain()

        async def downstream() -> None:
            while not cut.is_set():
                data = await s_reader.read(4096)
                if not data:
                    break
                c_writer.write(data)
                await c_writer.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (c_writer, s_writer):
            writer.transport.abort()  # a reset, as a failing network gives


def big_message(size: int) -> Message:
    sent = message()
    text = "".join(f"line {i:06d} of a long report\n" for i in range(size // 28))
    content = build_ipm(
        originator=ORIGINATOR, recipients=[JONES], subject="Long", text=text, ipm_id="big-1"
    )
    recipients = [Recipient(address=JONES, originally_specified_number=1)]
    envelope = msgspec.structs.replace(sent.envelope, recipients=recipients)
    return Message(envelope=envelope, content=content)


@pytest.mark.parametrize("mode", ["1988", "x410"])
async def test_cut_transfer_is_resumed_after_the_last_checkpoint(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    size = 64 * 1024
    b_port = free_port()
    relay = CuttingRelay(b_port, cut_after=size // 2)
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
            'peer_password = "secret-b"\ncheckpoint_size = 1\nwindow_size = 3\n'
            "transfer_interval = 0.3\n",
        )
        services.append(a)
        sent = big_message(size)
        await a.submit(sent)
        file = await wait_for_file(Path(b.config.local.x400_store))
        got = decode_mts_apdu(file.read_bytes())
        assert isinstance(got, P1Message) and got.content == sent.content
        texts = [r.getMessage() for r in caplog.records]
        assert any("Outbound transfer with B-MTA resumed after checkpoint" in t for t in texts)
        assert any("Inbound transfer with A-MTA" in t and "resumed" in t for t in texts)
        # The second connection carried the rest, not the whole message again.
        first, second = relay.carried[:2]
        assert first <= size // 2 and 0 < second < len(sent.content) - first // 2
        await asyncio.sleep(0.3)
        assert len(list(Path(b.config.local.x400_store).glob("*/new/*.p1"))) == 1
    finally:
        for svc in services:
            await svc.stop()
        await relay.close()


async def test_without_anything_kept_the_transfer_starts_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """B restarted between the cut and the retry: it holds nothing, refuses the
    recovery, and A transfers the whole message again."""
    caplog.set_level(logging.INFO, logger="waypost")
    size = 48 * 1024
    b_port = free_port()
    relay = CuttingRelay(b_port, cut_after=size // 2)
    relay_port = await relay.start()
    b_config = (
        '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:1"\n'
        'peer_password = "secret-a"\nour_password = "secret-b"\n'
    )
    services: list[Service] = []
    try:
        b = await start(
            tmp_path, "b", b_port, b_config, local='oraddresses = ["/C=GB/ADMD= /PRMD=B/"]\n'
        )
        services.append(b)
        a = await start(
            tmp_path,
            "a",
            free_port(),
            '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=B/"\nnext_hop = "x400:B-MTA"\n'
            f'[[x400.peer]]\nname = "B-MTA"\naddress = "127.0.0.1:{relay_port}"\n'
            'our_name = "A-MTA"\nour_password = "secret-a"\npeer_password = "secret-b"\n'
            "checkpoint_size = 1\nwindow_size = 3\ntransfer_interval = 1.0\n",
        )
        services.append(a)
        sent = big_message(size)
        await a.submit(sent)
        while not relay.carried or (relay.carried[0] < size // 4):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert b.x400 is not None
        b.x400.interrupted.clear()  # what a restart of B forgets
        file = await wait_for_file(Path(b.config.local.x400_store))
        got = decode_mts_apdu(file.read_bytes())
        assert isinstance(got, P1Message) and got.content == sent.content
        # A second connection asked to recover and was refused; a third carried it all.
        assert len(relay.carried) == 3 and relay.carried[2] > len(sent.content)
        texts = [r.getMessage() for r in caplog.records]
        assert any("Recovery of an interrupted transfer refused" in t for t in texts)
    finally:
        for svc in services:
            await svc.stop()
        await relay.close()
