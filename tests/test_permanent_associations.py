"""Permanent associations to an adjacent MTA (an AMHS backbone's: urgent messages never wait
for one to open), and urgent transfers served first by the association pool — against a
second Waypost over real sockets."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from helpers import free_port
from test_delivery_x400 import (
    B_CONFIG,
    _equals,
    _true,
    a_config,
    delivered_at,
    message,
    opened,
    pair,
    start,
    until,
)

from waypost import events
from waypost.config import Config, X400Config, X400PeerConfig
from waypost.delivery.x400 import _Outbound, _Pool
from waypost.setup.x400 import x400_settings


async def test_permanent_associations_open_at_start_and_outlive_their_lifetime(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    parameters = "permanent_associations = 2\nassociation_lifetime = 0.2\n"
    async with pair(tmp_path, parameters, "") as (a, b):
        assert a.x400_deliverer is not None
        # Open before any message needs them.
        await until(lambda: _true(opened(caplog, "Outbound") == 2), "two associations opened")
        pool = a.x400_deliverer._pools["B-MTA"]
        await asyncio.sleep(0.6)  # three lifetimes: an ordinary idle one would be gone
        assert (pool.opened, pool.kept) == (2, 2)
        await a.submit(message(1))
        await until(lambda: _equals(delivered_at(b), 1), "the message at B")
        assert opened(caplog, "Outbound") == 2  # sent over one of them, none opened for it


async def test_a_lost_permanent_association_is_opened_again_when_the_peer_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    b_port = free_port()
    b = await start(tmp_path, "b", b_port, B_CONFIG)
    parameters = "permanent_associations = 1\nopen_interval = 0.3\n"
    a = await start(tmp_path, "a", free_port(), a_config(f"127.0.0.1:{b_port}", parameters))
    try:
        assert a.x400_deliverer is not None
        await until(lambda: _true(opened(caplog, "Outbound") == 1), "the association opened")
        await b.stop()  # the peer goes away: its end of the association with it
        pool = a.x400_deliverer._pools["B-MTA"]

        def failed_opens() -> int:
            return sum(
                1
                for r in caplog.records
                if getattr(r, "waypost_event", None) is events.X400_PERMANENT_OPEN_FAILED
            )

        await until(lambda: _true(failed_opens() >= 1), "a failed reopen, with its event")
        assert pool.kept == 0
        b = await start(tmp_path, "b", b_port, B_CONFIG)
        await until(lambda: _true(pool.kept == 1), "the association opened again")
        assert opened(caplog, "Outbound") == 2
        await a.submit(message(1))
        await until(lambda: _equals(delivered_at(b), 1), "the message at B")
    finally:
        await a.stop()
        await b.stop()


def test_permanent_associations_cannot_exceed_max_associations(tmp_path: Path) -> None:
    from waypost.config import check_config_file  # noqa: PLC0415

    path = tmp_path / "waypost.toml"
    path.write_text(
        '[[x400.peer]]\nname = "B-MTA"\naddress = "127.0.0.1:102"\n'
        "max_associations = 2\npermanent_associations = 3\n"
    )
    assert [(e.key, e.reason) for e in check_config_file(path)] == [
        (
            "x400.peer[0].permanent_associations",
            "at most max_associations (2), not 3",
        )
    ]


class _Fake:
    """Stands for an open association that stays open: what the pool asks of one."""

    alive = True
    kept = False
    watcher: asyncio.Task[None] | None = None
    timer = None

    async def unwatch(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.wait([watcher])

    async def idle_ended(self) -> str:
        await asyncio.Event().wait()  # the peer never ends it
        return ""

    async def release(self) -> None:
        await self.unwatch()


async def test_an_urgent_transfer_gets_the_next_free_association_first() -> None:
    peer = X400PeerConfig(name="B-MTA", address="127.0.0.1:102", max_associations=1)
    (settings,) = x400_settings(Config(x400=X400Config(listen=(), peer=(peer,)))).peer
    only = _Fake()

    async def opener(_: object) -> _Outbound:
        return only  # type: ignore[return-value]

    pool = _Pool(settings, opener, lambda work: None)
    held = await pool.acquire()
    order: list[str] = []

    async def transfer(name: str, *, urgent: bool) -> None:
        conn = await pool.acquire(urgent=urgent)
        order.append(name)
        await asyncio.sleep(0)
        pool.release(conn)

    waiting = [
        asyncio.create_task(transfer("normal-1", urgent=False)),
        asyncio.create_task(transfer("normal-2", urgent=False)),
        asyncio.create_task(transfer("urgent", urgent=True)),
    ]
    await asyncio.sleep(0.01)
    assert order == []  # one association, and it is in use
    pool.release(held)
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert order == ["urgent", "normal-1", "normal-2"]
    await pool.close()
