"""The `error` transport: recipients routed to `error:TEXT` fail at once with that text.

Routes may refuse destinations on purpose, and recipients that arrive with no
route (over X.400, where the transfer cannot refuse one recipient) are queued
here, so that they fail with a report owed rather than disappear.
"""

from __future__ import annotations

from waypost.queue.deliverer import Attempt, Transfer
from waypost.store.base import Result


class ErrorDeliverer:
    """Fails every recipient with the next hop's text (`error:TEXT`)."""

    async def deliver(self, transfer: Transfer) -> list[Attempt]:
        text = transfer.next_hop.partition(":")[2] or "refused by the routing table"
        return [
            Attempt(recipient_id=c.recipient_id, result=Result.FAILED, detail=f"5.4.4 {text}")
            for c in transfer.recipients
        ]
