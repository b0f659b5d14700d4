"""Who may send what through the SMTP server: relay control, local mailboxes, free space."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from waypost.address import POSTMASTER, AddressError, Mailbox, mailbox_name
from waypost.nexthop import NextHop
from waypost.routing import RoutingTable
from waypost.smtp.server_replies import RECIPIENT_UNKNOWN, RELAY_DENIED, Reply

NO_ROUTE = Reply(550, "5.1.2", "Recipient address rejected: no route to its domain")
REFUSED_BY_ROUTE = Reply(550, "5.7.1", "Recipient address rejected by the routing table")
LOW_DISK = Reply(452, "4.3.1", "Insufficient system storage; try again later")
# RFC 5321 §4.2.2: 553 "mailbox name not allowed". Refused here, not bounced later to a
# sender that may be forged (backscatter).
NOT_A_MAILBOX_NAME = Reply(553, "5.1.3", "Recipient address rejected: not a valid mailbox name")


@dataclass(frozen=True, slots=True)
class RecipientDecision:
    """Accept with a next hop, or refuse with a reply."""

    next_hop: NextHop | None
    refusal: Reply | None


class RelayPolicy:
    """Never an open relay: local and routed domains from anyone; any domain only from
    `relay_networks` or an authenticated client (Postfix's permit_mynetworks,
    permit_sasl_authenticated, reject_unauth_destination)."""

    def __init__(
        self,
        routing: RoutingTable,
        relay_networks: Sequence[str],
        *,
        mailboxes: frozenset[str] = frozenset(),
    ) -> None:
        self.routing = routing
        self.networks = [ipaddress.ip_network(n, strict=False) for n in relay_networks]
        self.mailboxes = frozenset(m.lower() for m in mailboxes)

    def trusted(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def recipient(self, rcpt: Mailbox, *, may_relay: bool) -> RecipientDecision:
        """`may_relay`: the client is in relay_networks (see `trusted`) or authenticated."""
        decision = self.routing.route(str(rcpt))
        hop = decision.next_hop
        if hop is None:
            return RecipientDecision(None, NO_ROUTE if may_relay else RELAY_DENIED)
        if hop.transport == "local":
            try:
                name = mailbox_name(rcpt.local)  # the rule the Maildir delivery applies
            except AddressError:
                return RecipientDecision(None, NOT_A_MAILBOX_NAME)
            # RFC 5321 §4.5.1: postmaster is accepted at every local domain, listed or not.
            if self.mailboxes and name not in self.mailboxes and name != POSTMASTER:
                return RecipientDecision(None, RECIPIENT_UNKNOWN)
            return RecipientDecision(hop, None)
        if decision.by_default and not may_relay:
            return RecipientDecision(None, RELAY_DENIED)
        if hop.transport == "error":
            return RecipientDecision(None, REFUSED_BY_ROUTE)
        return RecipientDecision(hop, None)


class DiskGuard:
    """Whether the data directory's file system has room for new mail (checked at most once a
    second: statvfs is cheap, but not free on every MAIL FROM)."""

    def __init__(self, path: str, min_free: int) -> None:
        self.path = path
        self.min_free = min_free
        self._checked = 0.0
        self._ok = True

    def has_room(self) -> bool:
        if self.min_free <= 0:
            return True
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            try:
                stat = os.statvfs(self.path)
            except OSError:
                self._ok = False
            else:
                self._ok = stat.f_bavail * stat.f_frsize >= self.min_free
        return self._ok
