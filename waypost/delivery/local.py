"""The `local` transport: recipients in local domains delivered to their Maildir."""

from __future__ import annotations

import asyncio

from waypost import events
from waypost.delivery.maildir import LocalDeliveryError, MaildirStore
from waypost.queue.deliverer import Attempt, Transfer
from waypost.store.base import Result


class LocalDeliverer:
    """Delivers each recipient of a transfer into its mailbox, in a worker thread."""

    def __init__(self, maildirs: MaildirStore) -> None:
        self.maildirs = maildirs

    async def deliver(self, transfer: Transfer) -> list[Attempt]:
        return await asyncio.to_thread(self._deliver_all, transfer)

    def _deliver_all(self, transfer: Transfer) -> list[Attempt]:
        attempts = []
        for claim in transfer.recipients:
            local_part = claim.address.rpartition("@")[0] or claim.address
            try:
                where = self.maildirs.deliver(
                    local_part, claim.address, transfer.envelope, transfer.content
                )
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
                    detail=f"2.0.0 delivered to maildir {where.path.parent.parent.name}",
                )
            )
        return attempts
