"""The `local` transport: recipients in local domains delivered to their Maildir, and
local O/R addresses to the local X.400 store.

Writing a file durably blocks (fsync), so it happens in worker threads. Transfers
that arrive while the workers are busy wait in one queue and are written in
batches, each batch answered with one hand-back to the event loop: under load
this costs a thread hop per batch rather than per message.
"""

from __future__ import annotations

import asyncio
import collections

from waypost import events
from waypost.address import is_oraddress_text
from waypost.delivery.maildir import Delivered, LocalDeliveryError, MaildirStore
from waypost.delivery.x400_store import X400Store
from waypost.queue.deliverer import Attempt, Transfer
from waypost.store.base import Result

MAX_WORKERS = 4  # files written at once (fsyncs in flight)
MAX_BATCH = 32  # transfers one worker writes before it hands their outcomes back

_Job = tuple[Transfer, "asyncio.Future[list[Attempt]]"]
_Outcome = tuple["asyncio.Future[list[Attempt]]", "list[Attempt] | Exception"]


class LocalDeliverer:
    """Delivers each recipient of a transfer into its mailbox, in worker threads."""

    def __init__(self, maildirs: MaildirStore, x400: X400Store | None = None) -> None:
        self.maildirs = maildirs
        self.x400 = x400
        # Appended on the event loop, taken by the workers: deque's ends are thread-safe.
        self._queue: collections.deque[_Job] = collections.deque()
        self._workers = 0

    async def deliver(self, transfer: Transfer) -> list[Attempt]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Attempt]] = loop.create_future()
        self._queue.append((transfer, done))
        self._start_worker(loop)
        return await done

    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._workers < MAX_WORKERS and self._queue:
            self._workers += 1
            loop.run_in_executor(None, self._work, loop)

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        """A worker thread: write batches until the queue is empty."""
        try:
            while True:
                batch: list[_Job] = []
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.popleft())
                    except IndexError:
                        break
                if not batch:
                    return
                outcomes: list[_Outcome] = []
                for transfer, done in batch:
                    try:
                        outcomes.append((done, self._deliver_all(transfer)))
                    except Exception as exc:  # the manager turns it into a deferral
                        outcomes.append((done, exc))
                loop.call_soon_threadsafe(_settle, outcomes)
        finally:
            loop.call_soon_threadsafe(self._worker_done, loop)

    def _worker_done(self, loop: asyncio.AbstractEventLoop) -> None:
        self._workers -= 1
        self._start_worker(loop)  # a transfer queued as the worker was leaving

    def _deliver_all(self, transfer: Transfer) -> list[Attempt]:
        attempts = []
        for claim in transfer.recipients:
            try:
                where = self._deliver_one(claim.address, transfer)
            except LocalDeliveryError as exc:
                events.emit(
                    events.LOCAL_DELIVERY_FAILED,
                    message_id=transfer.message_id,
                    recipient=claim.address,
                    error=str(exc),
                )
                result = Result.FAILED if exc.permanent else Result.DEFERRED
                attempts.append(
                    Attempt(recipient_id=claim.recipient_id, result=result, detail=str(exc))
                )
                continue
            attempts.append(
                Attempt(
                    recipient_id=claim.recipient_id,
                    result=Result.DELIVERED,
                    detail=f"2.0.0 delivered to mailbox {where.mailbox}",
                )
            )
        return attempts

    def _deliver_one(self, address: str, transfer: Transfer) -> Delivered:
        if is_oraddress_text(address):
            if self.x400 is None:
                raise LocalDeliveryError(
                    "4.3.5 no local X.400 store is configured", permanent=False
                )
            return self.x400.deliver(address, transfer.envelope, transfer.content)
        local_part = address.rpartition("@")[0] or address
        return self.maildirs.deliver(local_part, address, transfer.envelope, transfer.content)


def _settle(outcomes: list[_Outcome]) -> None:
    """On the event loop: answer each transfer of a batch (unless its caller gave up)."""
    for done, outcome in outcomes:
        if done.done():
            continue
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)
