"""A flood of violations from one SMTP client costs a bounded number of log lines, over a
real listener and a real JSON log; another client's events still appear."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from helpers import free_port, running_service

from waypost import events

VIOLATIONS = 10_000
BATCH = 1000  # messages written at once (the server reads at most 1 MiB pipelined)
# Bare LF in the data: refused whole (550 5.6.11), one smtp-violation event each.
BAD_MESSAGE = (
    b"MAIL FROM:<mallory@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"
    b"Subject: x\r\n\r\nbare\nline\r\n.\r\n"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def send_bad_messages(port: int, count: int, *, source: str) -> None:
    """`count` refused messages over one connection from `source`, each answer awaited."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        assert (await reader.readline()).startswith(b"220")
        writer.write(b"EHLO fuzzer.example\r\n")
        while not (await reader.readline()).startswith(b"250 "):
            pass
        sent = 0
        while sent < count:
            n = min(BATCH, count - sent)
            writer.write(BAD_MESSAGE * n)
            await writer.drain()
            refused = 0
            while refused < n:
                line = await reader.readline()
                assert line, "the server closed the connection"
                refused += line.startswith(b"550 5.6.11")
            sent += n
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()


def logged(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


async def test_ten_thousand_violations_from_one_client(tmp_path: Path) -> None:
    clock = FakeClock()
    events.limit_rate(budget=100, window=60, clock=clock)
    log = tmp_path / "events.jsonl"
    events.configure_logging(level="INFO", json_file=str(log), stream=io.StringIO())
    port = free_port()
    svc = await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nmax_errors = 100000\n[x400]\nlisten = []\n',
        background=False,
    )
    try:
        await send_bad_messages(port, VIOLATIONS, source="127.0.0.1")
        await send_bad_messages(port, 3, source="127.0.0.2")
        records = logged(log)
        from_flood = [r for r in records if r.get("fields", {}).get("client") == "127.0.0.1"]
        violations = [r for r in from_flood if r["name"] == "smtp-violation"]
        assert len(violations) == 100  # the budget: the other 9,900 are counted, not written
        other = [r for r in records if r.get("fields", {}).get("client") == "127.0.0.2"]
        assert [r["name"] for r in other] == ["smtp-violation"] * 3
        assert len(records) < 150
        # The minute ends: the next line logged says how many were held back.
        clock.now += 60
        events.emit(events.SMTP_VIOLATION, client="127.0.0.3", reason="a late one")
        (summary,) = [r for r in logged(log) if r["name"] == "events-suppressed"]
        assert summary["fields"]["count"] == VIOLATIONS - 100
        assert summary["fields"]["source"] == "127.0.0.1"
        assert summary["fields"]["event"] == "1703 smtp-violation"
    finally:
        await svc.stop()
        events.configure_logging(level="WARNING", stream=io.StringIO())
