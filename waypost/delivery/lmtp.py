"""The delivery agent for next hops `lmtp:…`: final delivery into a message store (Dovecot,
Cyrus) by LMTP (RFC 2033), over TCP or a UNIX socket, with one outcome per recipient from
the store's replies after the data. What a cluster's nodes deliver local mail with: the
mailboxes live in the store, not on any node."""

from __future__ import annotations

from waypost.delivery.smtp import SmtpDeliverer
from waypost.nexthop import NextHop


class LmtpDeliverer(SmtpDeliverer):
    """SMTP's agent (connection cache, timeouts, STARTTLS when offered, per-recipient
    outcomes) speaking LMTP to the one server the hop names: no MX lookup, no other host."""

    lmtp = True

    async def targets(self, hop: NextHop) -> list[tuple[str, int]]:
        return [(hop.destination, hop.port or 0)]  # port 0: a UNIX socket at that path
