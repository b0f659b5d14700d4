"""The `local` transport: recipients in local domains delivered to their Maildir, and
local O/R addresses to the local X.400 store.

Writing a file durably blocks (fsync), so it happens in worker threads. Handoffs
that arrive while the workers are busy wait in one queue and are written in
batches, each batch answered with one hand-back to the event loop: under load
this costs a thread hop per batch rather than per message. Each file is fsync'd
as it is written; the directories written into are fsync'd once per batch,
before any of its deliveries is answered. One worker writes while that is quick;
up to MAX_WORKERS when the disk is slow, to have fsyncs in flight together.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time

from waypost import events
from waypost.address import is_oraddress_text
from waypost.delivery.maildir import (
    Delivered,
    LocalDeliveryError,
    MaildirStore,
    sync_directories,
)
from waypost.delivery.mime_mailboxes import MimeMailboxes
from waypost.delivery.x400_store import X400Store
from waypost.handoff import Attempt, Handoff, Result

MAX_WORKERS = 4  # files written at once (fsyncs in flight) when the disk is slow
# Seconds per handoff under which one worker keeps up: then one thread writes them all.
# More threads on a quick disk cost more CPU than they save time: they contend for the
# GIL at every system call, and for the directory's lock in the kernel.
QUICK_WRITE = 0.002
MAX_BATCH = 32  # handoffs one worker writes before it hands their outcomes back
IDLE = 2.0  # seconds a worker waits for more work before it ends

_Job = tuple[Handoff, "asyncio.Future[list[Attempt]]"]
_Outcome = tuple["asyncio.Future[list[Attempt]]", "list[Attempt] | Exception"]


class LocalDeliverer:
    """Delivers each recipient of a handoff into its mailbox, in worker threads."""

    def __init__(
        self,
        maildirs: MaildirStore,
        x400: X400Store | None = None,
        mime: MimeMailboxes | None = None,
    ) -> None:
        self.maildirs = maildirs
        self.x400 = x400
        self.mime = mime
        # Put on the event loop, taken by the workers. A worker that finds it empty
        # waits a while for more (IDLE seconds) before it ends: handing work to a
        # waiting thread costs far less than starting one for it through an executor.
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._workers = 0  # changed on the event loop only
        # Set by the workers: the last batch took more than QUICK_WRITE per handoff.
        self._slow = False

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Attempt]] = loop.create_future()
        self._queue.put((handoff, done))
        if self._workers == 0 or self._slow:
            self._start_worker(loop)
        return await done

    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        limit = MAX_WORKERS if self._slow else 1
        if self._workers < limit and not self._queue.empty():
            self._workers += 1
            threading.Thread(
                target=self._work, args=(loop,), name="waypost-local", daemon=True
            ).start()

    def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        """A worker thread: write batches until the queue stays empty for IDLE seconds."""
        get, get_nowait = self._queue.get, self._queue.get_nowait
        try:
            while True:
                try:
                    batch: list[_Job] = [get(timeout=IDLE)]
                except queue.Empty:
                    return
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(get_nowait())
                    except queue.Empty:
                        break
                started = time.monotonic()
                outcomes = self._write_batch(batch)
                self._slow = time.monotonic() - started > QUICK_WRITE * len(batch)
                loop.call_soon_threadsafe(_settle, outcomes)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to tell
                loop.call_soon_threadsafe(self._worker_done, loop)

    def _worker_done(self, loop: asyncio.AbstractEventLoop) -> None:
        self._workers -= 1
        self._start_worker(loop)  # a handoff queued as the worker was leaving

    def _write_batch(self, batch: list[_Job]) -> list[_Outcome]:
        """Write every handoff of a batch, then fsync each directory written into once:
        nothing is answered as delivered before its file and its directory are durable."""
        written: list[tuple[list[Attempt], int, str]] = []
        outcomes: list[_Outcome] = []
        for handoff, done in batch:
            try:
                outcomes.append((done, self._deliver_all(handoff, written)))
            except Exception as exc:  # the manager turns it into a deferral
                outcomes.append((done, exc))
        failed = sync_directories({directory for _, _, directory in written})
        if failed:
            for attempts, index, directory in written:
                error = failed.get(directory)
                if error is not None:
                    attempts[index] = Attempt(
                        recipient_id=attempts[index].recipient_id,
                        result=Result.DEFERRED,
                        detail=f"4.3.0 cannot write to {directory}: {error.strerror or error}",
                    )
        return outcomes

    def _deliver_all(
        self, handoff: Handoff, written: list[tuple[list[Attempt], int, str]]
    ) -> list[Attempt]:
        """One attempt per recipient; each file written is noted in `written` (the attempt
        and the directory still to fsync)."""
        attempts: list[Attempt] = []
        for claim in handoff.recipients:
            try:
                where = self._deliver_one(claim.address, handoff)
            except LocalDeliveryError as exc:
                events.emit(
                    events.LOCAL_DELIVERY_FAILED,
                    message_id=handoff.message_id,
                    recipient=claim.address,
                    error=str(exc),
                )
                result = Result.FAILED if exc.permanent else Result.DEFERRED
                attempts.append(
                    Attempt(recipient_id=claim.recipient_id, result=result, detail=str(exc))
                )
                continue
            if where.directory:
                written.append((attempts, len(attempts), where.directory))
            attempts.append(
                Attempt(
                    recipient_id=claim.recipient_id,
                    result=Result.DELIVERED,
                    detail=f"2.0.0 delivered to mailbox {where.mailbox}",
                )
            )
        return attempts

    def _deliver_one(self, address: str, handoff: Handoff) -> Delivered:
        if is_oraddress_text(address):
            mailbox = self.mime.mailbox_for(handoff.envelope, address) if self.mime else None
            if mailbox is not None:
                assert self.mime is not None
                mail = self.mime.convert(handoff.envelope, handoff.content, address)
                return self.maildirs.deliver(
                    mailbox, address, mail.envelope, mail.content, sync_dir=False
                )
            if self.x400 is None:
                raise LocalDeliveryError(
                    "4.3.5 no local X.400 store is configured", permanent=False
                )
            return self.x400.deliver(address, handoff.envelope, handoff.content, sync_dir=False)
        local_part = address.rpartition("@")[0] or address
        return self.maildirs.deliver(
            local_part, address, handoff.envelope, handoff.content, sync_dir=False
        )


def _settle(outcomes: list[_Outcome]) -> None:
    """On the event loop: answer each handoff of a batch (unless its caller gave up)."""
    for done, outcome in outcomes:
        if done.done():
            continue
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)
