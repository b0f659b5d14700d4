"""Fuzz the sans-I/O SMTP server protocol as the listener drives it: the input in chunks,
every decidable event accepted or rejected, STARTTLS and timeouts taken as they come.
Nothing may come out: a bad client gets replies, Violation events and a close."""

from __future__ import annotations

from common import instrumented, run

with instrumented():
    from waypost.smtp.server_events import (
        NEED_DATA,
        PAUSED,
        ConnectionClosed,
        Decidable,
        StartTLS,
    )
    from waypost.smtp.server_protocol import ServerConnection
    from waypost.smtp.server_replies import Reply
    from waypost.smtp.server_settings import ServerSettings

SETTINGS = (
    ServerSettings(hostname="mx.fuzz.test", max_message_size=4096, max_recipients=5),
    ServerSettings(
        hostname="mx.fuzz.test",
        tls_available=True,
        allow_auth_without_tls=True,
        binarymime=True,
        max_pipelined_bytes=4096,
        max_errors=3,
    ),
)
CHUNKS = (1, 2, 5, 17, 100, 1000, 1 << 16)
REFUSAL = Reply(550, "5.7.1", "no")


def drain(conn: ServerConnection, choices: int) -> bool:
    """Run until NEED_DATA (True) or the close (False)."""
    for step in range(100_000):
        event = conn.next_event()
        conn.data_to_send()
        if event is NEED_DATA:
            return True
        if isinstance(event, ConnectionClosed):
            return False
        if event is PAUSED:
            pending = conn.pending
            if pending is None:
                conn.tls_started()  # a STARTTLS waiting for the handshake
                continue
            event = pending
        if isinstance(event, StartTLS):
            conn.tls_started()
        elif isinstance(event, Decidable):
            if choices >> (step % 8) & 1:
                conn.reject(event, REFUSAL)
            else:
                conn.accept(event)
    raise AssertionError("next_event never said NEED_DATA")


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    head, choices, body = data[0], data[1], data[2:]
    conn = ServerConnection(SETTINGS[head & 1], tls_active=bool(head & 2))
    conn.greeting()
    chunk = CHUNKS[(head >> 2) % len(CHUNKS)]
    live = drain(conn, choices)
    for at in range(0, len(body), chunk):
        if not live:
            return
        conn.receive_data(body[at : at + chunk])
        live = drain(conn, choices)
    if live and head & 0x80:
        conn.timeout()
        drain(conn, choices)
    elif live:
        conn.receive_data(b"")
        drain(conn, choices)


if __name__ == "__main__":
    run(test_one_input)
