"""Local delivery of X.400 messages: one file per message, the P1 MTS-APDU, per recipient.

The layout is Maildir's (tmp/, new/, cur/ under one directory per recipient
O/R address), written the same way: tmp, fsync, rename into new, fsync the
directory. A user agent reads each file as a P1 message (envelope + content).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import msgspec

from waypost.address import AddressError, parse_oraddress
from waypost.delivery.maildir import Delivered, LocalDeliveryError, MaildirStore
from waypost.message import ContentType, Envelope
from waypost.x400.p1_envelope import P1Message, TransferEnvelope, encode_mts_apdu

# Characters kept in a mailbox directory's readable part; others become "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9.=+-]+")


def mailbox_name(oraddress: str) -> str:
    """A directory name for an O/R address: readable, safe, and unique (a short hash)."""
    readable = _UNSAFE.sub("_", oraddress.strip("/"))[:80].strip("._") or "oraddress"
    digest = hashlib.sha256(oraddress.upper().encode()).hexdigest()[:12]
    return f"{readable}.{digest}"


class X400Store:
    """The local X.400 store under `root`, one mailbox directory per recipient."""

    def __init__(self, root: Path, *, hostname: str = "") -> None:
        self.root = root
        self._files = MaildirStore(root, hostname=hostname)

    def deliver(self, recipient: str, envelope: Envelope, content: bytes) -> Delivered:
        """Store the message for one local O/R recipient; synchronous (run it in a thread)."""
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
        # The stored copy names only this recipient, as a delivered message does.
        mine = [r for r in envelope.recipients if r.address == recipient] or envelope.recipients[:1]
        single = msgspec.structs.replace(envelope, recipients=mine)
        try:
            apdu = encode_mts_apdu(
                P1Message(envelope=TransferEnvelope(envelope=single), content=content)
            )
        except (ValueError, AddressError) as exc:
            reason = f"5.6.0 cannot encode the P1 message: {exc}"
            raise LocalDeliveryError(reason, permanent=True) from None
        mailbox = self.root / mailbox_name(canonical)
        try:
            return self._files.write(mailbox, apdu, suffix=".p1")
        except OSError as exc:
            raise LocalDeliveryError(
                f"4.3.0 cannot write to {mailbox}: {exc.strerror or exc}", permanent=False
            ) from None
