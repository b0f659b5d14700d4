"""Local delivery of X.400 messages and reports: one file per object, its P1 MTS-APDU.

The layout is Maildir's (tmp/, new/, cur/ under one directory per recipient
O/R address), written the same way: tmp, fsync, rename into new, fsync the
directory. A user agent reads each file as a P1 message (envelope + content)
or report. A probe is answered, not stored: it is "delivered" when a message
would be.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

import msgspec

from waypost.address import AddressError, parse_oraddress
from waypost.delivery.maildir import Delivered, LocalDeliveryError, MaildirStore
from waypost.message import ContentType, Envelope, ObjectKind
from waypost.x400.p1_envelope import unsupported_critical
from waypost.x400.p1_objects import encode_stored

# Characters kept in a mailbox directory's readable part; others become "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9.=+-]+")


@lru_cache(maxsize=4096)
def mailbox_name(oraddress: str) -> str:
    """A directory name for an O/R address: readable, safe, and unique (a short hash)."""
    readable = _UNSAFE.sub("_", oraddress.strip("/"))[:80].strip("._") or "oraddress"
    digest = hashlib.sha256(oraddress.upper().encode()).hexdigest()[:12]
    return f"{readable}.{digest}"


class X400Store:
    """The local X.400 store under `root`, one mailbox directory per recipient."""

    def __init__(
        self,
        root: Path,
        *,
        hostname: str = "",
        domain: str | None = None,
        mailboxes: frozenset[str] = frozenset(),
    ) -> None:
        self.root = root
        self.domain = domain
        # Canonical O/R addresses that exist, upper-cased (O/R addresses compare without case).
        self.mailboxes = frozenset(str(parse_oraddress(m)).upper() for m in mailboxes)
        self._files = MaildirStore(root, hostname=hostname)

    def deliver(
        self, recipient: str, envelope: Envelope, content: bytes, *, sync_dir: bool = True
    ) -> Delivered:
        """Store the message for one local O/R recipient; synchronous (run it in a thread).
        With `sync_dir` false the caller fsyncs `Delivered.directory` (as MaildirStore.write)."""
        if envelope.content_type == ContentType.INTERNET:
            raise LocalDeliveryError(
                "5.6.3 Internet mail cannot be delivered to an X.400 mailbox without conversion",
                permanent=True,
            )
        try:
            canonical = str(parse_oraddress(recipient))
        except AddressError as exc:
            reason = f"5.1.3 bad O/R address {recipient!r}: {exc}"
            raise LocalDeliveryError(reason, permanent=True) from None
        if self.mailboxes and canonical.upper() not in self.mailboxes:
            raise LocalDeliveryError(f"5.1.1 no such O/R address {canonical}", permanent=True)
        # The stored copy names only this recipient, as a delivered message does.
        recipients = envelope.recipients
        if len(recipients) == 1 and recipients[0].address == recipient:
            single = envelope  # already so: no copy
        else:
            mine = [r for r in recipients if r.address == recipient] or recipients[:1]
            single = msgspec.structs.replace(envelope, recipients=mine)
        critical = unsupported_critical(single, critical_for="delivery")
        if critical and envelope.object_kind is not ObjectKind.REPORT:
            raise LocalDeliveryError(
                f"5.3.3 unsupported critical function (extension {critical[0].type})",
                permanent=True,
            )
        mailbox = os.path.join(self.root, mailbox_name(canonical))
        if envelope.object_kind is ObjectKind.PROBE:
            return Delivered(path="", mailbox=os.path.basename(mailbox))  # answered, not stored
        try:
            apdu = encode_stored(single, content, domain=self.domain)
        except (ValueError, AddressError) as exc:
            reason = f"5.6.0 cannot encode the P1 object: {exc}"
            raise LocalDeliveryError(reason, permanent=True) from None
        try:
            return self._files.write(mailbox, apdu, suffix=".p1", sync_dir=sync_dir)
        except OSError as exc:
            raise LocalDeliveryError(
                f"4.3.0 cannot write to {mailbox}: {exc.strerror or exc}", permanent=False
            ) from None
