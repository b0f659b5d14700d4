"""What the asyncio drivers of the sans-I/O protocols share: writing, and answering a question
that takes time (a durable enqueue, a password check, a TLS handshake) with reading paused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from waypost import events
from waypost.net.listener import Listener


class PausingDriver(asyncio.Protocol):
    """Base of a connection's driver. Subclasses implement `_pump` (feed the protocol machine
    until it needs data or a decision) and `_fail` (close after an unexpected error)."""

    component = "connection"

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._busy: asyncio.Future[None] | None = None
        self._closing = False

    def _pump(self) -> None:
        raise NotImplementedError

    def _fail(self) -> None:
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _run(self, work: Awaitable[None]) -> None:
        """Answer a question that takes time; reading waits until it is answered."""
        assert self.transport is not None
        self.transport.pause_reading()
        self._busy = asyncio.ensure_future(work)
        self._busy.add_done_callback(self._resume)

    def _resume(self, task: asyncio.Future[None]) -> None:
        self._busy = None
        if not task.cancelled() and task.exception() is not None:
            events.emit(
                events.UNEXPECTED_ERROR, component=self.component, error=repr(task.exception())
            )
            self._fail()
            return
        if self._closing or self.transport is None:
            return
        with contextlib.suppress(RuntimeError):  # the transport may be closing already
            self.transport.resume_reading()
        self._pump()


class SessionServer:
    """A listener and its live sessions: what the SMTP and X.400 servers share.

    Subclasses create `self.listener` with `self._session` as its factory, and
    their sessions remove themselves from `sessions` when their connection ends.
    """

    listener: Listener
    sessions: set[Any]

    async def start(self) -> None:
        await self.listener.start()

    @property
    def bound(self) -> list[tuple[str, int]]:
        return self.listener.bound

    async def close(self) -> None:
        """Stop accepting, and ask every session to finish and close."""
        await self.listener.close()
        for session in list(self.sessions):
            session.shutdown()
