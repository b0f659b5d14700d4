"""Builders for test messages and services, shared by the tests."""

from __future__ import annotations

import socket
from pathlib import Path

from waypost.config import load_config
from waypost.message import Envelope, Message, Recipient, new_mts_id
from waypost.nexthop import parse_next_hop
from waypost.service import Service
from waypost.store.base import NewMessage


def make_message(
    recipients: tuple[str, ...] = ("bob@localhost",),
    *,
    originator: str = "alice@example.org",
    body: bytes = b"Subject: test\r\n\r\nhello\r\n",
    **envelope_fields: object,
) -> Message:
    envelope = Envelope(
        mts_id=new_mts_id(),
        originator=originator,
        recipients=[Recipient(address=r) for r in recipients],
        **envelope_fields,  # type: ignore[arg-type]
    )
    return Message(envelope=envelope, content=body)


def new_message(
    recipients: tuple[str, ...] = ("bob@localhost",), *, hop: str = "local", **kwargs: object
) -> NewMessage:
    message = make_message(recipients, **kwargs)  # type: ignore[arg-type]
    return NewMessage(message=message, next_hops=[parse_next_hop(hop)] * len(recipients))


_used_ports: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nobody listens on now (and not handed out before in this run)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _used_ports:
            _used_ports.add(port)
            return port


async def running_service(
    directory: Path,
    toml: str,
    *,
    name: str = "waypost",
    listen: bool = True,
    background: bool = True,
    reports: bool = True,
) -> Service:
    """A Service in this process, configured by `toml` (written to DIRECTORY/NAME.toml, so
    relative paths in it are under `directory`); the caller stops it.

    It listens unless `listen` is False, and runs its queue manager and report generator
    unless `background` is False (what arrives then stays queued). Without `reports`, a
    failed recipient keeps its row and its owed report, to be looked at.
    """
    config = directory / f"{name}.toml"
    config.write_text(toml)
    svc = await Service.start(load_config(config))
    if listen:
        await svc.start_listeners()
    if not reports:
        svc.reports = None
    if background:
        svc.run_background()
    return svc
