"""Delivery slots with a share kept for urgent messages: a backlog of normal and non-urgent
mail may fill all but the reserved slots, so an urgent message (an AMHS SS message, X.411
priority urgent) never waits for one of theirs to finish."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


def reserved_slots(limit: int, share: float) -> int:
    """How many of `limit` slots only urgent work takes: the share, rounded (so a small
    limit keeps none: urgent work is still the first served); never every slot."""
    if limit < 2:
        return 0
    return min(limit - 1, round(limit * share))


class Slots:
    """`limit` slots, `reserved` of which only urgent work takes. Waiters are served the
    urgent first, each kind in the order it came."""

    def __init__(self, limit: int, reserved: int = 0) -> None:
        self.limit = limit
        self.reserved = reserved
        self.in_use = 0
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (
            deque(),  # urgent
            deque(),  # the others
        )

    def cap(self, *, urgent: bool) -> int:
        """How many slots in use leave room for one more of this kind."""
        return self.limit if urgent else self.limit - self.reserved

    def free_for(self, *, urgent: bool) -> bool:
        return self.in_use < self.cap(urgent=urgent)

    def take(self) -> None:
        """Take a slot known to be free (`free_for`)."""
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        for urgent, waiting in zip((True, False), self._waiting, strict=True):
            while waiting and self.free_for(urgent=urgent):
                future = waiting.popleft()
                if not future.done():
                    self.in_use += 1
                    future.set_result(None)

    async def acquire(self, *, urgent: bool) -> None:
        waiting = self._waiting[0 if urgent else 1]
        if not waiting and self.free_for(urgent=urgent):
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # given the slot as it was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    waiting.remove(future)
            raise

    @contextlib.asynccontextmanager
    async def slot(self, *, urgent: bool) -> AsyncIterator[None]:
        await self.acquire(urgent=urgent)
        try:
            yield
        finally:
            self.release()
