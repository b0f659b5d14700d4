"""Builders for test messages, shared by the tests."""

from __future__ import annotations

import socket

from waypost.message import Envelope, Message, Recipient, new_mts_id
from waypost.nexthop import parse_next_hop
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
