"""The `local` transport: recipients in local domains delivered to their Maildir."""

from __future__ import annotations

import asyncio

from waypost import events
from waypost.address import is_oraddress_text
from waypost.delivery.maildir import Delivered, LocalDeliveryError, MaildirStore
from waypost.delivery.x400_store import X400Store
from waypost.queue.deliverer import Attempt, Transfer
from waypost.store.base import Result


class LocalDeliverer:
    """Delivers each recipient of a transfer into its mailbox, in a worker thread."""

    def __init__(self, maildirs: MaildirStore, x400: X400Store | None = None) -> None:
        self.maildirs = maildirs
        self.x400 = x400

    async def deliver(self, transfer: Transfer) -> list[Attempt]:
        return await asyncio.to_thread(self._deliver_all, transfer)

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
                    detail=f"2.0.0 delivered to mailbox {where.path.parent.parent.name}",
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
