"""An AFTN station for tests, over real sockets: a client that sends AFTN messages to a
Waypost AFTN listener, and a station that Waypost's `aftn:` next hops send to, which keeps
what it receives. AFTN is framed by waypost.amhs.aftn (the format under test is checked in
test_amhs_aftn.py against the Annex's examples)."""

from __future__ import annotations

import asyncio

from waypost.amhs.aftn import AFTNMessage, Deframer, Framing, decode, encode


async def send(port: int, messages: list[AFTNMessage], framing: Framing = Framing.IA5) -> None:
    """Send the messages on one connection, then close it."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for message in messages:
        writer.write(encode(message, framing))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


class Station:
    """Listens for AFTN over TCP and keeps each message received, in order."""

    def __init__(self, framing: Framing = Framing.IA5) -> None:
        self.framing = framing
        self.received: list[AFTNMessage] = []
        self.raw: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.arrived = asyncio.Condition()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def wait_for(self, count: int, timeout: float = 30) -> list[AFTNMessage]:
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: len(self.received) >= count), timeout
            )
        return list(self.received)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        deframer = Deframer(self.framing)
        while data := await reader.read(65536):
            for raw in deframer.feed(data):
                self.raw.append(raw)
                message = decode(raw, self.framing)
                async with self.arrived:
                    self.received.append(message)
                    self.arrived.notify_all()
        writer.close()
