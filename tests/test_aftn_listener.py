"""The AFTN listener over real sockets: a message that is not AFTN costs that message (an
event) and nothing else — the connection goes on and the next message is converted — and
a queue that cannot take a message closes the connection rather than lose it silently."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from aftn_station import Station
from helpers import free_port, running_service

from waypost import events
from waypost.amhs.aftn import AFTNMessage, Framing, encode
from waypost.amhs.priority import PriorityIndicator
from waypost.service import Service

REGISTER = "prefix,scheme,country,admd,prmd\nBA,XF,XX,ICAO,AFTNLAND-1\nBB,XF,XX,ICAO,AFTNLAND-2\n"
GOOD = AFTNMessage(
    priority=PriorityIndicator.FF,
    addressees=("BBBBZQZX",),
    filing_time="041030",
    originator="BAAAFTAA",
    text="AFTER THE BAD ONE",
    transmission_id="BAA002",
)


async def start(tmp_path: Path, station_port: int, aftn_port: int) -> Service:
    (tmp_path / "register.csv").write_text(REGISTER)
    return await running_service(
        tmp_path,
        '[server]\ndata_dir = "data"\n[smtp]\nlisten = []\n[x400]\nlisten = []\n'
        "[queue]\npoll_interval = 0.05\n"
        '[amhs]\nenabled = true\nregister = "register.csv"\naftn_address = "BAAAYFYX"\n'
        f'listen = ["127.0.0.1:{aftn_port}"]\n'
        f'[[amhs.peer]]\nname = "SINK"\naddress = "127.0.0.1:{station_port}"\n'
        '[[route]]\nmatch = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/"\nnext_hop = "aftn:SINK"\n',
    )


def named(caplog: pytest.LogCaptureFixture, event: events.EventDefinition) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "waypost_event", None) is event]


async def test_a_bad_message_costs_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    station = Station()
    aftn_port = free_port()
    svc = await start(tmp_path, await station.start(), aftn_port)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", aftn_port)
        bad = b"\x01BAA001\r\nXX NOTANADDRESS\r\n041030 BAAAFTAA\r\n\x02TEXT\r\n\x0b\x03"
        writer.write(b"\x16\x16" + bad + encode(GOOD, Framing.IA5))
        await writer.drain()
        (received,) = await station.wait_for(1)
        assert svc.aftn is not None and len(svc.aftn.sessions) == 1
        writer.close()
        # The connection ends: its session and its place under the limits go with it.
        for _ in range(100):
            if not svc.aftn.sessions and svc.aftn.listener.open_connections == 0:
                break
            await asyncio.sleep(0.02)
        assert (len(svc.aftn.sessions), svc.aftn.listener.open_connections) == (0, 0)
    finally:
        await svc.stop()
        await station.close()
    assert received.text == GOOD.text and received.addressees == GOOD.addressees
    (refused,) = named(caplog, events.AFTN_REFUSED)
    assert "address line: priority indicator 'XX' is not one of SS" in refused


async def test_a_queue_that_cannot_take_a_message_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    station = Station()
    aftn_port = free_port()
    svc = await start(tmp_path, await station.start(), aftn_port)
    # The MTA database refuses the message, as a full disk would.
    conn = sqlite3.connect(tmp_path / "data" / "mta.db")
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(FAIL, 'disk full'); END"
    )
    conn.close()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", aftn_port)
        writer.write(encode(GOOD, Framing.IA5))
        await writer.drain()
        # The gateway closes its end: the station sees the connection end, and resends.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        await svc.stop()
        await station.close()
    (not_queued,) = named(caplog, events.AFTN_NOT_QUEUED)
    assert "BAA002" in not_queued and "disk full" in not_queued


async def test_a_gap_in_the_channel_sequence_numbers_is_an_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    station = Station()
    aftn_port = free_port()
    svc = await start(tmp_path, await station.start(), aftn_port)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", aftn_port)
        for number in ("998", "999", "001", "004"):  # 999 is followed by 001; 002, 003 lost
            writer.write(encode(replace(GOOD, transmission_id=f"BAA{number}"), Framing.IA5))
        await writer.drain()
        await station.wait_for(4)
        writer.close()
    finally:
        await svc.stop()
        await station.close()
    (gap,) = named(caplog, events.AFTN_SEQUENCE_GAP)
    assert "message BAA004 came where number 002 was expected" in gap
