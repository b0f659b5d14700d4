"""Builders for test messages, shared by the tests."""

from __future__ import annotations

from waypost.message import Envelope, Message, Recipient, new_mts_id
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
    return NewMessage(message=message, next_hops=[hop] * len(recipients))
