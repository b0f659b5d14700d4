"""The `error` delivery agent: recipients routed to `error:TEXT` fail at once with that text.

Routes may refuse destinations on purpose, and recipients that arrive with no
route (over X.400, where a transfer cannot refuse one recipient) are queued
here, so that they fail with a report owed rather than disappear.
"""

from __future__ import annotations

import re

from waypost.handoff import Attempt, Handoff, Result

_STATUS = re.compile(r"5\.\d{1,3}\.\d{1,3} ")


class ErrorDeliverer:
    """Fails every recipient with the next hop's text (`error:TEXT`)."""

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        text = handoff.next_hop.destination or "refused by the routing table"
        # A hop may name its own status (`error:5.4.6 loop detected`); 5.4.4 otherwise.
        detail = text if _STATUS.match(text) else f"5.4.4 {text}"
        return [
            Attempt(recipient_id=c.recipient_id, result=Result.FAILED, detail=detail)
            for c in handoff.recipients
        ]
