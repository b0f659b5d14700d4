"""A greeting server on waypost's Listener, run in a subprocess by the accept() fault tests.

Usage: listener_server.py NOFILE_LIMIT — prints the bound port, then serves:
each connection gets "220 hello" (or "421 refused: …" over a limit) and an
echo of each line until it closes.
"""

from __future__ import annotations

import asyncio
import resource
import sys
from collections.abc import Callable

from waypost import events
from waypost.net.listener import Admission, ConnectionLimits, Listener


class Greeter(asyncio.Protocol):
    def __init__(self, admission: Admission, release: Callable[[], None]) -> None:
        self.admission = admission
        self.release = release

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.admission.refused:
            transport.write(f"421 refused: {self.admission.refused}\r\n".encode())
            transport.close()
        else:
            transport.write(b"220 hello\r\n")

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.release()


async def main(nofile: int) -> None:
    events.configure_logging(level="INFO")
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    listener = Listener(
        "test",
        [("127.0.0.1", 0)],
        Greeter,
        limits=ConnectionLimits(max_total=1000, max_per_client=1000, max_backoff=0.2),
    )
    await listener.start()
    print(listener.bound[0][1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
