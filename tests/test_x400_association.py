"""P1 associations between two Waypost services in process: transfer, bind checks, deferral."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest
from helpers import free_port, running_service

from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.service import Service
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu

ORIGINATOR = "/C=GB/ADMD= /PRMD=A/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
MTS_ID = "/C=GB/ADMD= /PRMD=A/;local-1"


async def start(tmp_path: Path, name: str, x400_port: int, extra: str, local: str = "") -> Service:
    return await running_service(
        tmp_path,
        f'[server]\nhostname = "{name}.test"\ndata_dir = "{name}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f"[queue]\npoll_interval = 0.1\nmin_backoff = 30\nmax_backoff = 60\n"
        f'[local]\nx400_store = "{name}-x400"\n{local}'
        f'[x400]\nlisten = ["127.0.0.1:{x400_port}"]\nmta_name = "{name.upper()}-MTA"\n'
        f'global_domain = "/C=GB/ADMD= /PRMD={name.upper()}/"\n' + extra,
        name=name,
    )


async def pair(
    tmp_path: Path, mode: str, *, a_password: str = "secret-a", a_name: str = "A-MTA"
) -> tuple[Service, Service]:
    a_port, b_port = free_port(), free_port()
    b = await start(
        tmp_path,
        "b",
        b_port,
        '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:1"\n'
        'peer_password = "secret-a"\nour_password = "secret-b"\n',
        local='oraddresses = ["/C=GB/ADMD= /PRMD=B/"]\n',
    )
    a = await start(
        tmp_path,
        "a",
        a_port,
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=B/"\nnext_hop = "x400:B-MTA"\n'
        f'[[x400.peer]]\nname = "B-MTA"\naddress = "127.0.0.1:{b_port}"\nmode = "{mode}"\n'
        f'our_name = "{a_name}"\nour_password = "{a_password}"\npeer_password = "secret-b"\n'
        "checkpoint_size = 1\nwindow_size = 3\n",
    )
    return a, b


def message() -> Message:
    content = build_ipm(
        originator=ORIGINATOR, recipients=[JONES], subject="Hello", text="Hi", ipm_id="ipm-1"
    )
    envelope = Envelope(
        mts_id=MTS_ID,
        originator=ORIGINATOR,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    return Message(envelope=envelope, content=content)


async def wait_for_file(root: Path) -> Path:
    for _ in range(200):
        files = sorted(root.glob("*/new/*.p1"))
        if files:
            return files[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing delivered under {root}")


def rows(path: str, message_id: int) -> list[tuple[str, str | None]]:
    with sqlite3.connect(path) as conn:
        return list(
            conn.execute(
                "SELECT state, last_error FROM recipients WHERE message_id = ?", (message_id,)
            )
        )


async def wait_for_state(svc: Service, message_id: int, state: str) -> list[tuple[str, str | None]]:
    for _ in range(200):
        found = await asyncio.to_thread(rows, svc.store.path, message_id)
        if found and found[0][0] == state:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} never reached {state}: {found}")


@pytest.mark.parametrize("mode", ["1988", "x410"])
async def test_message_crosses_from_a_to_b(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    a, b = await pair(tmp_path, mode)
    sent = message()
    try:
        await a.submit(sent)
        file = await wait_for_file(Path(b.config.local.x400_store))
        apdu = decode_mts_apdu(file.read_bytes())
        assert isinstance(apdu, P1Message)
        assert apdu.content == sent.content
        got = apdu.envelope.envelope
        assert got.mts_id == MTS_ID and got.originator == ORIGINATOR
        assert [r.address for r in got.recipients] == [JONES]
        # A 1984 (X.410 mode) peer gets the IPM as P2, which X.420 (1984) knows.
        assert got.content_type == (ContentType.P2 if mode == "x410" else ContentType.P22)
        texts = [r.getMessage() for r in caplog.records]
        assert any(f"open in {mode} mode" in t and "Inbound" in t for t in texts)
        assert not any("secret" in t for t in texts)  # passwords never logged
    finally:
        await a.stop()
        await b.stop()


async def test_wrong_password_is_refused_and_deferred(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    a, b = await pair(tmp_path, "1988", a_password="wrong")
    try:
        message_id = await a.submit(message())
        ((_, error),) = await wait_for_state(a, message_id, "deferred")
        assert error is not None and "authentication-error" in error
        texts = [r.getMessage() for r in caplog.records]
        assert any("refused: wrong password" in t for t in texts)
        assert any("refused our bind (authentication-error)" in t for t in texts)
        assert not any("wrong" in t and "secret" in t for t in texts)
        assert not list(Path(b.config.local.x400_store).glob("*/new/*.p1"))
    finally:
        await a.stop()
        await b.stop()


async def test_unknown_peer_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    a, b = await pair(tmp_path, "x410", a_name="STRANGER")
    try:
        message_id = await a.submit(message())
        ((_, error),) = await wait_for_state(a, message_id, "deferred")
        assert error is not None and "bind refused" in error
        assert any("STRANGER refused: unknown MTA" in r.getMessage() for r in caplog.records)
    finally:
        await a.stop()
        await b.stop()
