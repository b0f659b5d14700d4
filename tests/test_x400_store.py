"""Local delivery of X.400 messages to the X.400 store, through the real queue and store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from helpers import free_port, running_service

from waypost.delivery.x400_store import mailbox_name
from waypost.message import ContentType, Envelope, Message, Recipient, new_mts_id
from waypost.service import Service
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu

ORIGINATOR = "/C=GB/ADMD= /PRMD=Remote/O=Sales/S=Jones/"
ALICE = "/C=GB/ADMD= /PRMD=Waypost/O=HQ/S=Smith/G=Alice/"
BOB = "/C=GB/ADMD= /PRMD=Waypost/O=HQ/S=Brown/G=Bob/"


async def start(tmp_path: Path) -> Service:
    return await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f"[queue]\npoll_interval = 0.1\n"
        f'[local]\noraddresses = ["/C=GB/ADMD= /PRMD=Waypost/"]\n',
        name="w",
        listen=False,
    )


async def delivered_files(root: Path, n: int) -> list[Path]:
    for _ in range(200):
        files = sorted(root.glob("*/new/*.p1"))
        if len(files) >= n:
            return files
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} files under {root}")


async def test_p22_message_lands_in_the_x400_store_as_p1(tmp_path: Path) -> None:
    svc = await start(tmp_path)
    content = b"\xa0\x80 an opaque P22 IPM \x00\x00"
    envelope = Envelope(
        mts_id="/C=GB/ADMD= /PRMD=Remote/;local-id-1",
        originator=ORIGINATOR,
        recipients=[
            Recipient(address=ALICE, originally_specified_number=1),
            Recipient(address=BOB, originally_specified_number=2),
        ],
        content_type=ContentType.P22,
    )
    try:
        await svc.submit(Message(envelope=envelope, content=content))
        root = Path(svc.config.local.x400_store)
        files = await delivered_files(root, 2)
        assert {f.parent.parent.name for f in files} == {mailbox_name(ALICE), mailbox_name(BOB)}
        for file in files:
            apdu = decode_mts_apdu(file.read_bytes())
            assert isinstance(apdu, P1Message)
            assert apdu.content == content
            stored = apdu.envelope.envelope
            assert stored.originator == ORIGINATOR and stored.content_type == "builtin:22"
            (recipient,) = stored.recipients  # each copy names only its own recipient
            assert mailbox_name(recipient.address) == file.parent.parent.name
    finally:
        await svc.stop()


async def test_internet_mail_to_an_x400_mailbox_fails_without_conversion(tmp_path: Path) -> None:
    svc = await start(tmp_path)
    envelope = Envelope(
        mts_id=new_mts_id("mx.test"), originator="", recipients=[Recipient(address=ALICE)]
    )
    try:
        message_id = await svc.submit(Message(envelope=envelope, content=b"Subject: x\r\n\r\n"))
        for _ in range(100):
            rows = await asyncio.to_thread(_states, svc.store.path, message_id)
            if rows != ["queued"] and rows != ["leased"]:
                break
            await asyncio.sleep(0.05)
        # A report for a report is never owed, so the failed message is simply finished.
        assert rows == []
    finally:
        await svc.stop()


def _states(path: str, message_id: int) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT state FROM recipients WHERE message_id = ?", (message_id,)
            )
        ]
