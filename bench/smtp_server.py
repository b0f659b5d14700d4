"""SMTP server micro-benchmarks on large messages: reading DATA, and counting Received:.

    .venv/bin/python bench/smtp_server.py                  # best of 5 runs
    .venv/bin/python bench/smtp_server.py --megabytes 100  # larger messages

DATA: lines of 76 `x` (31 MB by default), dot-stuffed, fed to a
`ServerConnection` in 64 KiB reads after an accepted EHLO, MAIL and RCPT, as
the driver feeds what the socket gives it; timed from the first read to the
MessageData event (the end-of-data scan, the smuggling defence and the copy of
the content).

Received: `count_received` (loop detection) on a message of one Received:
field and a body of such lines as large as the DATA one: it reads the header
section only, so the time should not grow with the body.

The protocol tests check that both give the right answer; this prints how fast.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from waypost.smtp.server_protocol import (
    NEED_DATA,
    MailFrom,
    MessageData,
    RcptTo,
    ServerConnection,
    ServerSettings,
)
from waypost.smtp.server_received import count_received

LINE = b"x" * 76 + b"\r\n"
READ = 65536


def session(size: int) -> ServerConnection:
    """A connection in a mail transaction, its sender and recipient accepted."""
    settings = ServerSettings(hostname="mx.example.net")
    limit = max(settings.max_message_size, 2 * size)
    conn = ServerConnection(replace(settings, max_message_size=limit))
    conn.greeting()
    conn.receive_data(b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n")
    accepted = 0
    while accepted < 2:
        event = conn.next_event()
        if isinstance(event, (MailFrom, RcptTo)):
            conn.accept(event)
            accepted += 1
    conn.data_to_send()
    return conn


def read_once(wire: bytes, size: int) -> float:
    """Seconds to read `wire` (DATA, the stuffed body, CRLF.CRLF) into one MessageData."""
    conn = session(size)
    start = time.perf_counter()
    for at in range(0, len(wire), READ):
        conn.receive_data(wire[at : at + READ])
        event = conn.next_event()
        while event is not NEED_DATA:
            if isinstance(event, MessageData):
                elapsed = time.perf_counter() - start
                if len(event.content) != size:
                    raise SystemExit(f"read {len(event.content)} octets, sent {size}")
                return elapsed
            event = conn.next_event()
    raise SystemExit("no MessageData: the end of data was not found")


def count_once(content: bytes) -> float:
    """Seconds for `count_received` on `content`, whose header has one Received: field."""
    start = time.perf_counter()
    count = count_received(content)
    elapsed = time.perf_counter() - start
    if count != 1:
        raise SystemExit(f"counted {count} Received: fields, not 1")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=31.0, help="message size (MB)")
    parser.add_argument("--runs", type=int, default=5, help="best of this many runs")
    args = parser.parse_args()
    size = max(1, int(args.megabytes * 1e6))
    body = LINE * max(1, size // len(LINE))
    # No line starts with ".": the body is its own dot-stuffed form.
    wire = b"DATA\r\n" + body + b".\r\n"
    best = min(read_once(wire, len(body)) for _ in range(args.runs))
    print(
        f"DATA of {len(body) / 1e6:.1f} MB in {READ // 1024} KiB reads: "
        f"{best * 1000:.0f} ms, {len(body) / 1e6 / best:.0f} MB/s (best of {args.runs})"
    )
    received = b"Received: b\r\n"
    content = b"Received: a\r\n\r\n" + received * max(1, size // len(received))
    best = min(count_once(content) for _ in range(args.runs))
    print(
        f"count_received, {len(content) / 1e6:.1f} MB message: "
        f"{best * 1e6:.0f} µs (best of {args.runs})"
    )


if __name__ == "__main__":
    main()
